"""Fixtures of the underwriting tests."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

PINNED_TODAY = "2027-01-10"


@pytest.fixture
async def pinned(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    """The underwriting API with today pinned to 10 January 2027 (`PINNED_TODAY`)."""
    monkeypatch.setenv("TCI_FIXED_TODAY", PINNED_TODAY)
    client: httpx.AsyncClient = await api.open("underwriting")
    return client
