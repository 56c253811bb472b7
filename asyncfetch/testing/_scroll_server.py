"""The Scroll API of the bundled server: ``GET /users/scroll`` and friends.

Intercom's page-numbered lists stop at 10,000 records; past that, clients
walk a whole collection with a scroll instead.  `ScrollRegistry` keeps the
scrolls of one `IntercomServer` and answers scroll requests; the server
routes ``/users/scroll``, ``/contacts/scroll`` and ``/companies/scroll`` to it
and handles authentication, rate limits, faults and stats as for every other
endpoint.

The rules this server enforces: Intercom's, and where its documentation is
silent, choices marked (choice) that keep a client honest:

* ``GET /{kind}/scroll`` (no ``scroll_param``) starts a scroll over every
  object of the collection ``kind`` (users, contacts or companies).  It has
  no filters: ``tag_id``, ``segment_id``, ``company_id``, ``type``,
  ``created_since``, ``email`` or ``user_id`` give 400 ``parameter_invalid``.
  Other parameters (``per_page``, ``page``, ``sort`` ...) are ignored (choice).
* Each answer is ``{"type": "user.list", "users": [...], "scroll_param": P}``
  (``contact.list``/``contacts``, ``company.list``/``companies``) with the next
  batch of up to ``page_size`` objects, in the order of the page-numbered
  list of the whole collection (``GET /users``).  ``GET /{kind}/scroll?
  scroll_param=P`` gets the batch after it.  An empty batch ends the scroll;
  it still carries a ``scroll_param``, which leads nowhere (404).
* One scroll may be open at a time per workspace, across users, contacts and
  companies: a start while another scroll is open gives 400
  ``scroll_exists`` (airbyte#8395, intercom-ruby#292).  ``per_workspace=False``
  gives each collection its own slot instead (the lenient reading).
* A scroll unused for ``expiry_seconds`` or more (measured on the server's clock from
  its last answered batch) expires: its ``scroll_param`` gives 404
  ``not_found``, and it no longer blocks a new start.  Serving the empty
  batch ends a scroll at once, freeing the slot.
* A 5xx fault (kind ``error`` or ``html_error``) on a request carrying the
  scroll's current ``scroll_param`` ends that scroll, as a 500 does at
  Intercom ("start again"): that ``scroll_param`` then gives 404 and a new
  start is allowed.  `IntercomServer` calls `ScrollRegistry.abandon` for it.
* The cursor lives on the server (``cursor="server"``, the default): every
  batch of one scroll carries the same ``scroll_param``, as the python-intercom
  3.1.0 ``tests/unit``, intercom-ruby ``spec/spec_helper.rb`` and intercom-node
  ``test/`` scroll fixtures do, and each request with it gets the next batch.
  So re-sending a request whose answer was lost (a reset, a hang, a body cut
  short) does not repeat that batch: it moves on, and the lost batch is gone.
  The 1.x docs: any error or timeout during a scroll means starting again.
  The scroll stays open after such a loss, so a fresh start gets
  ``scroll_exists`` until it expires.
* (choice, ``cursor="single_use"``) Every ``scroll_param`` is single use:
  each answer carries a fresh one, and only the latest one continues the
  scroll.  Sending one the open scroll has
  already spent (retrying a request whose answer was lost, or cut short by a
  ``bad_body`` fault) gives 404 and ends that scroll, so the client starts
  again at once instead of silently skipping a batch or waiting for expiry.
  Requests that never reach the scroll (401, 429, a dropped connection) do
  not spend anything; retrying them is safe.  A lost answer to a *start* is
  the one case a client cannot repair: it has no ``scroll_param``, so new
  starts get ``scroll_exists`` until the orphaned scroll expires.

Snapshot consistency: a scroll walks the collection's list as it was when the
scroll started.  `Workspace.insert_user` replaces that list's tuple instead
of changing it in place, so the scroll keeps the old tuple and stable positions in it:
every user of the snapshot is yielded exactly once, and users signed up
during the scroll (``ServerConfig.insert_users_every``) do not appear in it
(the next scroll sees them).

``scroll_param`` values look like UUIDs and are derived from the server's
seed, the collection, the scroll's serial number and the batch number, so a
replayed sequence of requests sees the same values (and the same seeded
faults, which are keyed by URL).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import orjson

from ._common import ApiError
from ._workspace import ListKey, Workspace

__all__ = [
    "EXPIRED_MESSAGE",
    "SCROLL_EXISTS_MESSAGE",
    "SCROLL_FILTERS",
    "SCROLL_KINDS",
    "ScrollRegistry",
]

#: Collections that can be scrolled -> the ``type`` of their list body.
SCROLL_KINDS: Final = {
    "users": "user.list",
    "contacts": "contact.list",
    "companies": "company.list",
}
#: Query parameters that filter the page-numbered lists; a scroll refuses them.
SCROLL_FILTERS: Final = frozenset(
    {"tag_id", "segment_id", "company_id", "type", "created_since", "email", "user_id"}
)
SCROLL_EXISTS_MESSAGE: Final = (
    "scroll already exists for this workspace. Please ensure to use the scroll "
    "parameter received in the previous request"
)
EXPIRED_MESSAGE: Final = "scroll parameter not found or expired"


@dataclass(slots=True)
class _Scroll:
    """One open scroll.

    Attributes:
        serial: Scrolls started on the server before this one (any collection).
        snapshot: The collection's serialised list when the scroll started.
        position: Index in ``snapshot`` of the next batch's first object.
        batches: Batches answered so far.
        param: The only ``scroll_param`` that continues the scroll now.
        spent: The ``scroll_param`` values answered before; one coming back
            ends the scroll.
        used_at: Clock time of the last answered batch (expiry counts from it).
    """

    serial: int
    snapshot: tuple[bytes, ...]
    position: int = 0
    batches: int = 0
    param: str = ""
    used_at: float = 0.0
    spent: set[str] = field(default_factory=set)


class ScrollRegistry:
    """The scrolls of one server, at most one open per collection.

    Args:
        workspace: The workspace whose collections are scrolled.
        page_size: Objects per batch (the last non-empty batch may be shorter).
        expiry_seconds: A scroll not used for this long (clock seconds) expires.
        clock: Returns the current time in seconds (the server's injectable
            clock, so tests expire scrolls without sleeping).
        seed: Mixed into every ``scroll_param``.
        on_batch: Called with the collection name after every answered batch
            (the server counts user batches towards ``insert_users_every``).
        cursor: ``"server"``: one ``scroll_param`` for a whole scroll, each use
            moves on; ``"single_use"``: a fresh one per batch (see the module docstring).
        per_workspace: One open scroll across every collection (True) or one
            per collection (False).
    """

    def __init__(
        self,
        workspace: Workspace,
        *,
        page_size: int,
        expiry_seconds: float,
        clock: Callable[[], float],
        seed: int = 0,
        on_batch: Callable[[str], None] | None = None,
        cursor: str = "server",
        per_workspace: bool = True,
    ) -> None:
        self._workspace = workspace
        self._page_size = page_size
        self._expiry = expiry_seconds
        self._clock = clock
        self._seed = seed
        self._on_batch = on_batch
        self._single_use = cursor == "single_use"
        self._per_workspace = per_workspace
        self._open: dict[str, _Scroll] = {}
        self._started = 0

    def serve(self, kind: str, query: Mapping[str, str]) -> bytes:
        """Answer one scroll request of the collection ``kind``; return the JSON body.

        Args:
            kind: ``"users"``, ``"contacts"`` or ``"companies"``.
            query: The request's query parameters; ``scroll_param`` continues
                a scroll, its absence starts one.

        Raises:
            ApiError: 400 ``parameter_invalid`` for a filter, 400
                ``scroll_exists`` for a start while a scroll is open, 404
                ``not_found`` for an unknown, spent or expired ``scroll_param``
                (a spent one also ends the open scroll).
        """
        filters = sorted(SCROLL_FILTERS.intersection(query))
        if filters:
            raise ApiError(
                400,
                "parameter_invalid",
                f"scroll has no filters: it always returns every {kind[:-1]}; "
                f"remove {', '.join(filters)}",
            )
        now = self._clock()
        scroll = self._live(kind, now)
        param = query.get("scroll_param")
        if param is None:
            if scroll is not None or (self._per_workspace and self._any_live(now)):
                raise ApiError(400, "scroll_exists", SCROLL_EXISTS_MESSAGE)
            scroll = self._start(kind)
        elif scroll is None or param != scroll.param:
            if scroll is not None and param in scroll.spent:
                # The client lost an answer and cannot know where it stands:
                # end the scroll so that its fresh start is not refused.
                del self._open[kind]
            raise ApiError(404, "not_found", EXPIRED_MESSAGE)

        end = scroll.position + self._page_size
        batch = scroll.snapshot[scroll.position : end]
        scroll.position += len(batch)
        scroll.batches += 1
        scroll.used_at = now
        if self._single_use:
            if param is not None:
                scroll.spent.add(param)
            scroll.param = self._make_param(kind, scroll)
        elif not scroll.param:
            scroll.param = self._make_param(kind, scroll)
        if not batch:
            # The empty batch ends the scroll and frees the slot at once; its
            # scroll_param is spent with it.
            del self._open[kind]
        if self._on_batch is not None:
            self._on_batch(kind)
        return b"".join(
            (
                b'{"type":"%s","%s":[' % (SCROLL_KINDS[kind].encode(), kind.encode()),
                b",".join(batch),
                b'],"scroll_param":',
                orjson.dumps(scroll.param),
                b"}",
            )
        )

    def abandon(self, kind: str, param: str | None) -> None:
        """End the open scroll of ``kind`` if ``param`` is its current ``scroll_param``.

        For a 5xx answered instead of a batch: the client has to start again,
        so the slot is freed and ``param`` gives 404 from now on.  Any other
        ``param`` (None for a start request, or a stale one) changes nothing.
        """
        scroll = self._open.get(kind)
        if scroll is not None and param is not None and param == scroll.param:
            del self._open[kind]

    def batch_number(self, kind: str, param: str | None) -> int:
        """The batch a request asks for now: 1 to start, n + 1 after batch n, 0 if unknown.

        For `ServerStats.pages`.  0 means ``param`` is unknown, spent or expired
        at this moment (the request will get 404).
        """
        if param is None:
            return 1
        scroll = self._live(kind, self._clock())
        if scroll is None or param != scroll.param:
            return 0
        return scroll.batches + 1

    def _any_live(self, now: float) -> bool:
        """Is a scroll of any collection open (not expired) now?"""
        return any(self._live(kind, now) is not None for kind in list(self._open))

    def _live(self, kind: str, now: float) -> _Scroll | None:
        """The open scroll of ``kind``, forgetting it first if it has expired."""
        scroll = self._open.get(kind)
        if scroll is not None and now - scroll.used_at >= self._expiry:
            del self._open[kind]
            return None
        return scroll

    def _start(self, kind: str) -> _Scroll:
        snapshot = self._workspace.list_blobs(ListKey(kind))
        assert snapshot is not None  # every collection has its whole-list key
        scroll = _Scroll(serial=self._started, snapshot=snapshot)
        self._started += 1
        self._open[kind] = scroll
        return scroll

    def _make_param(self, kind: str, scroll: _Scroll) -> str:
        """A fresh, UUID-shaped ``scroll_param`` for the batch after ``scroll.batches``."""
        key = f"{self._seed}\0{kind}\0{scroll.serial}\0{scroll.batches}".encode()
        digest = hashlib.blake2b(key, digest_size=16).hexdigest()
        return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"
