"""What the claims tests over the three apps share."""

from __future__ import annotations

from typing import Any

import pytest

from tests.claims.test_api import insured


@pytest.fixture
async def book(api: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The three apps in-process on 2027-06-10 (claims opened first, so that it reaches the
    other two), with an insured policy and buyer."""
    monkeypatch.setenv("TCI_FIXED_TODAY", "2027-06-10")
    claims = await api.open("claims")
    uw, collections = api("underwriting"), api("collections")
    policy, buyer = await insured(uw)
    return {"claims": claims, "collections": collections, "policy": policy, "buyer": buyer}
