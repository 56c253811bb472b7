"""The ``asyncfetch`` command: bulk sync to files, resume, progress, the demo.

Built on the public names of ``asyncfetch`` (and ``asyncfetch.testing`` for
``serve`` and ``demo``) only, like any other program using the library; the
import-rules test (tests/test_layout.py) holds it to that.
"""

from __future__ import annotations

from ._commands import cli, main

__all__ = ["cli", "main"]
