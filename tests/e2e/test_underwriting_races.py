"""Races on the underwriting service over real HTTP: fifty requests fired at once each end in the
rules' answer (never a 500), and the database holds what the rules allow."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from shared.calendar import today as business_today
from tests.builders import check, make_buyer, make_policy, money
from tests.conftest import Services, auth, backend, unique

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

AT_ONCE = 50
UW = auth("underwriter")


def committed(sql: str, *params: Any) -> int:
    """A count read from the end-to-end database, as committed by the service processes."""
    b = backend()
    url = make_url(b.base_url).set(drivername="postgresql", database=f"{b.main_database}_e2e")
    with psycopg.connect(url.render_as_string(False)) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: dict[str, Any]


async def fire(services: Services, path: str, bodies: list[dict[str, Any]],
               headers: dict[str, str], method: str = "POST") -> list[Answer]:  # fmt: skip
    """Every request at once: one connection each is opened first, then every request is
    written in one go, so that they reach the service together rather than one client call
    after another (the service's pool of database connections is opened beforehand, so that
    no request waits for a connection while an earlier one runs alone to its commit)."""
    url = httpx.URL(services.urls["underwriting"])
    async with httpx.AsyncClient(base_url=str(url)) as client:
        warm = [client.get("/v1/policies/pol_none", headers=UW) for _ in bodies]
        assert {r.status_code for r in await asyncio.gather(*warm)} == {404}
    streams = [await asyncio.open_connection(url.host, url.port) for _ in bodies]
    for (_, writer), body in zip(streams, bodies, strict=True):
        payload = json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {url.host}:{url.port}",
                "Content-Type: application/json", f"Content-Length: {len(payload)}",
                "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
        writer.write("\r\n".join(head).encode() + b"\r\n\r\n" + payload)
    answers = []
    for reader, writer in streams:
        raw = await asyncio.wait_for(reader.read(), timeout=60)
        writer.close()
        status_line, _, rest = raw.partition(b"\r\n")
        answers.append(
            Answer(int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2]))
        )
    return answers


def policy_body(holder: str, **overrides: Any) -> dict[str, Any]:
    return {
        "policyholder_id": holder, "currency": "EUR", "start_date": "2027-01-01",
        "end_date": "2027-12-31", "cover_type": "whole_turnover",
        "max_liability": money("1000000"), "premium_rate_pct": "0.5", **overrides,
    }  # fmt: skip


async def setup(services: Services, holder: str) -> tuple[str, str]:
    """A policy of `holder` and a buyer, over HTTP: their ids."""
    async with httpx.AsyncClient(base_url=services.urls["underwriting"]) as client:
        policy = await client.post("/v1/policies", json=policy_body(holder), headers=UW)
        assert policy.status_code == 201, policy.text
        buyer = await client.post("/v1/buyers", headers=UW, json={
            "name": "Declared SA", "country": "FR", "registration_number": unique("RCS")})  # fmt: skip
        assert buyer.status_code == 201, buyer.text
    return policy.json()["id"], buyer.json()["id"]


async def test_fifty_registrations_of_one_buyer_at_once_register_it_once_and_name_it_to_the_rest(
    services: Services,
) -> None:
    registration = unique("HRB")
    body = {"name": "Raced GmbH", "country": "DE", "registration_number": registration}
    answers = await fire(services, "/v1/buyers", [body] * AT_ONCE, UW)
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 1, 409: AT_ONCE - 1}, statuses
    [winner] = [a.body["id"] for a in answers if a.status_code == 201]
    for loser in (a.body for a in answers if a.status_code == 409):
        assert loser["type"].endswith("buyer-exists") and loser["existing_buyer_id"] == winner
    assert committed("SELECT count(*) FROM underwriting.buyers WHERE country = 'DE' "
                     "AND registration_number = %s", registration) == 1  # fmt: skip


async def test_twenty_registrations_of_one_number_in_different_spellings_at_once_register_it_once(
    services: Services,
) -> None:
    number = unique("hrb")
    spellings = [number.upper(), f" {number}", number.replace("-", " - "), f"{number.upper()} ",
                 number.replace("-", "\u00a0-"), number.replace("-", "-\u200b")]  # fmt: skip
    bodies = [{"name": "Spelt GmbH", "country": "DE",
               "registration_number": spellings[n % len(spellings)]} for n in range(20)]  # fmt: skip
    answers = await fire(services, "/v1/buyers", bodies, UW)
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 1, 409: 19}, statuses
    [winner] = [a.body["id"] for a in answers if a.status_code == 201]
    assert {a.body["existing_buyer_id"] for a in answers if a.status_code == 409} == {winner}
    assert committed("SELECT count(*) FROM underwriting.buyers WHERE country = 'DE' "
                     "AND registration_key = %s", number.upper()) == 1  # fmt: skip


async def test_fifty_listings_of_one_buyer_at_once_list_it_once_and_one_lift_lifts_it(
    services: Services,
) -> None:
    _, buyer_id = await setup(services, unique("ph"))
    body = {"buyer_id": buyer_id, "reason": "listed"}
    answers = await fire(services, "/v1/sanctions", [body] * AT_ONCE, UW)
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 1, 409: AT_ONCE - 1}, statuses
    [winner] = [a.body["id"] for a in answers if a.status_code == 201]
    for loser in (a.body for a in answers if a.status_code == 409):
        assert loser["type"].endswith("sanction-exists") and loser["existing_sanction_id"] == winner
    assert committed("SELECT count(*) FROM underwriting.sanctions WHERE buyer_id = %s",
                     buyer_id) == 1  # fmt: skip
    async with httpx.AsyncClient(base_url=services.urls["underwriting"]) as client:
        lifted = await client.delete(f"/v1/sanctions/{winner}", headers=UW)
        assert lifted.status_code == 200, lifted.text
    assert committed("SELECT count(*) FROM underwriting.sanctions WHERE buyer_id = %s",
                     buyer_id) == 0  # fmt: skip


async def test_fifty_assignments_of_one_bank_at_once_assign_it_once_and_answer_already_assigned(
    services: Services,
) -> None:
    policy_id, _ = await setup(services, unique("ph"))
    bank = unique("bank")
    answers = await fire(services, f"/v1/policies/{policy_id}/assignments",
                         [{"bank_id": bank}] * AT_ONCE, UW)  # fmt: skip
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 1, 409: AT_ONCE - 1}, statuses
    assert all(a.body["type"].endswith("already-assigned")
               for a in answers if a.status_code == 409)  # fmt: skip
    async with httpx.AsyncClient(base_url=services.urls["underwriting"]) as client:
        policy = (await client.get(f"/v1/policies/{policy_id}", headers=UW)).json()
    assert policy["assigned_bank_ids"] == [bank]
    assert committed("SELECT count(*) FROM underwriting.policy_assignments WHERE policy_id = %s",
                     policy_id) == 1  # fmt: skip


async def test_fifty_declarations_of_one_new_invoice_at_once_create_it_once_and_update_it_after(
    services: Services,
) -> None:
    """Each declaration carries the shared new number RACE-1 and a number of its own."""
    holder = unique("ph")
    policy_id, buyer_id = await setup(services, holder)

    def invoice(number: str, amount: str) -> dict[str, Any]:
        # Shipped before today (the services run on the real clock): a declaration reports goods
        # already shipped.
        return {"number": number, "buyer_id": buyer_id, "amount": money(amount),
                "shipment_date": "2026-03-01", "due_date": "2026-04-30"}  # fmt: skip

    bodies = [
        {"invoices": [invoice(f"OWN-{n:02d}", "10.00"), invoice("RACE-1", f"{1000 + n}.00")]}
        for n in range(AT_ONCE)
    ]
    answers = await fire(services, f"/v1/policies/{policy_id}/declarations", bodies,
                         auth("policyholder", holder))  # fmt: skip
    assert Counter(a.status_code for a in answers) == {201: AT_ONCE}, answers
    counts = Counter((a.body["created"], a.body["updated"]) for a in answers)
    assert counts == {(2, 0): 1, (1, 1): AT_ONCE - 1}  # RACE-1 created once, updated 49 times
    rows = "SELECT count(*) FROM underwriting.receivables WHERE policy_id = %s"
    assert committed(rows, policy_id) == AT_ONCE + 1
    assert committed(rows + " AND invoice_number = 'RACE-1'", policy_id) == 1


async def test_fifty_overlapping_policies_of_one_holder_at_once_create_one_and_refuse_the_rest(
    services: Services,
) -> None:
    holder = unique("ph")
    bodies = [policy_body(holder, start_date=f"2027-{1 + n % 12:02d}-01") for n in range(AT_ONCE)]
    answers = await fire(services, "/v1/policies", bodies, UW)
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 1, 409: AT_ONCE - 1}, statuses
    [winner] = [a.body["id"] for a in answers if a.status_code == 201]
    for loser in (a.body for a in answers if a.status_code == 409):
        assert loser["type"].endswith("policy-overlap") and loser["existing_policy_id"] == winner
    assert committed("SELECT count(*) FROM underwriting.policies WHERE policyholder_id = %s",
                     holder) == 1  # fmt: skip


async def test_risk_levels_set_at_once_on_an_unlisted_country_all_answer_and_one_level_grades(
    services: Services,
) -> None:
    async with httpx.AsyncClient(base_url=services.urls["underwriting"]) as client:
        buyer = await client.post("/v1/buyers", headers=UW, json={
            "name": "Vaduz AG", "country": "LI", "registration_number": unique("FL")})  # fmt: skip
        assert buyer.status_code == 201, buyer.text
    bodies = [{"level": 1 + n % 4} for n in range(AT_ONCE)]
    answers = await fire(services, "/v1/country-risks/LI", bodies, UW, method="PUT")
    assert Counter(a.status_code for a in answers) == {200: AT_ONCE}, answers
    async with httpx.AsyncClient(base_url=services.urls["underwriting"]) as client:
        level = (await client.get("/v1/country-risks/LI", headers=UW)).json()["level"]
        grades = await client.get(f"/v1/buyers/{buyer.json()['id']}/grades", headers=UW)
    assert grades.json()["items"][0]["country_risk_level"] == level  # graded by the level kept
    assert committed("SELECT count(*) FROM underwriting.country_risks WHERE country = 'LI'") == 1


async def test_limits_recorded_at_once_with_an_insolvency_never_outlive_its_withdrawal(
    services: Services,
) -> None:
    """Each round, eight recordings of a limit on one buyer reach the service together with the
    buyer's insolvency: whichever commits first, nothing covers a shipment after the withdrawal
    (a recording committed first is withdrawn, one after it is refused as raising the limit of
    an insolvent buyer)."""
    rounds, recordings = 20, 8
    today = business_today("Asia/Shanghai")
    day = lambda offset: (today + dt.timedelta(days=offset)).isoformat()  # noqa: E731
    async with httpx.AsyncClient(base_url=services.urls["underwriting"], timeout=60) as client:
        policy = await make_policy(client)
        buyers = [await make_buyer(client) for _ in range(rounds)]
        await asyncio.gather(*(client.get(f"/v1/policies/{policy['id']}", headers=UW)
                               for _ in range(recordings + 1)))  # fmt: skip
        outcomes: Counter[tuple[int, ...]] = Counter()
        for buyer in buyers:
            answers = await asyncio.gather(
                *(client.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
                    "buyer_id": buyer["id"], "amount": money(f"{50000 + n}"),
                    "effective_from": day(-5)}) for n in range(recordings)),
                client.post(f"/v1/buyers/{buyer['id']}/signals", headers=UW, json={
                    "kind": "insolvency_filing", "observed_on": day(0), "details": "filed"}),
            )  # fmt: skip
            assert answers[-1].status_code == 201, answers[-1].text
            assert {a.status_code for a in answers[:-1]} <= {201, 422}, [a.text for a in answers]
            outcomes[tuple(sorted(a.status_code for a in answers[:-1]))] += 1
            later = await check(client, policy, buyer["id"], "1000", day(5), day(35),
                                headers=UW)  # fmt: skip
            assert later.status_code == 200, later.text
            assert later.json()["covered_amount"] == money("0.00"), (later.json(), outcomes)
    print(f"recordings per round answered (rounds): {dict(outcomes)}")


async def test_one_limit_recorded_fifty_times_at_once_is_recorded_once_and_unchanged_after(
    services: Services,
) -> None:
    """A migration replayed fifty times at once: one recording adds the entry and tells the
    policy's parties, the other 49 answer `unchanged` and add nothing."""
    policy_id, buyer_id = await setup(services, unique("ph"))
    since = (business_today("Asia/Shanghai") - dt.timedelta(days=5)).isoformat()
    body = {"buyer_id": buyer_id, "amount": money("50000"), "effective_from": since,
            "reason": "migrated"}  # fmt: skip
    answers = await fire(services, f"/v1/policies/{policy_id}/limits", [body] * AT_ONCE, UW)
    assert {a.status_code for a in answers} == {201}, [a.body for a in answers]
    assert Counter(a.body["unchanged"] for a in answers) == {True: AT_ONCE - 1, False: 1}
    limit_id = answers[0].body["id"]
    entries = "select count(*) from underwriting.limit_amounts where limit_id = %s"
    assert committed(entries, limit_id) == 1
    assert committed("select count(*) from underwriting.events where subject_id = %s "
                     "and type = 'limit.changed'", limit_id) == 1  # fmt: skip


def level_graded_at(buyer: dict[str, Any]) -> str | None:
    """The country risk level a buyer's current grade was worked out at (its factor)."""
    return next((f["value"] for f in buyer["grade_factors"] or [] if f["factor"] == "country_risk_level"),
                None)  # fmt: skip


async def test_a_buyer_graded_while_its_country_takes_a_new_level_ends_graded_at_it(
    services: Services,
) -> None:
    """Signals (each grading its buyer at the level it reads) fired together with new levels of
    the buyers' country: whichever commits first, every buyer ends graded at the country's new
    level (domain.md: a level change re-grades every buyer of that country). A grading that read
    the old level and committed after the re-grade began was left at it for good (the run takes
    only the buyers graded before it began)."""
    country = "TG"
    weak = {"current_ratio": "0.7", "dso_days": "40", "dso_prior_year_days": "40",
            "overdue_ratio": "0.2", "litigation_count": 0, "management_changes_12m": 0,
            "equity": money("1000000")}  # fmt: skip
    observed = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    async with httpx.AsyncClient(base_url=services.urls["underwriting"], timeout=60) as uw:
        buyers = [await make_buyer(uw, country=country, indicators=weak) for _ in range(16)]
        for level in (3, 4, 2, 4, 3):
            fired = [uw.post(f"/v1/buyers/{b['id']}/signals", headers=UW, json={
                         "kind": "registry_change", "observed_on": observed,
                         "details": "fired with the level"}) for b in buyers]  # fmt: skip
            fired.insert(len(fired) // 3, uw.put(f"/v1/country-risks/{country}", headers=UW,
                                                 json={"level": level}))  # fmt: skip
            for answer in await asyncio.gather(*fired):
                assert answer.status_code in (200, 201), answer.text
            for b in buyers:
                read = (await uw.get(f"/v1/buyers/{b['id']}", headers=UW)).json()
                assert level_graded_at(read) == str(level), (level, read["grade"])
