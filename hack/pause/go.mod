// The sandbox ("pause") image's program: holds a pod's namespaces open, reaps zombies.
module aiguillage.dev/hack/pause

go 1.25.0
