"""The sink: a sync's records landed in a database (``--db``), exactly once.

``_base.py`` holds the interface every backend implements (``Sink``) and the
logic of a run over it; ``_schema.py`` the schema as SQL text shared by the
backends; ``_sqlite.py`` the embedded default; ``_postgres.py`` PostgreSQL;
``_writer.py`` the bounded queue that lets the fetch run ahead of the writes;
``_sync.py`` one list's whole run (begun or continued, written, finished).
This room imports ``_core`` and the top-level modules only: nothing of HTTP,
Intercom or the CLI.
"""

from ._base import SQLITE_SUFFIXES, Sink, SinkRun, SinkURL, Step, open_sink, parse_sink_url
from ._schema import KINDS, SCHEMA_SQL, SCHEMA_VERSION, Dialect, schema_statements
from ._sync import ListSynced, sync_list
from ._writer import write_pages

__all__ = [
    "KINDS",
    "SCHEMA_SQL",
    "SCHEMA_VERSION",
    "SQLITE_SUFFIXES",
    "Dialect",
    "ListSynced",
    "Sink",
    "SinkRun",
    "SinkURL",
    "Step",
    "open_sink",
    "parse_sink_url",
    "schema_statements",
    "sync_list",
    "write_pages",
]
