"""The events feed under concurrent writes, over real HTTP: thirty limit-affecting writes fired at
once while readers poll the feed; every event is listed once, in `seq` order, and no reader ever
sees an event appear before one it has already read (what `after=` relies on)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.builders import money
from tests.conftest import Services, auth, backend, unique

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

UW = auth("underwriter")
LIMITS = 10  # changed twice each, at once, with ten new limit requests: thirty writes
REQUESTS = 10
READERS = 8  # each reading on from the last id it saw, as fast as it can
INDICATORS = {"current_ratio": "2.5", "dso_days": "40", "dso_prior_year_days": "40",
              "overdue_ratio": "0.01", "litigation_count": 0, "management_changes_12m": 0,
              "equity": money("50000000")}  # fmt: skip


def committed_order(event_ids: list[str]) -> list[str]:
    """The events' ids in `seq` order, as committed in the end-to-end database."""
    b = backend()
    url = make_url(b.base_url).set(drivername="postgresql", database=f"{b.main_database}_e2e")
    with psycopg.connect(url.render_as_string(False)) as conn:
        rows = conn.execute(
            "SELECT id FROM underwriting.events WHERE id = ANY(%s) ORDER BY seq", (event_ids,)
        ).fetchall()
    return [row[0] for row in rows]


async def ok(response: Any, status: int) -> dict[str, Any]:
    answer = await response
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def books(client: httpx.AsyncClient) -> tuple[dict[str, Any], list[str], list[str], str]:
    """A policy with a bank assigned, ten buyers with a limit each and ten more without: (policy,
    limit ids, the other buyers' ids, the bank)."""
    holder, bank = unique("ph-evt"), unique("bank-evt")
    policy = await ok(client.post("/v1/policies", headers=UW, json={
        "policyholder_id": holder, "currency": "EUR", "start_date": "2026-01-01",
        "end_date": "2028-12-31", "cover_type": "whole_turnover",
        "max_liability": money("50000000"), "premium_rate_pct": "0.3"}), 201)  # fmt: skip
    await ok(client.post(f"/v1/policies/{policy['id']}/assignments", headers=UW,
                         json={"bank_id": bank}), 201)  # fmt: skip
    buyers = []
    for n in range(LIMITS + REQUESTS):
        buyers.append((await ok(client.post("/v1/buyers", headers=UW, json={
            "name": f"Buyer {n}", "country": "DE", "registration_number": unique("HRB"),
            "indicators": INDICATORS}), 201))["id"])  # fmt: skip
    limits = []
    for buyer in buyers[:LIMITS]:
        limits.append((await ok(client.post(f"/v1/policies/{policy['id']}/limits", headers=UW,
                                            json={"buyer_id": buyer, "amount": money("100000"),
                                                  "effective_from": "2026-06-01"}), 201))["id"])  # fmt: skip
    return policy, limits, buyers[LIMITS:], bank


async def read_all(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    ids: list[str] = []
    params: dict[str, Any] = {"limit": 7}  # small pages: many page boundaries
    while True:
        page = await ok(client.get("/v1/events", headers=headers, params=params), 200)
        ids.extend(e["id"] for e in page["items"])
        if page["next_cursor"] is None:
            return ids
        params["cursor"] = page["next_cursor"]


async def test_thirty_concurrent_limit_writes_reach_the_feed_in_seq_order_with_no_gap(
    services: Services,
) -> None:
    url = services.urls["underwriting"]
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        policy, limits, buyers, bank = await books(client)
        party = auth("bank", bank)
        before = await read_all(client, party)
        assert len(before) == LIMITS  # each recorded limit: one `limit.changed`
        holder = auth("policyholder", policy["policyholder_id"])
        writes = [client.post(f"/v1/limits/{limit}/changes", headers=UW, json={
            "new_amount": money(str(100000 + 1000 * (n + 1))), "reason": f"change {n}"})
            for n in range(2) for limit in limits]  # fmt: skip
        writes += [client.post(f"/v1/policies/{policy['id']}/limit-requests", headers=holder,
                               json={"buyer_id": buyer, "amount": money("20000"),
                                     "payment_terms_days": 60}) for buyer in buyers]  # fmt: skip
        assert len(writes) == 30
        done = asyncio.Event()
        snapshots: list[list[str]] = []
        consumed: list[list[str]] = [[] for _ in range(READERS)]

        async def snapshot_reader() -> None:
            """Reads the whole feed again and again while the writes run."""
            while not done.is_set():
                snapshots.append(await read_all(client, party))

        async def consumer(seen: list[str]) -> None:
            """Reads on from the last id it saw, as a partner catching up does."""
            while True:
                finished = done.is_set()
                after = seen[-1] if seen else before[-1]
                page = await ok(client.get("/v1/events", headers=party,
                                           params={"after": after, "limit": 500}), 200)  # fmt: skip
                seen.extend(e["id"] for e in page["items"])
                if finished and not page["items"]:
                    return

        readers = [asyncio.create_task(snapshot_reader()),
                   *(asyncio.create_task(consumer(seen)) for seen in consumed)]  # fmt: skip
        answers = await asyncio.gather(*writes)
        done.set()
        await asyncio.gather(*readers)

        assert sorted({a.status_code for a in answers}) == [201], [a.text for a in answers]
        final = await read_all(client, party)
        # 20 changes (one `limit.changed` each) + 10 approved requests (a decision and a limit).
        assert len(final) == len(before) + 20 + 2 * REQUESTS
        assert len(set(final)) == len(final)
        assert committed_order(final) == final  # listed in seq order
        for earlier, later in zip([before, *snapshots], [*snapshots, final], strict=True):
            assert later[: len(earlier)] == earlier  # nothing ever appears behind what was read
        for seen in consumed:  # each consumer missed nothing and saw nothing twice
            assert seen == final[len(before) :]
        staff = await read_all(client, UW)
        assert [i for i in staff if i in set(final)] == final
