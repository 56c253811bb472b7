"""Seeded fault injection for the bundled server's page-numbered lists and scrolls.

`FaultConfig` says how often each fault happens; `FaultInjector` decides, for
one list request, which fault (if any) it gets.  This module only decides: the
server (`asyncfetch.testing._server`) turns a `Fault` into bytes on the wire, using the
bodies defined here.

Determinism: each request's decision comes from a `random.Random` seeded with
``(seed, path + query, how many times that exact URL was requested before)``,
never from a shared stream, so concurrent requests arriving in another order
get the same faults URL by URL.  The one exception is by design: a throttle
fault opens a server-wide burst of 429s, and which requests fall inside the
burst depends on arrival order, as with a real rate limiter.  Set
``throttle_burst=0`` for fully order-independent decisions.

Liveness: no URL gets more than ``max_consecutive_faults`` faults in a row
(burst 429s included), so a client that tries each page more often than that
always finishes.

Scrolls (``/users/scroll`` etc.) get faults too, but that bound does not make
a long scroll finish: a 5xx (``error``, ``html_error``) ends the scroll, and a
``bad_body`` cut from a real answer spends its single-use ``scroll_param``,
so the client has to start again, and each restart walks fresh
``scroll_param`` URLs.  One attempt over B batches survives with a chance of
about ``(1 - error_rate - html_error_rate - bad_body_rate / 2) ** B``; keep
those rates small for tests that scroll far.  A cut answer to a scroll
*start* leaves an open scroll nobody can continue, so starts get
``scroll_exists`` until it expires (``ServerConfig.scroll_expiry_seconds``).
429s, resets, hangs and slow answers leave the scroll as it was: retrying
the same request works.

Two faults are about time and headers rather than one request: a *hiccup*
(``hiccup_seconds``) answers every list request 503 with ``Retry-After: 0``
for a while from the first one, as a brief outage whose answers ask for no
wait (a client that took ``Retry-After: 0`` at its word would spend all its
tries in milliseconds); and *odd headers* (``odd_headers_rate``) put absurd
values (``1e999``, a 400-digit number, ``nan``, ``-1``, text, nothing) into
an answer's ``X-RateLimit-*`` and ``Retry-After`` headers, which a client
must read as "not said", never crash on.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ._common import is_int

__all__ = [
    "BAD_BODY_HTML",
    "ERROR_CODES",
    "FAULT_KINDS",
    "HTML_ERROR_PAGES",
    "ODD_HEADER_NAMES",
    "ODD_HEADER_VALUES",
    "Fault",
    "FaultConfig",
    "FaultInjector",
]

#: Fault kinds, in the order they are checked against a request's draw; also
#: the keys of ``ServerStats.faults`` (with ``"hiccup"`` and ``"odd_headers"``).
FAULT_KINDS: Final = ("error", "html_error", "bad_body", "throttle", "reset", "hang", "slow")

#: ``odd_headers`` faults: the values, one picked by the draw, put in every
#: ``X-RateLimit-*`` header and ``Retry-After`` of the answer.
ODD_HEADER_VALUES: Final = ("1e999", "9" * 400, "nan", "-1", "soon", "")

#: The rate-limit headers an ``odd_headers`` fault garbles.
ODD_HEADER_NAMES: Final = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
)

#: ``error`` faults: status -> (Intercom error code, message) of the error.list body.
ERROR_CODES: Final[dict[int, tuple[str, str]]] = {
    500: ("server_error", "Internal server error"),
    502: ("server_error", "Bad gateway"),
    503: ("service_unavailable", "Service unavailable, please retry"),
    504: ("server_error", "Gateway timeout"),
}

#: ``html_error`` faults: status -> the page a proxy in front of the API answers with.
HTML_ERROR_PAGES: Final[dict[int, bytes]] = {
    status: (
        b"<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
        b"<center><h1>%d %s</h1></center>\r\n<hr><center>nginx</center>\r\n"
        b"</body>\r\n</html>\r\n" % (status, reason, status, reason)
    )
    for status, reason in ((502, b"Bad Gateway"), (503, b"Service Temporarily Unavailable"))
}

#: ``bad_body`` faults (HTML variant): a 200 page no API would send, as from a
#: captive portal or a misconfigured proxy.
BAD_BODY_HTML: Final = (
    b"<!DOCTYPE html>\n<html><head><title>Maintenance</title></head>\n"
    b"<body><h1>We&rsquo;ll be right back</h1><p>Scheduled maintenance.</p></body></html>\n"
)

# The fields holding a probability, in FAULT_KINDS order.
_RATE_FIELDS: Final = tuple(f"{kind}_rate" for kind in FAULT_KINDS)
# Rates may add up to 1 give or take float rounding (0.1 + 0.2 + 0.7 > 1.0).
_RATE_SUM_SLACK: Final = 1e-9


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, kw_only=True)
class FaultConfig:
    """How often the bundled server misbehaves on list requests.

    Every rate is the probability, per list request (``/users``,
    ``/companies``, ``/companies/{id}/users``, ``/contacts``, and the scrolls
    ``/users/scroll``, ``/contacts/scroll``, ``/companies/scroll``, after
    authentication), of one fault kind; a request gets at most one kind, so the
    rates may add up to 1 at most.

    Attributes:
        seed: Seeds every decision; the same seed and URLs give the same faults.
        error_rate: Answer 500, 502, 503 or 504 (one picked by the draw) with an
            Intercom ``error.list`` body (``server_error`` / ``service_unavailable``).
        html_error_rate: Answer 502 or 503 with a proxy's ``text/html`` page
            and no ``X-RateLimit-*`` headers (the API never saw the request).
        bad_body_rate: Answer 200 with a body that is not the expected JSON:
            by the draw either an HTML page or the real page cut in half.
        throttle_rate: Start a 429 burst: this request and the next
            ``throttle_burst`` list requests to the server get 429
            ``rate_limit_exceeded`` with ``X-RateLimit-Remaining: 0``.
        throttle_burst: Further list requests, server-wide, inside a burst (0 or more).
        retry_after_share: Share of 429s (drawn per request) that carry a
            ``Retry-After`` header; the others carry none, so the client must
            wait for ``X-RateLimit-Reset``.
        retry_after_seconds: The ``Retry-After`` value, integer seconds (0 or more).
        reset_rate: Close the connection without answering (a TCP reset).
        hang_rate: Never answer: hold the request ``hang_seconds``, then close
            the connection.  A client that gives up first cancels it.
        hang_seconds: How long a hung request is held, in seconds.
        jitter_ms: Extra latency drawn uniformly from 0 to ``jitter_ms``
            milliseconds, on every list request (faulty or not).
        slow_rate: Answer correctly but ``slow_ms`` late.
        slow_ms: Extra latency of a slow answer, in milliseconds.
        max_consecutive_faults: The most faults one URL (path + query) gets in
            a row; the next request for it is answered normally (0 disables faults).
        hiccup_seconds: For this many seconds (on the server's clock) from the
            first list request, every list request is answered 503
            ``service_unavailable`` with ``Retry-After: 0``, whatever the other
            settings and ``max_consecutive_faults`` say.  0: no hiccup.
        odd_headers_rate: Probability, drawn on its own, that an answer
            (normal, or any fault's that has headers) carries an absurd value
            (`ODD_HEADER_VALUES`) in every ``X-RateLimit-*`` header and in
            ``Retry-After``.
    """

    seed: int = 0
    error_rate: float = 0.0
    html_error_rate: float = 0.0
    bad_body_rate: float = 0.0
    throttle_rate: float = 0.0
    throttle_burst: int = 5
    retry_after_share: float = 0.5
    retry_after_seconds: int = 1
    reset_rate: float = 0.0
    hang_rate: float = 0.0
    hang_seconds: float = 30.0
    jitter_ms: float = 0.0
    slow_rate: float = 0.0
    slow_ms: float = 500.0
    max_consecutive_faults: int = 3
    hiccup_seconds: float = 0.0
    odd_headers_rate: float = 0.0

    def __post_init__(self) -> None:
        if not is_int(self.seed):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        for name in (*_RATE_FIELDS, "retry_after_share", "odd_headers_rate"):
            value = getattr(self, name)
            if not (_is_number(value) and 0 <= value <= 1):
                raise ValueError(f"{name} must be a probability from 0 to 1, got {value!r}")
        total = sum(getattr(self, name) for name in _RATE_FIELDS)
        if total > 1 + _RATE_SUM_SLACK:
            raise ValueError(
                f"{', '.join(_RATE_FIELDS)} must add up to 1 at most "
                f"(a request gets one fault at most), got {total:g}"
            )
        for name in ("hang_seconds", "jitter_ms", "slow_ms", "hiccup_seconds"):
            value = getattr(self, name)
            if not (_is_number(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("throttle_burst", "retry_after_seconds", "max_consecutive_faults"):
            value = getattr(self, name)
            if not (is_int(value) and value >= 0):
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")

    @property
    def active(self) -> bool:
        """True if any fault rate, ``jitter_ms`` or ``hiccup_seconds`` is above 0
        (the server has work to do)."""
        return (
            self.jitter_ms > 0
            or self.hiccup_seconds > 0
            or self.odd_headers_rate > 0
            or any(getattr(self, name) > 0 for name in _RATE_FIELDS)
        )

    @classmethod
    def parse(cls, spec: str) -> FaultConfig:
        """Build a config from ``"key=value,key=value"``, e.g. ``"error_rate=0.05,seed=3"``.

        Keys are the field names; spaces around keys, values and commas are
        ignored; an empty (or blank) spec means no faults.

        Raises:
            ValueError: An unknown or repeated key, a value that does not
                parse as the field's type, or one the field refuses.
        """
        converters: dict[str, Callable[[str], int | float]] = {
            f.name: int if f.type == "int" else float for f in dataclasses.fields(cls)
        }
        values: dict[str, int | float] = {}
        for item in spec.split(","):
            if not item.strip():
                continue  # "", or a trailing comma
            key, eq, raw = (part.strip() for part in item.partition("="))
            if key not in converters:
                raise ValueError(
                    f"unknown fault setting {key!r} in {spec!r}; known: {', '.join(converters)}"
                )
            if not eq or not raw:
                raise ValueError(f"fault setting {key!r} needs a value, as in {key}=VALUE")
            if key in values:
                raise ValueError(f"fault setting {key!r} is given twice in {spec!r}")
            try:
                values[key] = converters[key](raw)
            except ValueError:
                kind = "an int" if converters[key] is int else "a number"
                raise ValueError(f"{key} must be {kind}, got {raw!r}") from None
        return cls(**values)  # type: ignore[arg-type]  # each value matches its field


@dataclass(frozen=True, slots=True)
class Fault:
    """The decision for one list request.

    Attributes:
        kind: One of `FAULT_KINDS`, or None for a normal answer.
        delay_s: Seconds to wait before answering (jitter, plus ``slow_ms`` for ``slow``).
        status: The status of an ``error``, ``html_error`` or ``throttle`` answer.
        retry_after: ``Retry-After`` seconds of a ``throttle`` or ``hiccup``
            answer, or None for no header.
        html: For ``bad_body``: an HTML page (True) or truncated JSON (False).
        odd_header: The absurd value to put in the answer's rate-limit headers
            (an ``odd_headers`` fault, on top of any kind), or None.
    """

    kind: str | None
    delay_s: float = 0.0
    status: int = 200
    retry_after: int | None = None
    html: bool = False
    odd_header: str | None = None


class FaultInjector:
    """Decides the fault of each list request; keeps per-URL and burst state.

    Args:
        config: The rates.  One injector per server: its state is the server's
            history (a counter per distinct URL seen, so memory grows with the
            number of distinct pages requested, not with requests).
    """

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        # Cumulative thresholds: a draw u in [0, 1) picks the first kind with u < bound.
        bounds: list[tuple[float, str]] = []
        total = 0.0
        for kind, name in zip(FAULT_KINDS, _RATE_FIELDS, strict=True):
            rate = getattr(config, name)
            if rate > 0:
                total += rate
                bounds.append((total, kind))
        self._bounds = tuple(bounds)
        self._requests: dict[str, int] = {}  # URL -> list requests seen for it
        self._streak: dict[str, int] = {}  # URL -> faults in a row, up to now
        self._burst_left = 0  # requests still to get 429 from the current burst
        self._hiccup_until: float | None = None  # server time the hiccup ends

    def decide(self, url: str, now: float = 0.0) -> Fault:
        """Return the fault for one request of ``url`` (path + query) at the
        server's time ``now`` and record it."""
        fault = self._decide(url, now)
        if self.config.odd_headers_rate > 0:
            # A draw of its own, after the others: it changes none of them.
            rng = random.Random(f"{self.config.seed}\0odd\0{self._requests[url]}\0{url}")
            odd_u, value_u = rng.random(), rng.random()
            if odd_u < self.config.odd_headers_rate:
                value = ODD_HEADER_VALUES[int(value_u * len(ODD_HEADER_VALUES))]
                return dataclasses.replace(fault, odd_header=value)
        return fault

    def _decide(self, url: str, now: float) -> Fault:
        config = self.config
        attempt = self._requests.get(url, 0)
        self._requests[url] = attempt + 1
        if config.hiccup_seconds > 0:
            if self._hiccup_until is None:
                self._hiccup_until = now + config.hiccup_seconds
            if now < self._hiccup_until:
                return Fault("hiccup", status=503, retry_after=0)
        # A str seed is hashed with SHA-512, not hash(): the same in every process.
        rng = random.Random(f"{config.seed}\0{attempt}\0{url}")
        # Always four draws in this order, so each one's meaning is fixed.
        kind_u, jitter_u, variant_u, retry_u = (rng.random() for _ in range(4))
        delay_s = jitter_u * config.jitter_ms / 1000

        kind: str | None = None
        in_burst = self._burst_left > 0
        if in_burst:
            self._burst_left -= 1  # counts every list request, even one let through below
            kind = "throttle"
        else:
            kind = next((k for bound, k in self._bounds if kind_u < bound), None)
        if kind is not None and self._streak.get(url, 0) >= config.max_consecutive_faults:
            kind = None  # the liveness guarantee beats every fault, bursts included
        if kind is None:
            self._streak.pop(url, None)
            return Fault(None, delay_s)
        self._streak[url] = self._streak.get(url, 0) + 1

        if kind == "throttle":
            if not in_burst:
                self._burst_left = config.throttle_burst
            retry_after = config.retry_after_seconds if retry_u < config.retry_after_share else None
            return Fault(kind, delay_s, status=429, retry_after=retry_after)
        if kind == "error":
            statuses = tuple(ERROR_CODES)
            return Fault(kind, delay_s, status=statuses[int(variant_u * len(statuses))])
        if kind == "html_error":
            statuses = tuple(HTML_ERROR_PAGES)
            return Fault(kind, delay_s, status=statuses[int(variant_u * len(statuses))])
        if kind == "bad_body":
            return Fault(kind, delay_s, html=variant_u < 0.5)
        if kind == "slow":
            return Fault(kind, delay_s + config.slow_ms / 1000)
        return Fault(kind, delay_s)  # reset, hang
