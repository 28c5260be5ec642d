"""``python -m aiguillage.devtools.bench [--quick]``: see `aiguillage.devtools.bench.run`."""

import sys

from aiguillage.devtools.bench.run import main

sys.exit(main())
