"""redact_url: what /metrics labels and logs show of a Prometheus URL, never its user or password."""

from __future__ import annotations

import pytest

from perfpilot.api.urls import redact_url


@pytest.mark.parametrize(("url", "shown"), [
    ("https://user:secret@prometheus.example:9090/api", "https://***@prometheus.example:9090/api"),
    ("http://token@prometheus:9090", "http://***@prometheus:9090"),
    ("http://prometheus:9090", "http://prometheus:9090"),
    ("http://a@b:c@prometheus:9090", "http://***@prometheus:9090"),
])
def test_the_user_and_password_are_taken_out(url: str, shown: str) -> None:
    assert redact_url(url) == shown
