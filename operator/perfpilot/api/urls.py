"""Checks of the URLs a profile and the operator's settings name (pure: the profile model uses them too)."""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit


def prometheus_url_problem(url: str) -> str | None:
    """What makes ``url`` unusable as a Prometheus base URL, or None; checked before any request is sent,
    since requests only finds out per query and reports it as an odd answer, not as a bad address."""
    # Before urlsplit, which silently drops tabs and newlines and so would accept a URL the user did not type.
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in url):
        return "expected a URL without spaces or control characters"
    try:
        parts = urlsplit(url)
    except ValueError as error:  # an unclosed "[" or a bracketed host that is no IPv6 address
        return f"expected a valid URL: {error}"
    if parts.scheme.lower() not in ("http", "https"):
        return "expected an http:// or https:// URL"
    if not parts.hostname:
        return "expected a URL with a host"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return "expected a port from 1 to 65535 after the host"
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        # The API path is appended to the base URL: it would land inside the query or the fragment.
        return "expected a URL without a query (?) or fragment (#)"
    return None


def redact_url(url: str) -> str:
    """``url`` with any user and password taken out (``https://user:secret@host`` -> ``https://***@host``), for
    what is shown or exported: a metric label, a log line."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()
