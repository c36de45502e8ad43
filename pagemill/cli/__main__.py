"""``python -m pagemill.cli``."""

from pagemill.cli import main

main()
