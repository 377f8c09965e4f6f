"""The statements the ordinary write paths send to PostgreSQL, counted (issue 12: a round trip
and its SQLAlchemy work are most of a write's cost): each path's budget, the idempotency claim,
the change, the stored answer and the events included, so that a read twice or a flush that
could be folded shows up here before it shows up in the benchmark."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.builders import make_buyer, make_policy, money, ok
from tests.conftest import auth, unique

pytestmark = pytest.mark.postgres


@contextmanager
def statements_sent(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements sent through `engine` meanwhile, but the test's own savepoints (each
    commit of the app is one in the test's transaction; in production it is the COMMIT)."""
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO")):
            sent.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


def keyed(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Idempotency-Key": uuid.uuid4().hex}


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


async def test_a_buyer_registration_sends_five_statements(
    uw: httpx.AsyncClient, engines: dict[str, AsyncEngine]
) -> None:
    """Claim (1), the country risk, the buyer (its insert is the duplicate check), its first
    grade, the answer."""
    body = {"name": "Buyer Co", "country": "DE", "registration_number": unique("HRB"),
            "indicators": {"current_ratio": "2.5", "equity": money("50000000")}}  # fmt: skip
    with statements_sent(engines["underwriting"]) as sent:
        ok(await uw.post("/v1/buyers", headers=keyed(auth("underwriter")), json=body), 201)
    assert len(sent) <= 5, "\n".join(sent)


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
