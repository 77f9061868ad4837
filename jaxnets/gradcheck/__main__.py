"""`python -m jaxnets.gradcheck FILE.py[:NAME]`: check your own derivative rules."""
import sys

from jaxnets.gradcheck.cli import main

sys.exit(main())
