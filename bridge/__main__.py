"""`python -m bridge` runs the same command line as `kbridge`."""

import sys

from bridge.cli import main

sys.exit(main())
