"""``python -m pixelwise``: the same command line as the ``pixelwise`` console script."""

import sys

from pixelwise.cli.main import main

sys.exit(main())
