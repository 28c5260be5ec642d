// The simulated OpenAI upstream of `make bench` (standard library only). Built by
// devtools/aiguillage/devtools/bench into ~/.cache/aiguillage/upstream/, never committed.
module aiguillage.dev/hack/upstream

go 1.22
