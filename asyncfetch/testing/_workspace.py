"""A deterministic synthetic Intercom workspace for the bundled server.

`Workspace.generate(users=N, seed=S)` always builds the same workspace for the
same ``(N, S)``: users, leads (contacts), companies, tags, segments and admins
shaped like Intercom API 1.x objects (about 1 KB of JSON per user).  Every
object is serialised to JSON exactly once, here, so the server only ever
concatenates precomputed bytes.

Membership rules (documented because tests and the demo rely on them):

* Tags (8, in ``Workspace.tags`` order):

  - ``newsletter`` -- the large tag, ``Workspace.largest_tag_id``: carried by
    every user with an even index, i.e. exactly ``ceil(users / 2)`` users;
  - ``beta-tester`` 25 %, ``churn-risk`` 12 %, ``vip`` 6 %, ``partner`` 3 %,
    ``enterprise-pilot`` 1.5 %, ``press`` 0.5 % of users, drawn at random;
  - ``legacy-import`` -- carried by nobody (``Workspace.empty_tag_id``), so an
    empty list can be requested.

  Companies and leads carry tags by the same rules applied to their own
  index (so even-index leads carry the large tag too).
* Leads are in the lists of the tags and segments they belong to: those
  ``users`` lists hold users and ``"type": "contact"`` records, merged in
  creation order (Intercom's List by Tag, Segment, Company: "a pageable list
  of users and leads"; intercom-go ``fixtures/segments.json`` has a segment
  with ``person_type: "contact"``).  ``leads_in_lists=False`` turns it off.
* Segments (5) are rules over user attributes: ``Active`` (last request in the
  last 30 days), ``New`` (created in the last 180 days), ``Paying`` (plan is
  not ``free``), ``Enterprise`` (plan is ``enterprise``), ``Slipping away`` (no
  request for 90 days).  Leads are in ``Active``, ``New`` and ``Slipping
  away`` by the same rules.  A known segment asked for companies gives an
  empty ``company.list``.
* A user's nested ``companies`` hold ``{"type": "company", "id": ...}`` only,
  as the 1.x User Model shows them (``company_refs_id_only=False`` adds
  ``company_id`` and ``name``).  Users also carry the model's ``referrer``,
  ``utm_*`` and ``location_data`` with ``latitude``/``longitude``.
* Companies: ``max(3, users // 100)``.  90 % of users belong to one company,
  chosen with Zipf weights ``1 / (j + 1)`` so company 0 is much bigger than
  the rest (see ``Workspace.largest_company_id``); 10 % of
  those also belong to a second company.
* Contacts (leads): ``users // 4``.  Admins: 4.

Every list is in creation order, ascending: ``created_at`` strictly increases
with the index, and so does ``id`` (built like a MongoDB ObjectId from the
creation time, a per-workspace machine part and the index).  The exception is
`Workspace.insert_user`, which simulates sign-ups during a fetch: each new user
goes to the front of the all-users list and of the large tag's list.

Users' ``updated_at`` (whole seconds) all differ when generated, so a list
sorted by it has one order; `Workspace.touch` updates users during a fetch
(``updated_at`` set to the server clock's now), and `Workspace.list_blobs`
with ``sort=`` gives the all-users list sorted as ``GET /users?sort=&order=``
asks (see `_server.py` for the rules and their sources).
"""

from __future__ import annotations

import gc
import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import orjson

__all__ = ["SORT_FIELDS", "ListKey", "Workspace"]

Json = dict[str, Any]

#: Largest workspace: ids hold the index in 6 hex digits.
MAX_USERS: Final = 1_000_000

# The workspace's history: objects are created between START and NOW.  A fixed
# NOW (2024-01-01 UTC) instead of time.time() keeps the workspace deterministic.
_START: Final = 1_546_300_800  # 2019-01-01 UTC
_NOW: Final = 1_704_067_200  # 2024-01-01 UTC
_DAY: Final = 86_400

# (name, share of users carrying it).  None marks the large tag, carried by
# every even index so its size is exact and independent of the seed.
_TAGS: Final[tuple[tuple[str, float | None], ...]] = (
    ("newsletter", None),
    ("beta-tester", 0.25),
    ("churn-risk", 0.12),
    ("vip", 0.06),
    ("partner", 0.03),
    ("enterprise-pilot", 0.015),
    ("press", 0.005),
    ("legacy-import", 0.0),
)
_SEGMENTS: Final = ("Active", "New", "Paying", "Enterprise", "Slipping away")
_PLANS: Final = ("free", "starter", "pro", "enterprise")
_PLAN_WEIGHTS: Final = (40, 30, 20, 10)
_SEATS: Final = {"free": (1, 1), "starter": (1, 5), "pro": (5, 50), "enterprise": (50, 500)}
_PRICE: Final = {"free": 0.0, "starter": 19.0, "pro": 49.0, "enterprise": 99.0}
_REGIONS: Final = ("eu", "us", "apac", "latam")
_FIRST: Final = (
    "Ada", "Alan", "Barbara", "Claude", "Dorothy", "Edsger", "Frances", "Grace",
    "Hedy", "Ivan", "Joan", "Ken", "Leslie", "Margaret", "Niklaus", "Radia",
)  # fmt: skip
_LAST: Final = (
    "Lovelace", "Turing", "Liskov", "Shannon", "Vaughan", "Dijkstra", "Allen",
    "Hopper", "Lamarr", "Sutherland", "Clarke", "Thompson", "Lamport",
    "Hamilton", "Wirth", "Perlman",
)  # fmt: skip
_WORDS: Final = (
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark",
    "Wayne", "Tyrell", "Cyberdyne", "Soylent", "Wonka", "Gringotts", "Oscorp",
)  # fmt: skip
_SUFFIXES: Final = ("Inc", "Ltd", "GmbH", "Labs", "Group", "Systems")
_CITIES: Final = (
    ("Dublin", "EU", "IRL", "Ireland", "Leinster", "Europe/Dublin"),
    ("San Francisco", "NA", "USA", "United States", "California", "America/Los_Angeles"),
    ("London", "EU", "GBR", "United Kingdom", "England", "Europe/London"),
    ("Sydney", "OC", "AUS", "Australia", "New South Wales", "Australia/Sydney"),
    ("Sao Paulo", "SA", "BRA", "Brazil", "Sao Paulo", "America/Sao_Paulo"),
)
_COORDINATES: Final = {
    "Dublin": (53.3498, -6.2603),
    "San Francisco": (37.7749, -122.4194),
    "London": (51.5074, -0.1278),
    "Sydney": (-33.8688, 151.2093),
    "Sao Paulo": (-23.5505, -46.6333),
}
_REFERRERS: Final = ("https://www.google.com/", None, "https://news.ycombinator.com/", None)
_UTM: Final = (("spring-launch", "email"), (None, None), ("webinar", "social"))
_USER_AGENT: Final = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
#: The fields ``GET /users`` sorts by (Intercom's 1.x List Users: "Valid values:
#: created_at, last_request_at, signed_up_at, updated_at").
SORT_FIELDS: Final = ("created_at", "last_request_at", "signed_up_at", "updated_at")

# Distinct "machine" nibbles keep ids of different kinds apart.
_KIND_USER, _KIND_CONTACT, _KIND_COMPANY, _KIND_SEGMENT = 1, 2, 3, 4


class ListKey(NamedTuple):
    """Names one page-numbered list of the workspace.

    Attributes:
        collection: ``"users"``, ``"companies"`` or ``"contacts"`` -- also the
            items key of the list body.
        by: The filter: ``""`` (the whole collection), ``"tag_id"``,
            ``"segment_id"`` or ``"company"`` (users of the company whose
            Intercom ``id`` is ``value``).
        value: The filter's id; ``""`` when ``by`` is ``""``.
    """

    collection: str
    by: str = ""
    value: str = ""


@dataclass(frozen=True, slots=True)
class _Collection:
    """The objects of one collection, parsed and serialised, in creation order."""

    items: tuple[Json, ...]
    blobs: tuple[bytes, ...]


def _spread(rng: random.Random, count: int, start: int, end: int) -> list[int]:
    """Return ``count`` strictly increasing epoch seconds in ``[start, end)``.

    Index ``i`` gets slot ``floor(i * step)`` plus a jitter smaller than the
    slot width, so the order of creation is the order of the index.
    """
    step = (end - start) / max(count, 1)
    width = max(int(step), 1)
    return [start + int(i * step) + rng.randrange(width) for i in range(count)]


def _object_id(created_at: int, machine: int, kind: int, index: int) -> str:
    """A 24-hex-digit id like a MongoDB ObjectId: it sorts by creation time."""
    return f"{created_at:08x}{machine:08x}{kind:02x}{index:06x}"


class Workspace:
    """The synthetic workspace; build it with `Workspace.generate`.

    Attributes:
        users, companies, contacts: The parsed objects, in creation order.
        tags, segments, admins: The parsed objects of the small lists.
        company_ids: Maps each company's own ``company_id`` to its Intercom ``id``.
    """

    def __init__(self) -> None:
        # Filled in by generate(); a bare Workspace() is an empty shell.
        self.users: tuple[Json, ...] = ()
        self.companies: tuple[Json, ...] = ()
        self.contacts: tuple[Json, ...] = ()
        self.tags: tuple[Json, ...] = ()
        self.segments: tuple[Json, ...] = ()
        self.admins: tuple[Json, ...] = ()
        self.company_ids: dict[str, str] = {}
        self._collections: dict[str, _Collection] = {}
        self._members: dict[ListKey, tuple[int, ...]] = {}
        self._list_blobs: dict[ListKey, tuple[bytes, ...]] = {}
        self._small_bodies: dict[str, bytes] = {}
        self._machine = 0  # per-workspace part of every object id
        # The all-users list's indexes sorted by (field, order), made on demand
        # and dropped whenever a user is inserted or touched.
        self._sorted: dict[tuple[str, str], tuple[int, ...]] = {}
        self._user_index: dict[str, int] = {}

    # -- public queries ---------------------------------------------------------

    @property
    def largest_tag_id(self) -> str:
        """The id of the tag carried by every even-index user, lead and company.

        Users added by `insert_user` carry it too.
        """
        return str(self.tags[0]["id"])

    @property
    def empty_tag_id(self) -> str:
        """The id of a tag nobody carries (its lists are empty)."""
        return str(self.tags[-1]["id"])

    @property
    def largest_company_id(self) -> str:
        """The Intercom ``id`` of the company with the most users (the first on ties).

        With Zipf weights that is company 0 in any workspace of 1,000 users or
        more; only tiny workspaces can differ.
        """
        return str(max(self.companies, key=lambda c: int(c["user_count"]))["id"])

    def list_blobs(
        self, key: ListKey, *, sort: tuple[str, str] | None = None
    ) -> tuple[bytes, ...] | None:
        """Return the serialised items of the list ``key``, or None if it is unknown.

        An unknown ``key`` means an unknown tag, segment or company id (or
        collection); a known one may still be empty.

        ``sort``: ``(field, order)``, the all-users list (``ListKey("users")``)
        sorted by ``field`` (one of `SORT_FIELDS`), ``order`` ``"asc"`` or
        ``"desc"``; ties (equal values) go by creation (index) in the same
        direction, so the order is total.  Other lists ignore it.
        """
        if sort is not None and key == ListKey("users"):
            users = self._collections["users"].blobs
            return tuple(users[i] for i in self.sorted_user_indexes(*sort))
        blobs = self._list_blobs.get(key)
        if blobs is None and key in self._members:
            # Built lazily and kept: most filtered lists are never requested.
            coll = self._collections[key.collection].blobs
            leads = self._collections["contacts"].blobs
            blobs = tuple(coll[i] if i >= 0 else leads[~i] for i in self._members[key])
            self._list_blobs[key] = blobs
        return blobs

    @property
    def users_blobs(self) -> tuple[bytes, ...]:
        """`users` serialised, in the same (creation) order."""
        return self._collections["users"].blobs

    def sorted_user_indexes(self, field: str, order: str) -> tuple[int, ...]:
        """Indexes of `users` sorted by ``field`` in ``order`` (see `list_blobs`)."""
        if field not in SORT_FIELDS or order not in ("asc", "desc"):
            raise ValueError(f"cannot sort users by {field!r} {order!r}")
        cached = self._sorted.get((field, order))
        if cached is None:
            users = self.users
            ranked = sorted(range(len(users)), key=lambda i: (users[i][field], i))
            cached = tuple(ranked if order == "asc" else reversed(ranked))
            self._sorted[(field, order)] = cached
        return cached

    def touch(self, ids: Sequence[str], *, at: int) -> list[Json]:
        """Update the users whose ``id`` is in ``ids``: ``updated_at`` becomes ``at``.

        Simulates activity during a fetch: in a list sorted by ``updated_at``
        descending a touched user moves to the front (``at`` is the server's
        now), so the users it passes move one place on, as in the real API.
        Lists in creation order (unsorted requests, tags, segments, companies)
        keep their order; their copies of the user change.

        Returns:
            The touched users, as they are now.

        Raises:
            KeyError: An id names no user.
        """
        if not self._user_index or len(self._user_index) != len(self.users):
            self._user_index = {str(u["id"]): i for i, u in enumerate(self.users)}
        indexes = [self._user_index[str(i)] for i in ids]
        coll = self._collections["users"]
        items, blobs = list(coll.items), list(coll.blobs)
        for i in indexes:
            # A new dict, so a record someone already holds does not change under them.
            items[i] = {**items[i], "updated_at": at}
            blobs[i] = orjson.dumps(items[i])
        self._collections["users"] = _Collection(items=tuple(items), blobs=tuple(blobs))
        self.users = self._collections["users"].items
        self._changed_users()
        return [items[i] for i in indexes]

    def _changed_users(self) -> None:
        """Forget what was built from the users: sorted orders and joined lists."""
        self._sorted.clear()
        # Rebuilt from _members on the next list_blobs(key).
        for key in [k for k in self._list_blobs if k.collection == "users"]:
            del self._list_blobs[key]

    def items(self, key: ListKey) -> list[Json]:
        """Return the parsed items of the list ``key`` in API order.

        Raises:
            KeyError: ``key`` names an unknown list.
        """
        coll = self._collections[key.collection].items
        leads = self._collections["contacts"].items
        return [coll[i] if i >= 0 else leads[~i] for i in self._members[key]]

    def company_body(self, company_id: str) -> bytes | None:
        """The company whose own ``company_id`` this is, serialised; None if unknown."""
        intercom_id = self.company_ids.get(company_id)
        if intercom_id is None:
            return None
        return next((orjson.dumps(c) for c in self.companies if c["id"] == intercom_id), None)

    def small_list_body(self, name: str) -> bytes | None:
        """Return the whole body of ``/tags``, ``/segments`` or ``/admins``.

        ``name`` is ``"tags"``, ``"segments"`` or ``"admins"``; any other name
        gives None.
        """
        return self._small_bodies.get(name)

    # -- growth -----------------------------------------------------------------

    def insert_user(self) -> Json:
        """Sign up one new user, seen first in the all-users and large-tag lists.

        Simulates a list that grows during a fetch under Intercom's default
        newest-first order (``order=desc``): the user goes to position 0 of the
        all-users list and of the `largest_tag_id` list, so every later item of
        those two lists moves one place on (and may cross a page boundary).
        It is appended to `users`, which stays in creation order.

        The user is shaped like the others, is newer than all of them, carries
        the large tag and no segment or company (so no other list changes), and
        has a fresh index and ``id``.  The n-th insertion into the workspace of
        ``(users, seed)`` always creates the same user.

        Returns:
            The new user.
        """
        index = len(self.users)
        created = max(_NOW, self.users[-1]["created_at"] if self.users else 0) + 1
        # Its own stream, so growing never shifts what generate() drew.
        rng = random.Random(f"insert\0{self._machine}\0{index}")
        plan = rng.choices(_PLANS, weights=_PLAN_WEIGHTS)[0]
        user = self._user(
            rng,
            index,
            _object_id(created, self._machine, _KIND_USER, index),
            created,
            created,
            plan,
            [self._tag_ref(0)],
            [],
            [],
        )
        users = self._collections["users"]
        self._collections["users"] = _Collection(
            items=(*users.items, user), blobs=(*users.blobs, orjson.dumps(user))
        )
        self.users = self._collections["users"].items
        for key in (ListKey("users"), ListKey("users", "tag_id", self.largest_tag_id)):
            self._members[key] = (index, *self._members[key])
        self._changed_users()
        return user

    # -- generation -------------------------------------------------------------

    @classmethod
    def generate(
        cls,
        *,
        users: int = 1000,
        seed: int = 0,
        leads_in_lists: bool = True,
        company_refs_id_only: bool = True,
    ) -> Workspace:
        """Build the workspace for ``(users, seed)``; the same inputs give the same bytes.

        Args:
            users: How many users; companies, leads and list sizes scale with it
                (see the module docstring).  0 to `MAX_USERS`.
            seed: Seeds the `random.Random` that picks names, timestamps,
                attributes and random memberships.
            leads_in_lists: Leads carry tags and belong to segments, and the
                users lists of a tag or segment hold them too (Intercom: "a
                pageable list of users and leads").  False: leads carry none.
            company_refs_id_only: A user's nested ``companies`` hold
                ``{"type": "company", "id": ...}`` only, as the 1.x User Model
                shows them; False adds ``company_id`` and ``name``.
        """
        if isinstance(users, bool) or not isinstance(users, int) or not 0 <= users <= MAX_USERS:
            raise ValueError(f"users must be an int from 0 to {MAX_USERS}, got {users!r}")
        # Generation allocates millions of acyclic dicts; the cyclic collector
        # would rescan them over and over (half the run time at 100k users).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return cls._generate(
                users,
                random.Random(seed),
                leads_in_lists=leads_in_lists,
                company_refs_id_only=company_refs_id_only,
            )
        finally:
            if gc_was_enabled:
                gc.enable()

    @classmethod
    def _generate(
        cls,
        users: int,
        rng: random.Random,
        *,
        leads_in_lists: bool,
        company_refs_id_only: bool,
    ) -> Workspace:
        ws = cls()
        machine = ws._machine = rng.getrandbits(32)

        def object_id(created_at: int, kind: int, index: int) -> str:
            return _object_id(created_at, machine, kind, index)

        ws.tags = tuple(
            {"type": "tag", "id": str(100_000 + 7 * k + rng.randrange(7)), "name": name}
            for k, (name, _) in enumerate(_TAGS)
        )
        ws.segments = tuple(
            {
                "type": "segment",
                "id": object_id(_START - _DAY * (5 - k), _KIND_SEGMENT, k),
                "name": name,
                "created_at": _START - _DAY * (5 - k),
                "updated_at": _NOW - _DAY * k,
                "person_type": "user",
            }
            for k, name in enumerate(_SEGMENTS)
        )
        ws.admins = tuple(
            {
                "type": "admin",
                "id": str(900_000 + 11 * k),
                "name": f"{_FIRST[k]} {_LAST[k]}",
                "email": f"{_FIRST[k].lower()}@example.com",
            }
            for k in range(4)
        )

        # Companies first: users reference them.
        n_companies = max(3, users // 100)
        company_created = _spread(rng, n_companies, _START - 365 * _DAY, _START)
        company_tags = [ws._draw_tags(rng, j) for j in range(n_companies)]
        companies: list[Json] = []
        for j, created in enumerate(company_created):
            companies.append(
                {
                    "type": "company",
                    "id": object_id(created, _KIND_COMPANY, j),
                    "company_id": f"company-{j}",
                    "name": f"{_WORDS[j % len(_WORDS)]} {_SUFFIXES[j % len(_SUFFIXES)]} {j}",
                    "app_id": f"{machine:08x}",
                    "created_at": created,
                    "remote_created_at": created,
                    "updated_at": rng.randrange(created, _NOW),
                    "monthly_spend": 0,
                    "session_count": 0,
                    "user_count": 0,
                    "plan": {},
                    "custom_attributes": {
                        "industry": rng.choice(("saas", "retail", "finance", "health")),
                        "employees": rng.randrange(5, 5000),
                    },
                    "tags": {"type": "tag.list", "tags": [ws._tag_ref(k) for k in company_tags[j]]},
                    "segments": {"type": "segment.list", "segments": []},
                }
            )
        company_refs = [
            {"type": "company", "id": c["id"]}
            if company_refs_id_only
            else {
                "type": "company",
                "company_id": c["company_id"],
                "id": c["id"],
                "name": c["name"],
            }
            for c in companies
        ]
        # Zipf weights: company 0 is the big customer whose user list spans pages.
        cum_weights: list[float] = []
        total = 0.0
        for j in range(n_companies):
            total += 1.0 / (j + 1)
            cum_weights.append(total)
        company_range = range(n_companies)

        user_list: list[Json] = []
        tag_members: list[list[int]] = [[] for _ in _TAGS]
        segment_members: list[list[int]] = [[] for _ in _SEGMENTS]
        company_members: list[list[int]] = [[] for _ in company_range]
        for i, created in enumerate(_spread(rng, users, _START, _NOW)):
            user_tags = ws._draw_tags(rng, i)
            for k in user_tags:
                tag_members[k].append(i)
            member_of: list[int] = []
            if rng.random() < 0.9:
                member_of.append(rng.choices(company_range, cum_weights=cum_weights)[0])
                if rng.random() < 0.1:
                    second = rng.randrange(n_companies)
                    if second != member_of[0]:
                        member_of.append(second)
            for j in member_of:
                company_members[j].append(i)
            plan = rng.choices(_PLANS, weights=_PLAN_WEIGHTS)[0]
            # Squaring skews last requests towards NOW, like an active product.
            last_request = _NOW - int((_NOW - created) * rng.random() ** 2)
            user_segments = [
                k
                for k, inside in enumerate(
                    (
                        last_request >= _NOW - 30 * _DAY,
                        created >= _NOW - 180 * _DAY,
                        plan != "free",
                        plan == "enterprise",
                        last_request < _NOW - 90 * _DAY,
                    )
                )
                if inside
            ]
            for k in user_segments:
                segment_members[k].append(i)
            user_list.append(
                ws._user(
                    rng,
                    i,
                    object_id(created, _KIND_USER, i),
                    created,
                    last_request,
                    plan,
                    [ws._tag_ref(k) for k in user_tags],
                    [{"type": "segment", "id": ws.segments[k]["id"]} for k in user_segments],
                    [company_refs[j] for j in member_of],
                )
            )
        for j, company in enumerate(companies):
            company["user_count"] = len(company_members[j])
            company["session_count"] = 7 * len(company_members[j])
            company["monthly_spend"] = 19 * len(company_members[j])

        contact_list: list[Json] = []
        n_contacts = users // 4
        lead_tags: list[list[int]] = [[] for _ in _TAGS]
        lead_segments: list[list[int]] = [[] for _ in _SEGMENTS]
        # The leads' memberships come from a stream of their own, so the
        # objects drawn from ``rng`` stay those of a workspace without them.
        lead_rng = random.Random(f"leads\0{machine}")
        for i, created in enumerate(_spread(rng, n_contacts, _START, _NOW)):
            uuid = f"{rng.getrandbits(128):032x}"
            tags_of: list[int] = []
            segments_of: list[int] = []
            if leads_in_lists:
                tags_of = ws._draw_tags(lead_rng, i)
                seen_at = _NOW - int((_NOW - created) * lead_rng.random() ** 2)
                # The rules of the segments that apply to leads (no plan).
                segments_of = [
                    k
                    for k, inside in (
                        (0, seen_at >= _NOW - 30 * _DAY),
                        (1, created >= _NOW - 180 * _DAY),
                        (4, seen_at < _NOW - 90 * _DAY),
                    )
                    if inside
                ]
            for k in tags_of:
                lead_tags[k].append(i)
            for k in segments_of:
                lead_segments[k].append(i)
            contact_list.append(
                {
                    "type": "contact",
                    "id": object_id(created, _KIND_CONTACT, i),
                    "user_id": f"{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:]}",
                    "anonymous": True,
                    "email": f"lead{i}@example.net" if rng.random() < 0.5 else None,
                    "phone": None,
                    "name": None,
                    "pseudonym": f"{rng.choice(_WORDS)} Lead {i}",
                    "created_at": created,
                    "updated_at": rng.randrange(created, _NOW + 1),
                    "last_request_at": rng.randrange(created, _NOW + 1),
                    "custom_attributes": {"source": rng.choice(("ads", "blog", "referral"))},
                    "tags": {"type": "tag.list", "tags": [ws._tag_ref(k) for k in tags_of]},
                    "segments": {
                        "type": "segment.list",
                        "segments": [
                            {"type": "segment", "id": ws.segments[k]["id"]} for k in segments_of
                        ],
                    },
                    "companies": {"type": "company.list", "companies": []},
                }
            )

        # Whole seconds that all differ, so sort=updated_at has one order: a
        # value drawn twice moves up a second (rare: 10,000 users over 5 years).
        last = -1
        for user in sorted(user_list, key=lambda u: (u["updated_at"], u["created_at"])):
            last = user["updated_at"] = max(user["updated_at"], last + 1)
        ws.users, ws.companies, ws.contacts = (
            tuple(user_list),
            tuple(companies),
            tuple(contact_list),
        )
        for name in ("users", "companies", "contacts"):
            ws._add_collection(name, getattr(ws, name))
        ws.company_ids = {c["company_id"]: c["id"] for c in companies}

        def with_leads(members: list[int], leads: list[int]) -> tuple[int, ...]:
            """Users and leads (``~index``) of one list, merged in creation order."""
            return tuple(
                heapq.merge(
                    members,
                    (~i for i in leads),
                    key=lambda m: (
                        ws.users[m]["created_at"] if m >= 0 else contact_list[~m]["created_at"]
                    ),
                )
            )

        for k, tag in enumerate(ws.tags):
            ws._members[ListKey("users", "tag_id", tag["id"])] = with_leads(
                tag_members[k], lead_tags[k]
            )
            ws._members[ListKey("companies", "tag_id", tag["id"])] = tuple(
                j for j in company_range if k in company_tags[j]
            )
        for k, segment in enumerate(ws.segments):
            ws._members[ListKey("users", "segment_id", segment["id"])] = with_leads(
                segment_members[k], lead_segments[k]
            )
            ws._members[ListKey("companies", "segment_id", segment["id"])] = ()
        for j, company in enumerate(companies):
            ws._members[ListKey("users", "company", company["id"])] = tuple(company_members[j])
        for name, singular in (("tags", "tag"), ("segments", "segment"), ("admins", "admin")):
            body: Json = {"type": f"{singular}.list", name: list(getattr(ws, name))}
            ws._small_bodies[name] = orjson.dumps(body)
        return ws

    def _add_collection(self, name: str, items: Sequence[Json]) -> None:
        blobs = tuple(orjson.dumps(item) for item in items)
        self._collections[name] = _Collection(items=tuple(items), blobs=blobs)
        self._members[ListKey(name)] = tuple(range(len(items)))
        self._list_blobs[ListKey(name)] = blobs

    def _tag_ref(self, k: int) -> Json:
        tag = self.tags[k]
        return {"type": "tag", "id": tag["id"], "name": tag["name"]}

    @staticmethod
    def _draw_tags(rng: random.Random, index: int) -> list[int]:
        """Pick the tags (indexes into _TAGS) of the object at ``index``."""
        picked = []
        for k, (_, share) in enumerate(_TAGS):
            # Draw for every random tag, even share 0.0, so adding a tag to
            # _TAGS shifts every later draw the same way for every workspace.
            if (index % 2 == 0) if share is None else (rng.random() < share):
                picked.append(k)
        return picked

    def _user(
        self,
        rng: random.Random,
        i: int,
        user_id: str,
        created: int,
        last_request: int,
        plan: str,
        tags: list[Json],
        segments: list[Json],
        companies: list[Json],
    ) -> Json:
        """Build one v1 user object (about 1 KB of JSON)."""
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        city, continent, country_code, country, region, timezone = rng.choice(_CITIES)
        low, high = _SEATS[plan]
        seats = rng.randint(low, high)
        return {
            "type": "user",
            "id": user_id,
            "user_id": f"user-{i}",
            "anonymous": False,
            "email": f"{first.lower()}.{last.lower()}.{i}@example.com",
            "phone": None,
            "name": f"{first} {last}",
            "pseudonym": None,
            "avatar": {"type": "avatar", "image_url": None},
            "app_id": f"{user_id[8:16]}",
            "location_data": {
                "type": "location_data",
                "city_name": city,
                "continent_code": continent,
                "country_code": country_code,
                "country_name": country,
                "postal_code": None,
                "region_name": region,
                "timezone": timezone,
                "latitude": _COORDINATES[city][0],
                "longitude": _COORDINATES[city][1],
            },
            "created_at": created,
            "remote_created_at": created,
            "signed_up_at": created,
            # max(): users added by insert_user() were last seen after _NOW.
            "updated_at": rng.randrange(last_request, max(last_request, _NOW) + 1),
            "last_request_at": last_request,
            "session_count": rng.randrange(1, 500),
            "last_seen_ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
            "user_agent_data": _USER_AGENT,
            "unsubscribed_from_emails": rng.random() < 0.05,
            "marked_email_as_spam": False,
            "has_hard_bounced": False,
            "owner_id": None,
            # From the index, not from rng: adding these fields moved no other draw.
            "referrer": _REFERRERS[i % len(_REFERRERS)],
            "utm_campaign": _UTM[i % len(_UTM)][0],
            "utm_content": None,
            "utm_medium": _UTM[i % len(_UTM)][1],
            "utm_source": rng.choice(("google", "newsletter", None)),
            "utm_term": None,
            "custom_attributes": {
                "plan": plan,
                "seats": seats,
                "region": rng.choice(_REGIONS),
                "mrr": round(seats * _PRICE[plan], 2),
            },
            "social_profiles": {"type": "social_profile.list", "social_profiles": []},
            "tags": {"type": "tag.list", "tags": tags},
            "segments": {"type": "segment.list", "segments": segments},
            "companies": {"type": "company.list", "companies": companies},
        }
