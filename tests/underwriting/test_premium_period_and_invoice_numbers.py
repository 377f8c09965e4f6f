"""Premium only on turnover shipped while the policy is active, whatever period is asked; an
invoice is declared under a number that is not blank, known without its surrounding blanks
(" INV-1" is "INV-1": declaring it again updates it) in every service."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from typing import Any

import httpx
import pytest

from services.underwriting import rules
from tests.builders import declared_on, make_buyer, make_policy, money, ok
from tests.conftest import auth


def invoice(number: str, buyer_id: str, amount: str, shipped: str, due: str) -> dict[str, Any]:
    return {"number": number, "buyer_id": buyer_id, "amount": money(amount),
            "shipment_date": shipped, "due_date": due}  # fmt: skip


async def test_turnover_shipped_before_the_policy_starts_or_after_it_ends_bears_no_premium(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, start_date="2026-01-01", end_date="2026-12-31",
                               premium_rate_pct="0.35")  # fmt: skip
    buyer = (await make_buyer(uw))["id"]
    holder = auth("policyholder", policy["policyholder_id"])
    with declared_on(uw, dt.date(2027, 1, 1)):  # each shipped by the day declared
        declared = ok(await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder,
                                    json={"invoices": [
            invoice("BEFORE", buyer, "1000.00", "2025-12-31", "2026-01-30"),  # the day before it
            invoice("FIRST", buyer, "2000.00", "2026-01-01", "2026-01-31"),  # its first day
            invoice("LAST", buyer, "333.33", "2026-12-31", "2027-01-30"),  # its last day
            invoice("AFTER", buyer, "4000.00", "2027-01-01", "2027-01-31"),  # the day after it
        ]}), 201)  # fmt: skip
    assert declared["created"] == 4
    asked = ok(await uw.get(f"/v1/policies/{policy['id']}/premium?from=2025-01-01&to=2027-12-31",
                            headers=holder), 200)  # fmt: skip
    # 2,333.33 insured × 0.35% = 8.166655 → 8.17; the 5,000.00 shipped outside it is left out.
    assert asked["insured_turnover"] == money("2333.33")
    assert asked["premium"] == money("8.17")
    assert (asked["invoices_counted"], asked["invoices_excluded"]) == (2, 2)
    assert (asked["period_from"], asked["period_to"]) == ("2025-01-01", "2027-12-31")
    whole = ok(await uw.get(f"/v1/policies/{policy['id']}/premium", headers=holder), 200)
    assert whole["premium"] == money("8.17")
    assert (whole["invoices_counted"], whole["invoices_excluded"]) == (2, 0)
    before = ok(await uw.get(f"/v1/policies/{policy['id']}/premium?from=2025-01-01&to=2025-12-31",
                             headers=holder), 200)  # fmt: skip
    assert before["insured_turnover"] == money("0.00") and before["premium"] == money("0.00")
    assert (before["invoices_counted"], before["invoices_excluded"]) == (0, 1)


def test_a_line_shipped_outside_the_policy_period_bears_no_premium() -> None:
    line = rules.TurnoverLine(D(1000), 2, "company", "DE", False, False)
    lines = [line, line._replace(shipped_while_active=False)]
    assert rules.insurable_turnover(lines, None) == rules.InsurableTurnover(D(1000), 2, 2)


async def test_an_invoice_number_that_is_blank_is_refused_and_nothing_is_declared(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, start_date="2026-01-01", end_date="2026-12-31")
    buyer = (await make_buyer(uw))["id"]
    holder = auth("policyholder", policy["policyholder_id"])
    for blank in ("   ", "\t\n", "\u3000"):  # spaces, tab and newline, an ideographic space
        response = await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder,
                                 json={"invoices": [
            invoice("INV-1", buyer, "10.00", "2026-03-01", "2026-04-01"),
            invoice(blank, buyer, "10.00", "2026-03-01", "2026-04-01"),
        ]})  # fmt: skip
        assert response.status_code == 422, (blank, response.text)
        assert response.json()["errors"][0]["loc"] == ["body", "invoices", 1, "number"]
    premium = ok(await uw.get(f"/v1/policies/{policy['id']}/premium", headers=holder), 200)
    assert premium["invoices_counted"] == 0
    # A number is kept with the blanks inside it.
    ok(
        await uw.post(
            f"/v1/policies/{policy['id']}/declarations",
            headers=holder,
            json={"invoices": [invoice(" INV 2 ", buyer, "10.00", "2026-03-01", "2026-04-01")]},
        ),
        201,
    )


async def test_a_known_invoice_number_written_with_surrounding_blanks_updates_the_invoice(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw, start_date="2026-01-01", end_date="2026-12-31",
                               premium_rate_pct="0.35")  # fmt: skip
    buyer = (await make_buyer(uw))["id"]
    holder = auth("policyholder", policy["policyholder_id"])
    url = f"/v1/policies/{policy['id']}/declarations"
    first = ok(await uw.post(url, headers=holder, json={"invoices": [
        invoice("INV-1", buyer, "1000.00", "2026-03-01", "2026-04-01")]}), 201)  # fmt: skip
    assert (first["created"], first["updated"]) == (1, 0)
    for written, amount in (
        (" INV-1", "2000.00"),
        ("INV-1\t", "3000.00"),
        ("\u3000INV-1 ", "4000.00"),
    ):
        again = ok(await uw.post(url, headers=holder, json={"invoices": [
            invoice(written, buyer, amount, "2026-03-01", "2026-04-01")]}), 201)  # fmt: skip
        assert (again["created"], again["updated"]) == (0, 1), written
    premium = ok(await uw.get(f"/v1/policies/{policy['id']}/premium", headers=holder), 200)
    assert premium["insured_turnover"] == money("4000.00")  # one invoice, as last declared
    assert premium["invoices_counted"] == 1
    twice = await uw.post(url, headers=holder, json={"invoices": [
        invoice("INV-9", buyer, "10.00", "2026-03-01", "2026-04-01"),
        invoice(" INV-9 ", buyer, "10.00", "2026-03-01", "2026-04-01")]})  # fmt: skip
    assert twice.status_code == 422, twice.text
    assert twice.json()["errors"][0]["loc"] == ["body", "invoices", 1, "number"]


def test_an_invoice_number_is_trimmed_and_never_blank_in_claims_and_collections_too() -> None:
    """One type of invoice number for every service: a claim's invoice and a case's invoice are
    known without surrounding blanks, and never blank either."""
    from pydantic import TypeAdapter, ValidationError

    from services.claims.schemas import InvoiceIn
    from shared.contracts import CaseInvoice

    for model in (InvoiceIn, CaseInvoice):
        fields = {"amount": {"amount": "10", "currency": "EUR"}, "due_date": "2026-03-01",
                  "shipment_date": "2026-01-01"}  # fmt: skip
        known = {k: v for k, v in fields.items() if k in model.model_fields}
        assert TypeAdapter(model).validate_python({"number": " I 1\t", **known}).number == "I 1"
        for blank in ("", "   ", "\t\n", "\u3000", "I\x001"):
            with pytest.raises(ValidationError):
                TypeAdapter(model).validate_python({"number": blank, **known})
