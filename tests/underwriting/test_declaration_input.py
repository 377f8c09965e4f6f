"""What a declaration refuses beyond its schema: amounts written otherwise than the published
pattern, a payment date with no amount paid, a payment after today or more than the invoice, an
amount paid without its date, and (on the embedded SQLite database) a book whose total the
database could not add up — refused at once, never a 503 on every later read."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.builders import make_buyer, make_policy, money
from tests.conftest import auth, backend


def invoice(buyer_id: str, number: str, amount: Any, **more: Any) -> dict[str, Any]:
    return {"number": number, "buyer_id": buyer_id, "amount": amount,
            "shipment_date": "2027-02-10", "due_date": "2027-04-10", **more}  # fmt: skip


async def test_amounts_only_as_the_published_pattern_writes_them(uw: httpx.AsyncClient) -> None:
    policy, buyer = await make_policy(uw), await make_buyer(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    for written in ("1e3", "1_000", " 1000 ", "１０００", "+1000", "1000.", ".5", "NaN"):
        answer = await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder,
                               json={"invoices": [invoice(buyer["id"], "I-1", money(written))]})  # fmt: skip
        assert answer.status_code == 422, (written, answer.text)
        assert ["body", "invoices", 0, "amount", "amount"] in [
            e["loc"] for e in answer.json()["errors"]
        ], written
    accepted = await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder,
                             json={"invoices": [invoice(buyer["id"], "I-1", money("1000.50"))]})  # fmt: skip
    assert accepted.status_code == 201, accepted.text


async def test_a_payment_date_needs_the_amount_paid(uw: httpx.AsyncClient) -> None:
    policy, buyer = await make_policy(uw), await make_buyer(uw)
    answer = await uw.post(f"/v1/policies/{policy['id']}/declarations",
                           headers=auth("policyholder", policy["policyholder_id"]),
                           json={"invoices": [invoice(buyer["id"], "I-1", money("500"),
                                                      paid_on="2027-03-01")]})  # fmt: skip
    assert answer.status_code == 422, answer.text
    assert [e["loc"] for e in answer.json()["errors"]] == [["body", "invoices", 0, "paid_amount"]]


@pytest.fixture
async def pinned(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    """The underwriting API with today pinned to 1 March 2027."""
    monkeypatch.setenv("TCI_FIXED_TODAY", "2027-03-01")
    client: httpx.AsyncClient = await api.open("underwriting")
    return client


async def test_a_payment_cannot_be_declared_after_today(pinned: httpx.AsyncClient) -> None:
    uw = pinned
    policy, buyer = await make_policy(uw), await make_buyer(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    paid = {"paid_amount": money("200")}
    answer = await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder, json={
        "invoices": [invoice(buyer["id"], "I-1", money("500"), **paid, paid_on="2027-03-01"),
                     invoice(buyer["id"], "I-2", money("500"), **paid, paid_on="2027-03-02")]})  # fmt: skip
    assert answer.status_code == 422, answer.text
    assert [e["loc"] for e in answer.json()["errors"]] == [["body", "invoices", 1, "paid_on"]]
    today = await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder, json={
        "invoices": [invoice(buyer["id"], "I-1", money("500"), **paid, paid_on="2027-03-01")]})  # fmt: skip
    assert today.status_code == 201, today.text


@pytest.mark.parametrize(("payment", "field"), [
    ({"paid_amount": money("500.01"), "paid_on": "2027-02-20"}, "paid_amount"),  # above the amount
    ({"paid_amount": money("100")}, "paid_on"),  # an amount paid, but when?
])  # fmt: skip
async def test_a_payment_inconsistent_with_its_invoice_is_refused_naming_the_field(
    pinned: httpx.AsyncClient, payment: dict[str, Any], field: str
) -> None:
    policy, buyer = await make_policy(pinned), await make_buyer(pinned)
    answer = await pinned.post(f"/v1/policies/{policy['id']}/declarations",
                               headers=auth("policyholder", policy["policyholder_id"]),
                               json={"invoices": [invoice(buyer["id"], "I-1", money("500"),
                                                          **payment)]})  # fmt: skip
    assert answer.status_code == 422, answer.text
    assert [e["loc"] for e in answer.json()["errors"]] == [["body", "invoices", 0, field]]


async def test_an_advance_paid_before_shipment_is_declared(pinned: httpx.AsyncClient) -> None:
    """A deposit the buyer paid before the goods left is a payment on the invoice, not an error."""
    policy, buyer = await make_policy(pinned), await make_buyer(pinned)
    answer = await pinned.post(f"/v1/policies/{policy['id']}/declarations",
                               headers=auth("policyholder", policy["policyholder_id"]),
                               json={"invoices": [invoice(buyer["id"], "I-1", money("500"),
                                                          paid_amount=money("100"),
                                                          paid_on="2027-02-01")]})  # fmt: skip
    assert answer.status_code == 201, answer.text


async def test_a_book_too_large_to_add_up_is_refused_whole_and_reads_still_answer(
    uw: httpx.AsyncClient,
) -> None:
    policy, buyer = await make_policy(uw), await make_buyer(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    huge = [invoice(buyer["id"], f"H-{n}", money("99999999999999.99")) for n in range(200)]
    answer = await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder,
                           json={"invoices": huge})  # fmt: skip
    if backend().kind == "sqlite":
        assert answer.status_code == 422, answer.text
        assert [e["loc"] for e in answer.json()["errors"]] == [["body", "invoices"]]
    else:  # PostgreSQL's NUMERIC adds up anything the columns hold
        assert answer.status_code == 201, answer.text
    health = await uw.get(f"/v1/policies/{policy['id']}/portfolio-health", headers=holder)
    assert health.status_code == 200, health.text


async def test_a_declaration_naming_a_buyer_that_does_not_exist_is_refused_whole(
    uw: httpx.AsyncClient,
) -> None:
    policy, buyer = await make_policy(uw), await make_buyer(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    url = f"/v1/policies/{policy['id']}/declarations"
    refused = await uw.post(url, headers=holder, json={"invoices": [
        invoice(buyer["id"], "K-1", money("100")), invoice("buy_zz_unknown", "K-2", money("100")),
        invoice("buy_aa_unknown", "K-3", money("100"))]})  # fmt: skip
    assert refused.status_code == 404, refused.text
    assert "buy_aa_unknown" in refused.json()["detail"]  # the first unknown buyer, by id
    # Nothing of the refused declaration was kept: its known buyer's invoice is new again.
    accepted = await uw.post(url, headers=holder,
                             json={"invoices": [invoice(buyer["id"], "K-1", money("100"))]})  # fmt: skip
    assert accepted.status_code == 201, accepted.text
    assert (accepted.json()["created"], accepted.json()["updated"]) == (1, 0)
