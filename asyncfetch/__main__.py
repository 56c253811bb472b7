"""``python -m asyncfetch``."""

from ._cli._commands import main

main()
