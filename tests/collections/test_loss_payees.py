"""A subrogation case's events reach the banks of the claim's policy too (api.md: a bank receives
the events of the policies assigned to it); a mandate names no loss payee."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.builders import make_buyer, money, ok
from tests.conftest import auth, unique
from tests.feed import read_feed

TODAY = "2027-03-10"


@pytest.fixture
async def cases(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    client: httpx.AsyncClient = await api.open("collections")
    return client


def _opening(creditor: str, buyer_id: str, **extra: Any) -> dict[str, Any]:
    return {"creditor_id": creditor, "buyer_id": buyer_id, "debtor_country": "DE",
            "invoices": [{"number": "S-1", "amount": money("1000"), "due_date": "2027-02-15"}],
            **extra}  # fmt: skip


async def test_the_banks_of_the_claims_policy_hear_of_its_subrogation_case(
    cases: httpx.AsyncClient, api: Any
) -> None:
    creditor, bank, other = unique("ph"), unique("bank"), unique("bank")
    buyer = await make_buyer(api("underwriting"))
    case = ok(await cases.post("/v1/cases", headers=auth("service"), json=_opening(
        creditor, buyer["id"], claim_id=unique("clm"), indemnity_paid=money("900"),
        loss_payee_ids=[bank])), 201)  # fmt: skip
    ok(await cases.post(f"/v1/cases/{case['id']}/payments", headers=auth("collector"),
                        json={"amount": money("1000"), "received_on": TODAY}), 201)  # fmt: skip
    heard = [e["type"] for e in await read_feed(cases, auth("bank", bank))]
    assert heard == ["case.stage_changed", "case.payment_recorded", "case.closed"]
    assert [e["id"] for e in await read_feed(cases, auth("bank", bank))] == [
        e["id"] for e in await read_feed(cases, auth("policyholder", creditor))]  # fmt: skip
    assert await read_feed(cases, auth("bank", other)) == []


async def test_a_mandate_names_no_loss_payee(cases: httpx.AsyncClient, api: Any) -> None:
    creditor = unique("ph")
    buyer = await make_buyer(api("underwriting"))
    refused = await cases.post("/v1/cases", headers=auth("policyholder", creditor),
                               json=_opening(creditor, buyer["id"], loss_payee_ids=["bank-x"]))  # fmt: skip
    assert refused.status_code == 422
    assert "loss_payee_ids" in refused.json()["detail"]


async def test_the_banks_of_the_claims_policy_hear_of_the_mandate_it_takes_over(
    cases: httpx.AsyncClient, api: Any
) -> None:
    """The policyholder's mandate collected part of the debt; the claim paid, its case is that
    mandate taken over: the banks of the claim's policy hear that it is the claim's recovery (the
    case, the claim, its stage), as they hear of a paid claim's case opened."""
    creditor, bank = unique("ph"), unique("bank")
    buyer = await make_buyer(api("underwriting"))
    mandate = ok(await cases.post("/v1/cases", headers=auth("policyholder", creditor),
                                  json=_opening(creditor, buyer["id"])), 201)  # fmt: skip
    ok(await cases.post(f"/v1/cases/{mandate['id']}/payments", headers=auth("collector"),
                        json={"amount": money("100"), "received_on": TODAY}), 201)  # fmt: skip
    claim_id = unique("clm")
    taken = ok(await cases.post("/v1/cases", headers=auth("service"), json=_opening(
        creditor, buyer["id"], claim_id=claim_id, indemnity_paid=money("810"),
        loss_payee_ids=[bank])), 201)  # fmt: skip
    assert taken["id"] == mandate["id"] and taken["status"] == "open"
    [heard] = await read_feed(cases, auth("bank", bank))
    assert heard["type"] == "case.stage_changed"
    assert (heard["data"]["case_id"], heard["data"]["claim_id"]) == (mandate["id"], claim_id)
    assert heard["data"]["previous_status"] == heard["data"]["status"] == "open"
    assert heard["data"]["reason"] == (
        f"claim {claim_id} paid: taken over, owing what the claim left unpaid"
    )
