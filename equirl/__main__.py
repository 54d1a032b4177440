"""`python -m equirl ...` is the same as the `equirl` command."""

import sys

from equirl.cli import main

sys.exit(main())
