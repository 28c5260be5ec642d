"""The sidecar's named loggers. Nothing logged here may contain a prompt,
a completion or a credential: log routing facts and error classes only."""

import logging

server = logging.getLogger("aiguillage.sidecar")
reload = logging.getLogger("aiguillage.sidecar.reload")
