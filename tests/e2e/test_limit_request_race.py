"""Concurrent first limit requests on one (policy, buyer), against the running underwriting
service: each gets the answer the rules give, and the limit exists once with a coherent history."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections import Counter

import httpx
import pytest

from tests.builders import make_buyer, make_policy, money, ok
from tests.conftest import Services, auth

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

FIRED = 50


async def test_concurrent_first_limit_requests_each_get_their_answer_and_one_limit(
    services: Services,
) -> None:
    async with httpx.AsyncClient(base_url=services.urls["underwriting"], timeout=60) as client:
        policy = await make_policy(client)
        buyer = await make_buyer(client)
        holder = auth("policyholder", policy["policyholder_id"])
        # Warm up a connection per request, so that the requests below truly start together.
        await asyncio.gather(*(client.get(f"/v1/policies/{policy['id']}", headers=holder)
                               for _ in range(FIRED)))  # fmt: skip
        answers = await asyncio.gather(*(
            client.post(f"/v1/policies/{policy['id']}/limit-requests", headers=holder, json={
                "buyer_id": buyer["id"], "amount": money(f"{10000 * (n + 1)}"),
                "payment_terms_days": 90})
            for n in range(FIRED)
        ))  # fmt: skip
        limits = ok(await client.get(f"/v1/policies/{policy['id']}/limits",
                                     headers=auth("underwriter")), 200)["items"]  # fmt: skip

    statuses = [a.status_code for a in answers]
    print(f"fired {FIRED}, answered {dict(Counter(statuses))}, limits {len(limits)}, "
          f"history entries {len(limits[0]['history']) if limits else 0}")  # fmt: skip
    assert statuses == [201] * FIRED, [a.text for a in answers if a.status_code != 201][:3]
    assert {a.json()["status"] for a in answers} == {"approved"}
    assert len(limits) == 1 and limits[0]["buyer_id"] == buyer["id"]
    assert {a.json()["limit_id"] for a in answers} == {limits[0]["id"]}

    history = limits[0]["history"]
    starts = [dt.date.fromisoformat(h["effective_from"]) for h in history]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    for entry, following in itertools.pairwise(history):
        assert entry["effective_to"] == following["effective_from"]
    assert [h["effective_to"] for h in history].count(None) == 1
    assert history[-1]["effective_to"] is None
    assert all(h["payment_terms_days"] == 90 for h in history)
