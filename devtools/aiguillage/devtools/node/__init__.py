"""The local single-node Kubernetes cluster of ``make dev`` and the e2e tests.

`Node` (in `aiguillage.devtools.node.lifecycle`) starts and stops it; the modules next to it
each hold one concept: `host` (what the machine must offer: `preflight`), `layout` (where the
node keeps its files), `config` (the components' files and flags), `containerd` (``ctr``),
`netfilter` (iptables), `sysctls`, `lock` (one node per machine), `teardown` (removing what a
node left, even a killed one) and `residue` (checking that nothing is left).
"""

from aiguillage.devtools.node.host import preflight
from aiguillage.devtools.node.lifecycle import Node, NodeError

__all__ = ["Node", "NodeError", "preflight"]
