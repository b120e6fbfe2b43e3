"""`python -m fernb` runs the command line."""
import sys

from fernb.cli import main

sys.exit(main())
