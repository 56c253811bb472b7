"""The engine: pages fetched concurrently, handed out in order, in bounded memory.

Nothing here knows HTTP or Intercom: a ``PageSource`` is any object that can
fetch page ``n``, so the engine is tested alone, with in-memory sources whose
pages finish out of order (tests/core/).
"""
