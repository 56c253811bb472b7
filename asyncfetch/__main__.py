"""``python -m asyncfetch``."""

from ._cli import main

main()
