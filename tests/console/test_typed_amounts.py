"""Amounts staff type into the console's forms are read as the reader's language writes them
(Babel's grouping and decimal symbols, digits and commas typed full-width by a Chinese input
method) and sent to the services as plain decimal strings: an exponent ("1e3") is refused on the
form, never sent on as "1E+3" for the service to refuse."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from console.forms import money_sent, typed_amount, typed_date
from console.i18n import BABEL_LOCALES
from console.session import SESSION_COOKIE
from shared.auth import mint_token
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.console.conftest import console_with_services
from tests.console.test_session import csrf_of

ENGLISH, CHINESE = BABEL_LOCALES["en"], BABEL_LOCALES["zh-CN"]


@pytest.mark.parametrize("locale", [ENGLISH, CHINESE])
@pytest.mark.parametrize(("typed", "read"), [
    ("1000", "1000"),
    ("1,000", "1000"),
    (" 1,234,567.50 ", "1234567.50"),
    ("0.01", "0.01"),
    ("１０００", "1000"),  # full-width digits
    ("1，000", "1000"),  # a full-width comma
    ("１，２３４．５", "1234.5"),
])  # fmt: skip
def test_an_amount_is_read_with_the_grouping_of_the_locale(
    locale: str, typed: str, read: str
) -> None:
    assert typed_amount(typed, locale) == Decimal(read)


@pytest.mark.parametrize("locale", [ENGLISH, CHINESE])
@pytest.mark.parametrize("typed", [
    "1e3", "1E+3", "1e-2", "-5", "+5", "1,00", "1,0000", "1.000.000", "1,000.", "5 000", "NaN",
    "Infinity", "0", "0.00", "", "  ", "1_000", "٣", "五",
])  # fmt: skip
def test_anything_else_is_not_an_amount(locale: str, typed: str) -> None:
    assert typed_amount(typed, locale) is None


def test_zero_is_an_amount_only_where_the_form_allows_it() -> None:
    assert typed_amount("0", ENGLISH, zero_allowed=True) == 0
    assert typed_amount("0", ENGLISH) is None


def test_money_is_sent_as_a_plain_decimal_and_a_date_as_the_input_gives_it() -> None:
    assert money_sent(Decimal("1E+3"), "EUR") == {"amount": "1000", "currency": "EUR"}
    assert money_sent(Decimal("1E-7"), "EUR")["amount"] == "0.0000001"
    assert typed_date(" 2026-11-24 ") == "2026-11-24"
    assert typed_date("24/11/2026") is None


# ---------------------------------------------------------------- through the forms


@pytest.fixture
async def faked() -> AsyncIterator[tuple[httpx.AsyncClient, list[dict[str, Any]]]]:
    """The console with services that take every POST (a 201 with an id), recording the body
    of each."""
    bodies: list[dict[str, Any]] = []

    def service(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            bodies.append(json.loads(request.content))
        return httpx.Response(201, json={"id": "x_1", "limit_changes": []})

    async with console_with_services(service) as client:
        yield client, bodies


async def signed_in(client: httpx.AsyncClient, role: str) -> str:
    token = mint_token(DEVELOPMENT_JWT_SECRET, role=role, subject="typist", ttl_seconds=600)
    client.cookies.set(SESSION_COOKIE, token)
    return csrf_of((await client.get("/sign-in")).text)


async def test_a_payment_typed_full_width_in_chinese_is_sent_as_a_plain_amount(
    faked: tuple[httpx.AsyncClient, list[dict[str, Any]]],
) -> None:
    client, bodies = faked
    csrf = await signed_in(client, "collector")
    form = {"csrf": csrf, "currency": "EUR", "received_on": "2026-11-20"}
    for typed in ("1，000", "１０００", "1,000.00"):
        answer = await client.post("/cases/case_1/payments", data={**form, "amount": typed})
        assert answer.status_code == 303 and "error" not in answer.headers["location"], typed
    assert [b["amount"] for b in bodies] == [{"amount": "1000", "currency": "EUR"}] * 2 + [
        {"amount": "1000.00", "currency": "EUR"}]  # fmt: skip


async def test_an_exponent_is_refused_on_the_form_and_never_sent(
    faked: tuple[httpx.AsyncClient, list[dict[str, Any]]],
) -> None:
    client, bodies = faked
    csrf = await signed_in(client, "collector")
    english = {"Accept-Language": "en"}
    paid = await client.post("/cases/case_1/payments", headers=english, data={
        "csrf": csrf, "currency": "EUR", "received_on": "2026-11-20", "amount": "1e3"})  # fmt: skip
    assert paid.headers["location"].endswith("error=payment-incomplete")
    promised = await client.post("/cases/case_1/activities", headers=english, data={
        "csrf": csrf, "currency": "EUR", "kind": "promise_to_pay", "occurred_on": "2026-11-20",
        "promised_amount": "1E+3", "promised_on": "2026-11-30"})  # fmt: skip
    assert promised.headers["location"].endswith("error=activity-incomplete")
    csrf = await signed_in(client, "underwriter")
    decided = await client.post("/underwriting/requests/lrq_1/decision", headers=english, data={
        "csrf": csrf, "decision": "partially_approve", "amount": "2e5", "currency": "EUR",
        "reason": "weak accounts"})  # fmt: skip
    assert decided.headers["location"].endswith("error=decision-incomplete")
    changed = await client.post("/underwriting/limits/lim_1/change", headers=english, data={
        "csrf": csrf, "change": "reduce", "amount": "1e5", "currency": "EUR",
        "policy_id": "pol_1", "reason": "exposure"})  # fmt: skip
    assert changed.headers["location"].endswith("error=limit-change-incomplete")
    assert bodies == []


async def test_every_amount_form_reads_the_locales_grouping(
    faked: tuple[httpx.AsyncClient, list[dict[str, Any]]],
) -> None:
    """A promise, a partial approval and a limit change, each typed with grouping."""
    client, bodies = faked
    csrf = await signed_in(client, "collector")
    await client.post("/cases/case_1/activities", data={
        "csrf": csrf, "currency": "EUR", "kind": "promise_to_pay", "occurred_on": "2026-11-20",
        "promised_amount": "２，５００", "promised_on": "2026-11-30"})  # fmt: skip
    csrf = await signed_in(client, "underwriter")
    await client.post("/underwriting/requests/lrq_1/decision", headers={"Accept-Language": "en"},
                      data={"csrf": csrf, "decision": "partially_approve",
                            "amount": "1,800,000", "currency": "EUR", "reason": "weak"})  # fmt: skip
    await client.post("/underwriting/limits/lim_1/change", data={
        "csrf": csrf, "change": "reduce", "amount": "1，000，000", "currency": "EUR",
        "policy_id": "pol_1", "reason": "exposure"})  # fmt: skip
    assert [bodies[0]["promised_amount"], bodies[1]["amount"], bodies[2]["new_amount"]] == [
        {"amount": "2500", "currency": "EUR"}, {"amount": "1800000", "currency": "EUR"},
        {"amount": "1000000", "currency": "EUR"}]  # fmt: skip


async def test_a_resolution_names_the_dispute_chosen_on_the_case_page(
    faked: tuple[httpx.AsyncClient, list[dict[str, Any]]],
) -> None:
    client, bodies = faked
    csrf = await signed_in(client, "collector")
    for kind in ("dispute_resolved", "call"):
        await client.post("/cases/case_1/activities", data={
            "csrf": csrf, "kind": kind, "occurred_on": "2026-11-20", "dispute_id": "act_2"})  # fmt: skip
    assert [b.get("dispute_id") for b in bodies] == ["act_2", None]


async def test_a_case_with_open_disputes_offers_each_to_resolve() -> None:
    eur = {"amount": "500.00", "currency": "EUR"}

    def dispute(ident: str, note: str) -> dict[str, Any]:
        return {"id": ident, "kind": "dispute", "occurred_on": "2026-11-20", "note": note,
                "promised_amount": None, "promised_on": None, "dispute_id": None,
                "recorded_by": "chen"}  # fmt: skip

    case = {"id": "case_1", "buyer_id": "buy_1", "status": "on_hold", "stage": "legal",
            "days_past_due": 50, "outstanding": eur, "recovered": eur, "creditor_id": "ph-1",
            "insurer_share_pct": None, "fee_pct": "10", "ladder": "reminder_15_30_45",
            "opened_on": "2026-10-01", "currency": "EUR", "invoices": [], "payments": [],
            "open_disputes": ["act_2"],
            "activities": [dispute("act_1", "damaged goods"), dispute("act_2", "wrong price")]}  # fmt: skip

    def service(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/cases/case_1":
            return httpx.Response(200, json=case)
        return httpx.Response(404, json={"type": "not-found", "status": 404})

    async with console_with_services(service) as client:
        await signed_in(client, "collector")
        page = (await client.get("/cases/case_1", headers={"Accept-Language": "en"})).text
    assert '<select id="act-dispute" name="dispute_id"><option value="act_2">' in page
    assert 'value="act_1"' not in page
