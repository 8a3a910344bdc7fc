"""``python -m mixopt``: the same command line as the ``mixopt`` script."""

import sys

from mixopt.cli import main

sys.exit(main())
