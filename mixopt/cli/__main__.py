"""``python -m mixopt.cli``: the same command line as the ``mixopt`` script."""

import sys

from mixopt.cli.main import main

sys.exit(main())
