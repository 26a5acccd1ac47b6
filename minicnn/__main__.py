"""`python -m minicnn ...` runs the `minicnn` command (see minicnn/cli.py)."""

import sys

from .cli import main

sys.exit(main())
