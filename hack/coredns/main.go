// Command coredns is the cluster DNS of the local node: CoreDNS with only the plugins the
// node's Corefile uses (devtools/aiguillage/devtools/node/config.py), built the way CoreDNS
// documents for a custom plugin set: a main package that imports the plugins and sets the
// directive order. The full build compiles every cloud provider's SDK and took ten minutes
// on a cold cache here; this one needs CoreDNS's core and the Kubernetes client.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The order CoreDNS's own plugin.cfg gives these plugins: a query goes through them in turn.
var directives = []string{"bind", "ready", "errors", "cache", "kubernetes"}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
