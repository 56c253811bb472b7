"""What a base URL may be: http(s) with a host, no credentials, no query, and
plain http only to a loopback host (or when allowed), since every request
carries a secret header.

Shared by the Intercom client and the generic page source.
"""

from __future__ import annotations

import ipaddress
import re

from yarl import URL

__all__ = ["check_base_url"]


def check_base_url(base_url: str, *, allow_insecure_http: bool) -> URL:
    try:
        url = URL(base_url)
    except (TypeError, ValueError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"base_url must be an http:// or https:// URL with a host, got {_shown(base_url)!r}"
        )
    if url.user is not None or url.password is not None:
        # Not shown: the part before "@" is often the token itself.
        raise ValueError(
            "base_url must not carry credentials before '@': pass the token as token=... (--token)"
        )
    if url.query_string or url.fragment:
        raise ValueError(f"base_url must not carry a query or fragment, got {_shown(base_url)!r}")
    if url.scheme == "http" and not allow_insecure_http and not _is_loopback(url.host):
        raise ValueError(
            f"base_url {_shown(base_url)!r} is plain http:// to a non-loopback host, which "
            "would send the token unencrypted: use https://, or allow it explicitly with "
            "allow_insecure_http=True (--allow-insecure-http)"
        )
    return url


def _shown(base_url: object) -> str:
    """The URL for an error message, with anything before an "@" (a token?) masked."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)?[^/@]*@", r"\1***@", str(base_url))


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
