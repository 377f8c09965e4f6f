"""What a declaration refuses beyond its schema: amounts written otherwise than the published
pattern, a payment date with no amount paid, a payment after today or more than the invoice, an
amount paid without its date, dates outside what the policy reads (a shipment after today or
before its start less the indicators' history, a due date past the maximum credit period, a
payment before that history), and (on the embedded SQLite database) a book whose total the
database could not add up — refused at once, never a 503 on every later read."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from services.underwriting import rules
from services.underwriting.rules.cash_flow import DEFAULT_HEALTH
from tests.builders import make_buyer, make_policy, money, ok
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


@pytest.fixture
async def uw(pinned: httpx.AsyncClient) -> httpx.AsyncClient:
    """Today after the invoices' shipment (a declaration reports goods already shipped)."""
    return pinned


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
    # Named as the other date refusals of a declaration name it: the invoice, the field, the bound.
    assert answer.json()["detail"] == "invoice I-2: paid_on must not be after today (2027-03-01)"
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


# The policy of `make_policy` starts on 2026-01-01; the indicators read back 730 days before it
# (DSO year on year): nothing is declared before 2024-01-02. Its maximum credit period is 180 days,
# so a declared invoice may be due 365 days after shipment (TCI_UW_DECLARED_CREDIT_DAYS_AT_MOST).
@pytest.mark.parametrize(("dates", "field", "bound"), [
    ({"shipment_date": "2027-03-02", "due_date": "2027-04-30"}, "shipment_date", "2027-03-01"),
    ({"shipment_date": "2999-01-01", "due_date": "2999-02-01"}, "shipment_date", "2027-03-01"),
    ({"shipment_date": "1900-01-01", "due_date": "1900-03-01"}, "shipment_date", "2024-01-02"),
    ({"shipment_date": "2024-01-01", "due_date": "2024-03-01"}, "shipment_date", "2024-01-02"),
    ({"shipment_date": "2027-01-01", "due_date": "2028-01-02"}, "due_date", "2028-01-01"),
    ({"shipment_date": "2027-01-01", "due_date": "2999-12-31"}, "due_date", "2028-01-01"),
    ({"paid_amount": money("100"), "paid_on": "1950-01-01"}, "paid_on", "2024-01-02"),
])  # fmt: skip
async def test_an_invoice_dated_outside_what_the_policy_reads_is_refused_naming_the_field(
    pinned: httpx.AsyncClient, dates: dict[str, Any], field: str, bound: str
) -> None:
    policy, buyer = await make_policy(pinned), await make_buyer(pinned)
    holder = auth("policyholder", policy["policyholder_id"])
    url = f"/v1/policies/{policy['id']}/declarations"
    answer = await pinned.post(url, headers=holder, json={"invoices": [
        invoice(buyer["id"], "OK-1", money("500")), invoice(buyer["id"], "OK-2", money("500")),
        invoice(buyer["id"], "ODD", money("700"), **dates)]})  # fmt: skip
    assert answer.status_code == 422, answer.text
    assert [e["loc"] for e in answer.json()["errors"]] == [["body", "invoices", 2, field]]
    assert bound in answer.json()["detail"], answer.text
    # Nothing of it was kept: no exposure, nothing in the cash-flow indicators.
    health = ok(await pinned.get(f"/v1/policies/{policy['id']}/portfolio-health",
                                 headers=holder), 200)  # fmt: skip
    assert health["outstanding"] == money("0.00")


async def test_an_invoice_on_each_bound_of_what_the_policy_reads_is_declared(
    pinned: httpx.AsyncClient,
) -> None:
    policy, buyer = await make_policy(pinned), await make_buyer(pinned)
    answer = await pinned.post(f"/v1/policies/{policy['id']}/declarations",
                               headers=auth("policyholder", policy["policyholder_id"]),
                               json={"invoices": [
        invoice(buyer["id"], "TODAY", money("100"), shipment_date="2027-03-01",
                due_date="2028-02-29"),  # shipped today, due 365 days later
        invoice(buyer["id"], "OLDEST", money("100"), shipment_date="2024-01-02",
                due_date="2024-03-01", paid_amount=money("100"), paid_on="2024-01-02"),
    ]})  # fmt: skip
    assert answer.status_code == 201, answer.text


async def test_the_due_date_bound_is_the_policys_maximum_credit_period_when_longer(
    pinned: httpx.AsyncClient,
) -> None:
    """Terms longer than the cover's are still a receivable of the book (the coverage check says
    it is not covered); the bound is a year, or the policy's own maximum when that is longer."""
    short = await make_policy(pinned, max_credit_period_days=30)
    buyer = await make_buyer(pinned)
    ok(await pinned.post(f"/v1/policies/{short['id']}/declarations",
                         headers=auth("policyholder", short["policyholder_id"]),
                         json={"invoices": [invoice(buyer["id"], "UNCOVERED", money("100"),
                                                    due_date="2027-08-10")]}), 201)  # fmt: skip
    long = await make_policy(pinned, max_credit_period_days=400)
    url, holder = f"/v1/policies/{long['id']}/declarations", auth("policyholder",
                                                                   long["policyholder_id"])  # fmt: skip
    refused = await pinned.post(url, headers=holder, json={"invoices": [
        invoice(buyer["id"], "LONG", money("100"), due_date="2028-03-17")]})  # fmt: skip
    assert refused.status_code == 422, refused.text
    assert "2028-03-16" in refused.json()["detail"] and "400 days" in refused.json()["detail"]
    ok(await pinned.post(url, headers=holder, json={"invoices": [
        invoice(buyer["id"], "LONG", money("100"), due_date="2028-03-16")]}), 201)  # fmt: skip


def test_the_earliest_day_declared_is_the_policys_start_less_the_indicators_history() -> None:
    assert DEFAULT_HEALTH.history_days == 730  # a year, and the sales window before it
    assert rules.earliest_declared_day(dt.date(2026, 1, 1), DEFAULT_HEALTH.history_days) == (
        dt.date(2024, 1, 2))  # fmt: skip
