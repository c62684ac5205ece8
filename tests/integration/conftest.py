"""Integration tests run against the real engine: every container they start is gone at the end."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _clean_engine(no_containers_left_behind: None) -> None:
    return None
