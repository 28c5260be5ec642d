// A small HTTP load generator for `make bench` (standard library only). Built by
// devtools/aiguillage/devtools/bench into ~/.cache/aiguillage/loadgen/, never committed.
module aiguillage.dev/hack/loadgen

go 1.22
