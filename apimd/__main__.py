"""`python -m apimd` is the `apimd` command."""

import sys

from apimd.cli import main

sys.exit(main())
