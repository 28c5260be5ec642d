// Command pause is the process of every pod's sandbox container on the local node.
//
// It holds the pod's namespaces open for as long as the pod lives, does nothing
// else, and exits 0 on SIGTERM or SIGINT (which is how containerd stops a sandbox).
// As PID 1 of a pod that shares its process namespace it also reaps orphaned
// children, so that they do not linger as zombies. It is the same job as
// Kubernetes' own pause container; nothing can be pulled from a registry here, so
// the local node builds this one (hack/build-images.sh) and imports it under the
// name containerd's sandbox_image setting names.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("aiguillage pause")
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "warning: pause should be the first process of a sandbox")
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			fmt.Fprintf(os.Stderr, "shutting down, got signal: %v\n", sig)
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every exited child without blocking, as one SIGCHLD may stand for several.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
