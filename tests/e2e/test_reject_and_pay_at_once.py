"""A rejection and a payment of one approved claim fired at once, over the three services as real
processes on PostgreSQL: exactly one outcome wins, never both paid and rejected. Each takes the
claim and its policy's caps before it reads anything, so the other sees its outcome: with the
buyer sanctioned, a rejection wins and every payment is refused; with the buyer not sanctioned,
a payment wins and every rejection is refused; with the sanction lifted in the middle of it, the
one that comes first wins."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable
from typing import Any

import httpx
import pytest

from tests.builders import money
from tests.conftest import Services, auth
from tests.e2e.test_money_under_concurrency import (
    assessed_claim,
    buyer_with_limit,
    created,
    insured_policy,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

FIRED = 20  # of each: rejections and payments
HANDLER = auth("claims_handler")
UW = auth("underwriter")
COLLECTOR = auth("collector")


async def approved_claim(uw: httpx.AsyncClient, claims: httpx.AsyncClient, n: int) -> str:
    policy = await insured_policy(uw, max_liability=money("1000000"))
    buyer = await buyer_with_limit(uw, policy)
    claim_id = await assessed_claim(claims, policy, buyer, f"RACE-{n}")
    created(await claims.post(f"/v1/claims/{claim_id}/decision", headers=HANDLER,
                              json={"decision": "approve", "reason": "ok"}), 200)  # fmt: skip
    return claim_id


async def sanction(uw: httpx.AsyncClient, claims: httpx.AsyncClient, claim_id: str) -> str:
    buyer_id = created(await claims.get(f"/v1/claims/{claim_id}", headers=HANDLER), 200)["buyer_id"]
    listed = created(await uw.post("/v1/sanctions", headers=UW, json={
        "buyer_id": buyer_id, "reason": "listed after the approval"}))  # fmt: skip
    return str(listed["id"])


async def reject_and_pay_at_once(
    claims: httpx.AsyncClient, claim_id: str, *also: Awaitable[Any]
) -> tuple[list[httpx.Response], list[httpx.Response]]:
    """FIRED rejections and FIRED payments of the claim, in a random order, all at once (with
    `also`)."""
    reject = {"decision": "reject", "reason": "sanctions screening"}
    acts = ["reject", "pay"] * FIRED
    random.shuffle(acts)
    answers = await asyncio.gather(*(
        claims.post(f"/v1/claims/{claim_id}/decision", headers=HANDLER, json=reject)
        if act == "reject" else claims.post(f"/v1/claims/{claim_id}/payment", headers=HANDLER)
        for act in acts), *also)  # fmt: skip
    by_act = list(zip(acts, answers, strict=False))
    return ([a for act, a in by_act if act == "reject"],
            [a for act, a in by_act if act == "pay"])  # fmt: skip


async def later(seconds: float, request: Awaitable[httpx.Response]) -> httpx.Response:
    await asyncio.sleep(seconds)
    return await request


def tally(responses: list[httpx.Response]) -> Counter[str]:
    return Counter("200" if r.status_code == 200 else f"{r.status_code} {r.json()['type']}"
                   for r in responses)  # fmt: skip


async def outcome(
    claims: httpx.AsyncClient, collections: httpx.AsyncClient, claim_id: str,
    rejections: list[httpx.Response], payments: list[httpx.Response],
) -> str:  # fmt: skip
    """The claim's final status, checked against the answers: exactly one 200 among all, the
    status the winner answered, a subrogation case only for a payment."""
    rejected, paid = tally(rejections), tally(payments)
    print(f"\n{claim_id}: rejections {dict(rejected)}; payments {dict(paid)}")
    assert rejected["200"] + paid["200"] == 1, (rejected, paid)
    assert set(rejected) <= {"200", "409 already-decided"}, rejected
    refusals = {"409 already-paid", "409 not-approved", "422 buyer-sanctioned"}
    assert set(paid) <= {"200", *refusals}, paid
    claim = created(await claims.get(f"/v1/claims/{claim_id}", headers=HANDLER), 200)
    cases = created(await collections.get(f"/v1/cases?claim_id={claim_id}", headers=COLLECTOR),
                    200)["items"]  # fmt: skip
    if paid["200"]:
        assert claim["status"] == "paid" and claim["paid_on"] and claim["decision"] == "approve"
        assert len(cases) == 1
        assert {r.json()["status_now"] for r in rejections} <= {"paid", "approved"}
    else:
        assert claim["status"] == "rejected" and claim["paid_on"] is None
        assert claim["decision_reason"].startswith("excluded: sanctioned buyer")
        assert cases == [] and not claim["collection_case_id"]
        assert paid["409 not-approved"] + paid["422 buyer-sanctioned"] == FIRED
    return str(claim["status"])


async def test_a_rejection_and_a_payment_at_once_never_both_win(services: Services) -> None:
    async with httpx.AsyncClient(base_url=services.urls["underwriting"], timeout=120) as uw, \
            httpx.AsyncClient(base_url=services.urls["claims"], timeout=120) as claims, \
            httpx.AsyncClient(base_url=services.urls["collections"], timeout=120) as collections:  # fmt: skip
        # Sanctioned throughout: a rejection wins, every payment is refused.
        listed = await approved_claim(uw, claims, 1)
        await sanction(uw, claims, listed)
        answers = await reject_and_pay_at_once(claims, listed)
        assert await outcome(claims, collections, listed, *answers) == "rejected"

        # Not sanctioned: a payment wins, every rejection is refused (it can be paid).
        payable = await approved_claim(uw, claims, 2)
        answers = await reject_and_pay_at_once(claims, payable)
        assert await outcome(claims, collections, payable, *answers) == "paid"

        # The sanction lifted in the middle of it: whichever comes first wins, alone.
        for n, delay in enumerate((0.0, 0.05, 0.1, 0.2, 0.4), start=3):
            raced = await approved_claim(uw, claims, n)
            sanction_id = await sanction(uw, claims, raced)
            lift = later(delay, uw.delete(f"/v1/sanctions/{sanction_id}", headers=UW))
            rejections, payments = await reject_and_pay_at_once(claims, raced, lift)
            status = created(await claims.get(f"/v1/claims/{raced}", headers=HANDLER), 200)
            if status["status"] == "approved":  # every payment came before the lift and every
                # rejection after it: nothing won, which is allowed (neither paid nor rejected)
                assert tally(rejections)["200"] + tally(payments)["200"] == 0
                continue
            await outcome(claims, collections, raced, rejections, payments)
