"""The statements the ordinary write paths send to PostgreSQL, counted (issue 12: a round trip
and its SQLAlchemy work are most of a write's cost): each path's budget, the idempotency claim,
the change, the stored answer and the events included, so that a read twice or a flush that
could be folded shows up here before it shows up in the benchmark."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.builders import keyed, make_buyer, make_policy, money, ok, statements_sent
from tests.conftest import auth, unique

pytestmark = pytest.mark.postgres


async def test_a_limit_request_on_a_buyer_with_a_limit_sends_ten_statements(
    uw: httpx.AsyncClient, engines: dict[str, AsyncEngine]
) -> None:
    """Claim (1), policy with its banks, buyer with its sanction and country risk, the limit
    locked, its history, the entry ended and the new one, the request, the answer stored, the
    two events with their parties under the event lock."""
    policy, buyer = await make_policy(uw), await make_buyer(uw)
    ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=auth("underwriter"), json={
        "buyer_id": buyer["id"], "amount": money("1000000"), "effective_from": "2026-01-01",
        "payment_terms_days": 120, "reason": "migrated"}), 201)  # fmt: skip
    holder = auth("policyholder", policy["policyholder_id"])
    with statements_sent(engines["underwriting"]) as sent:
        answer = ok(await uw.post(f"/v1/policies/{policy['id']}/limit-requests",
                                  headers=keyed(holder),
                                  json={"buyer_id": buyer["id"], "amount": money("20000"),
                                        "payment_terms_days": 60}), 201)  # fmt: skip
    assert answer["limit_id"] is not None
    assert len(sent) <= 10, "\n".join(sent)


async def test_a_declaration_of_one_invoice_sends_four_statements(
    uw: httpx.AsyncClient, engines: dict[str, AsyncEngine]
) -> None:
    """Claim (1), the policy, the upsert (which also refuses unknown buyers), the answer."""
    policy, buyer = await make_policy(uw), await make_buyer(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    with statements_sent(engines["underwriting"]) as sent:
        ok(await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=keyed(holder),
                         json={"invoices": [{"number": "S-1", "buyer_id": buyer["id"],
                                             "amount": money("500"),
                                             "shipment_date": "2026-06-01",
                                             "due_date": "2026-08-30"}]}), 201)  # fmt: skip
    assert len(sent) <= 4, "\n".join(sent)


async def test_a_buyer_registration_sends_six_statements(
    uw: httpx.AsyncClient, engines: dict[str, AsyncEngine]
) -> None:
    """Claim (1), the country's level lock (held shared: a new level of the country waits for
    this grading at the level before), the country risk, the buyer (its insert is the duplicate
    check), its first grade, the answer."""
    body = {"name": "Buyer Co", "country": "DE", "registration_number": unique("HRB"),
            "indicators": {"current_ratio": "2.5", "equity": money("50000000")}}  # fmt: skip
    with statements_sent(engines["underwriting"]) as sent:
        ok(await uw.post("/v1/buyers", headers=keyed(auth("underwriter")), json=body), 201)
    assert len(sent) <= 6, "\n".join(sent)


async def test_a_key_already_answered_is_replayed_and_a_key_free_is_claimed_in_one_statement(
    uw: httpx.AsyncClient, engines: dict[str, AsyncEngine]
) -> None:
    """The claim tries the key's advisory lock in its one statement; only a key already claimed
    takes the statements that wait for it (here: answered, so replayed at once)."""
    headers = keyed(auth("underwriter"))
    body = {"name": "Buyer Co", "country": "DE", "registration_number": unique("HRB")}
    with statements_sent(engines["underwriting"]) as sent:
        first = ok(await uw.post("/v1/buyers", headers=headers, json=body), 201)
    claims = [s for s in sent if "idempotency_keys" in s and s.lstrip().startswith("INSERT")]
    assert len(claims) == 1 and "pg_try_advisory_xact_lock" in claims[0]
    again = await uw.post("/v1/buyers", headers=headers, json=body)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first["id"]


async def _signal_from_claims(
    uw: httpx.AsyncClient, engines: dict[str, AsyncEngine], kind: str
) -> tuple[dict[str, Any], list[str]]:
    """A signal as claims sends it (service token, Idempotency-Key, the policy named) on a buyer
    with a 1,000,000 limit on that policy; the answer and the statements it took."""
    policy, buyer = await make_policy(uw), await make_buyer(uw)
    ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=auth("underwriter"), json={
        "buyer_id": buyer["id"], "amount": money("1000000"), "effective_from": "2026-01-01",
        "payment_terms_days": 120, "reason": "migrated"}), 201)  # fmt: skip
    with statements_sent(engines["underwriting"]) as sent:
        answer = ok(await uw.post(f"/v1/buyers/{buyer['id']}/signals",
                                  headers=keyed(auth("service")),
                                  json={"kind": kind, "observed_on": "2026-03-01",
                                        "details": "from claims", "policy_id": policy["id"]}),
                    201)  # fmt: skip
    return answer, sent


async def test_an_overdue_notified_signal_sends_thirteen_statements(
    uw: httpx.AsyncClient, engines: dict[str, AsyncEngine]
) -> None:
    """Claim (1), the buyer locked with its country's level lock, then the level, the policy with its banks and
    whether a stop is open, the buyer's recent signals, its grade entries after the day
    observed, the buyer's new grade, its grade entry, the parties on the buyer (the grade
    moved), the signal (inserted once, with the grade it led to), the stop, the answer, the
    events. (16 before: the signal inserted then updated, the country risk, the open stops and
    the policy's parties each read on their own.)"""
    answer, sent = await _signal_from_claims(uw, engines, "overdue_notified")
    assert answer["stop_shipment"] is True and answer["grade"] > answer["grade_before"]
    assert len(sent) <= 13, "\n".join(sent)
    assert not [s for s in sent if s.lstrip().startswith("UPDATE underwriting.buyer_signals")]


async def test_an_insolvency_filing_signal_sends_sixteen_statements(
    uw: httpx.AsyncClient, engines: dict[str, AsyncEngine]
) -> None:
    """Claim (1), the buyer locked with its country's level lock, then the level, the policy with its banks and
    open stop, the recent signals, the later grade entries, the buyer (insolvent, graded 10) in
    one update, its grade entry, the parties on the buyer, its limits locked with their
    policies and banks, their histories (read once), the signal, the entry ended, the
    withdrawal, the answer, the events. (20 before: the buyer updated twice, the history read
    twice, the signal updated, the country risk and the limit's parties read on their own.)"""
    answer, sent = await _signal_from_claims(uw, engines, "insolvency_filing")
    assert answer["grade"] == 10 and len(answer["limit_changes"]) == 1
    assert answer["limit_changes"][0]["new_amount"] == money("0.00")
    assert len(sent) <= 16, "\n".join(sent)


async def test_arrears_cleared_with_no_stop_open_sends_ten_statements(
    uw: httpx.AsyncClient, engines: dict[str, AsyncEngine]
) -> None:
    """Claim (1), the buyer with its country's level lock, its level, the policy (no stop open: no stop is read), the
    recent signals, the later grade entries, the buyer's grading time, its grade entry, the
    signal, the answer; the grade did not move, so no one hears of it and no event is written."""
    answer, sent = await _signal_from_claims(uw, engines, "arrears_cleared")
    assert answer["stop_shipment"] is False and answer["grade"] == answer["grade_before"]
    assert len(sent) <= 10, "\n".join(sent)


async def test_an_exposure_page_is_one_statement_over_its_own_buyers_books_only(
    uw: httpx.AsyncClient, engines: dict[str, AsyncEngine]
) -> None:
    """Two statements: the policy with its banks, and the page of the policy's book: its buyers
    (the next after the cursor of the limits' and the receivables' index ranges, by buyer id,
    read only as far as the page needs), each with its limit in force and its own receivables
    summed in the database. Nothing is summed or grouped over the whole book (pftrial: each page
    read every receivable of the policy into the service, 0.7 s with 50,000; then each page
    grouped every receivable of the policy to order its buyers by their first)."""
    policy = await make_policy(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    buyers = sorted([await make_buyer(uw) for _ in range(3)], key=lambda b: str(b["id"]))
    for buyer in buyers:
        ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=auth("underwriter"),
                         json={"buyer_id": buyer["id"], "amount": money("100000"),
                               "effective_from": "2026-01-01", "reason": "migrated"}), 201)  # fmt: skip
    ok(await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder, json={
        "invoices": [{"number": f"X-{n}", "buyer_id": buyer["id"], "amount": money(f"{n}000"),
                      "shipment_date": "2026-06-01", "due_date": "2026-08-30"}
                     for n, buyer in enumerate(buyers, start=1)]}), 201)  # fmt: skip
    cursor = None
    for buyer, owed in zip(buyers[:2], ("1000.00", "2000.00"), strict=True):
        with statements_sent(engines["underwriting"]) as sent:
            page = ok(await uw.get(f"/v1/policies/{policy['id']}/exposure", headers=holder,
                                   params={"limit": 1, **({"cursor": cursor} if cursor else {})}),
                      200)  # fmt: skip
        assert [(i["buyer_id"], i["exposure"]) for i in page["items"]] == [
            (buyer["id"], money(owed))]  # fmt: skip
        cursor = page["next_cursor"]
        [read] = [s for s in sent if "underwriting.receivables" in s]
        assert "underwriting.receivables.buyer_id > " in read, read  # from the cursor on
        assert "underwriting.receivables.buyer_id = page.buyer_id" in read, read  # its own
        assert "GROUP BY" not in read, read
        assert len(sent) <= 2, "\n".join(sent)
