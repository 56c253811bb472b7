"""``python -m asyncfetch.testing wordpress|github``: a REST-style list server.

The bundled Intercom server has its own command (``asyncfetch serve``).
"""

from ._rest_servers import main

main()
