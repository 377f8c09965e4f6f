"""The embedded default (SQLite, what `make up` runs) under requests fired at once: SQLite ignores
`FOR UPDATE`, so each change must still see the one before it. Real processes on SQLite files of
their own, whatever the suite's backend."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.migrations import upgrade
from tests.builders import make_buyer, make_policy, money, ok
from tests.conftest import auth, free_urls, start_services, unique

pytestmark = [pytest.mark.e2e]

FIRED = 30
TODAY = "2027-06-15"


@pytest.fixture(scope="module")
def sqlite_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Underwriting and collections on SQLite files, as `make up` runs them."""
    folder: Path = tmp_path_factory.mktemp("sqlite-services")
    databases = {s: f"sqlite+aiosqlite:///{folder}/{s}.db" for s in ("underwriting", "collections")}
    with ThreadPoolExecutor(1) as pool:  # Alembic runs its own event loop
        for service, url in databases.items():
            pool.submit(upgrade, service, url).result()
    urls = free_urls()
    running = start_services("unused", urls, only=tuple(databases), database_urls=databases,
                             env={"TCI_FIXED_TODAY": TODAY})  # fmt: skip
    try:
        yield urls
    finally:
        running.stop()


async def _fire(client: httpx.AsyncClient, requests: list[Any]) -> list[httpx.Response]:
    answers: list[httpx.Response] = await asyncio.gather(*requests)
    return answers


async def test_payments_fired_at_once_on_one_case_never_pass_what_it_owes(
    sqlite_services: dict[str, str],
) -> None:
    holder_id = unique("ph")
    async with httpx.AsyncClient(base_url=sqlite_services["underwriting"], timeout=60) as uw:
        buyer = await make_buyer(uw)
    async with httpx.AsyncClient(base_url=sqlite_services["collections"], timeout=60) as client:
        case = ok(await client.post("/v1/cases", headers=auth("policyholder", holder_id), json={
            "creditor_id": holder_id, "buyer_id": buyer["id"], "debtor_country": "DE",
            "invoices": [{"number": "INV-1", "amount": money("6000"), "due_date": "2027-03-01"},
                         {"number": "INV-2", "amount": money("4000"), "due_date": "2027-04-01"}],
            "ladder": "reminder_15_30_45"}), 201)  # fmt: skip
        collector = auth("collector")
        answers = await _fire(client, [
            client.post(f"/v1/cases/{case['id']}/payments", headers=collector,
                        json={"amount": money("1000"), "received_on": TODAY})
            for _ in range(FIRED)])  # fmt: skip
        after = ok(await client.get(f"/v1/cases/{case['id']}", headers=collector), 200)

    statuses = Counter(a.status_code for a in answers)
    recorded = sum((Decimal(p["amount"]["amount"]) for p in after["payments"]), Decimal(0))
    print(f"fired {FIRED} payments of 1,000 on a debt of 10,000: {dict(statuses)}, "
          f"recorded {recorded}, outstanding {after['outstanding']['amount']}")  # fmt: skip
    assert statuses[201] == 10 and 500 not in statuses
    assert {a.json()["type"] for a in answers if a.status_code != 201} <= {
        "overpayment", "case-closed"}  # fmt: skip
    assert recorded == Decimal(10000) and len(after["payments"]) == 10
    assert Decimal(after["outstanding"]["amount"]) == 0 and after["status"] == "closed"


async def test_decisions_fired_at_once_on_one_referred_request_decide_it_once(
    sqlite_services: dict[str, str],
) -> None:
    async with httpx.AsyncClient(base_url=sqlite_services["underwriting"], timeout=60) as client:
        policy = await make_policy(client)
        buyer = await make_buyer(client)
        holder = auth("policyholder", policy["policyholder_id"])
        request = ok(await client.post(f"/v1/policies/{policy['id']}/limit-requests",
                                       headers=holder, json={
            "buyer_id": buyer["id"], "amount": money("5000000"), "payment_terms_days": 60}),
            201)  # fmt: skip
        assert request["status"] == "referred"
        underwriter = auth("underwriter")
        answers = await _fire(client, [
            client.post(f"/v1/limit-requests/{request['id']}/decision", headers=underwriter,
                        json={"decision": "refuse", "reason": f"no {n}"} if n % 2 else
                        {"decision": "approve", "amount": money(f"{300000 + n}"),
                         "reason": f"ok {n}"})
            for n in range(FIRED)])  # fmt: skip
        limits = ok(await client.get(f"/v1/policies/{policy['id']}/limits",
                                     headers=underwriter), 200)["items"]  # fmt: skip
        decided = ok(await client.get(f"/v1/limit-requests/{request['id']}",
                                      headers=underwriter), 200)  # fmt: skip

    statuses = Counter(a.status_code for a in answers)
    print(f"fired {FIRED} decisions on one referred request: {dict(statuses)}")
    assert statuses == Counter({200: 1, 409: FIRED - 1})
    winner = next(a.json() for a in answers if a.status_code == 200)
    assert decided["status"] == winner["status"]
    assert {a.json()["type"] for a in answers if a.status_code == 409} == {"already-decided"}
    if winner["status"] == "refused":
        assert all(h["amount"]["amount"] == "0.00" for lim in limits for h in lim["history"])
    else:
        assert [h["amount"] for h in limits[0]["history"]] == [winner["decided_amount"]]


async def test_cases_opened_at_once_for_one_paid_claim_open_one_and_name_it_to_the_rest(
    sqlite_services: dict[str, str],
) -> None:
    async with httpx.AsyncClient(base_url=sqlite_services["underwriting"], timeout=60) as uw:
        buyer = await make_buyer(uw)
    claim_id = unique("clm")
    body = {"creditor_id": unique("ph"), "buyer_id": buyer["id"], "debtor_country": "DE",
            "invoices": [{"number": "INV-1", "amount": money("120000"),
                          "due_date": "2027-01-10"}],
            "ladder": "legal_30_60_90", "claim_id": claim_id,
            "indemnity_paid": money("85000")}  # fmt: skip
    async with httpx.AsyncClient(base_url=sqlite_services["collections"], timeout=60) as client:
        answers = await _fire(client, [client.post("/v1/cases", headers=auth("service"),
                                                   json=body) for _ in range(FIRED)])  # fmt: skip
    statuses = Counter(a.status_code for a in answers)
    print(f"fired {FIRED} openings for one claim: {dict(statuses)}")
    assert statuses == Counter({201: 1, 409: FIRED - 1})
    opened = next(a.json()["id"] for a in answers if a.status_code == 201)
    assert {a.json()["type"] for a in answers if a.status_code == 409} == {"case-exists"}
    assert all(opened in a.text for a in answers if a.status_code == 409 and "case_id" in a.text)
