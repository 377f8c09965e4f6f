"""What the contract says a request is, the services take, and nothing else: every decimal and
money pattern published in OpenAPI takes exactly the strings its server type takes; an amount is
a string without leading zeros and with no more written decimals than its currency's minor unit
(domain.md: money never carries more); country and currency codes are upper case, as their
published enums list them; a buyer's indicators are possible figures; free text carries no control
characters (a single line none at all, several lines tab and line breaks only)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError

from services.claims.main import create_app as claims_app
from services.collections.main import create_app as collections_app
from services.underwriting.main import create_app as underwriting_app
from services.underwriting.schemas import POLICY_PERCENT_PLACES, PolicyPercent
from shared.contracts import (
    AMOUNT_SCHEMA,
    DECIMAL_SCHEMA,
    MAX_DECIMAL_PLACES,
    MAX_SHARE_DECIMAL_PLACES,
    NON_NEGATIVE_AMOUNT_SCHEMA,
    POSITIVE_AMOUNT_SCHEMA,
    ExactDecimal,
    ExactPercent,
    MoneyModel,
    NonNegativeMoney,
    Percent,
    PositiveMoney,
    percent_schema,
)
from tests.builders import make_buyer, make_policy, money, ok
from tests.conftest import auth, unique
from tests.shared.test_hostile_input import refused

UW = auth("underwriter")
HANDLER = auth("claims_handler")

# ---------------------------------------------------------------- published patterns = server


def _takes_value(adapter: TypeAdapter[Any]) -> Callable[[str], bool]:
    def takes(text: str) -> bool:
        try:
            adapter.validate_python(text)
        except ValidationError:
            return False
        return True

    return takes


def _takes_money(model: type[MoneyModel]) -> Callable[[str], bool]:
    # CLF has the most minor-unit decimals (4): the currency-independent pattern is its rule.
    def takes(text: str) -> bool:
        try:
            model.model_validate({"amount": text, "currency": "CLF"})
        except ValidationError:
            return False
        return True

    return takes


# Every decimal or money pattern a service publishes, and the server type that reads it.
SERVER_OF_PATTERN: dict[str, Callable[[str], bool]] = {
    DECIMAL_SCHEMA["pattern"]: _takes_value(TypeAdapter(ExactDecimal)),
    percent_schema(MAX_DECIMAL_PLACES)["pattern"]: _takes_value(TypeAdapter(Percent)),
    percent_schema(MAX_SHARE_DECIMAL_PLACES)["pattern"]: _takes_value(TypeAdapter(ExactPercent)),
    percent_schema(POLICY_PERCENT_PLACES)["pattern"]: _takes_value(TypeAdapter(PolicyPercent)),
    AMOUNT_SCHEMA["pattern"]: _takes_money(MoneyModel),
    POSITIVE_AMOUNT_SCHEMA["pattern"]: _takes_money(PositiveMoney),
    NON_NEGATIVE_AMOUNT_SCHEMA["pattern"]: _takes_money(NonNegativeMoney),
}

SAMPLES = [
    # zero and small amounts, with and without trailing zeros
    "0", "-0", "0.0", "0.00", "0.0000", "0.00000", "-0.0", "0.1", "0.10", "0.50", "0.5000",
    "0.01", "0.010", "0.001", "0.0001", "0.00010", "0.00001", "0.000000000001",
    "0.0000000000001", "0.000000000000", "0.0000000000000",
    # whole numbers and leading zeros
    "1", "5", "10", "99", "100", "101", "125000", "0100", "00", "00.5", "05", "007", "-007",
    "000000000000001", "12345678901234", "99999999999999", "100000000000000", "-12345678901234",
    # decimals, trailing zeros past a pattern's places
    "1.0", "1.00", "1.000", "1.0000", "1.00000", "1.5", "1.25", "1.2345", "1.23456",
    "99.999999", "99.9999999", "99.1234567", "1.123456789012", "1.1234567890123",
    "1.000000000000", "1.0000000000000", "100.0", "100.000000", "100.0000000", "100.1",
    "100.0000000000001", "99999999999999.9999", "99999999999999.99999", "-5", "-0.5",
    "-1.25", "-99999999999999.999999999999",
    "0." + "1" * MAX_SHARE_DECIMAL_PLACES, "0." + "1" * (MAX_SHARE_DECIMAL_PLACES + 1),
    "1." + "0" * MAX_SHARE_DECIMAL_PLACES, "1." + "0" * (MAX_SHARE_DECIMAL_PLACES + 1),
    # not decimals
    "", "-", ".", "1.", ".5", "+1", " 1", "1 ", "1e3", "1E-2", "1_000", "1,5", "NaN", "Infinity",
    "0x10", "١٠", "１",
]  # fmt: skip


def _published_patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if node.get("format") == "decimal" and "pattern" in node:
            yield node["pattern"]
        for value in node.values():
            yield from _published_patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from _published_patterns(value)


def test_every_published_decimal_pattern_takes_exactly_what_its_server_type_takes() -> None:
    published = {pattern for app in (underwriting_app(), claims_app(), collections_app())
                 for pattern in _published_patterns(app.openapi())}  # fmt: skip
    assert published, "no decimal pattern published"
    # A new pattern needs its server type here, so that the check below covers it.
    assert published <= set(SERVER_OF_PATTERN), published - set(SERVER_OF_PATTERN)
    disagreements = []
    for pattern in sorted(published):
        takes = SERVER_OF_PATTERN[pattern]
        for sample in SAMPLES:
            by_pattern = re.fullmatch(pattern, sample) is not None
            if by_pattern != takes(sample):
                disagreements.append((pattern, sample[:30], by_pattern))
    assert not disagreements, disagreements


def test_the_positive_amount_pattern_takes_small_amounts_with_trailing_zeros() -> None:
    pattern = POSITIVE_AMOUNT_SCHEMA["pattern"]
    for text in ("0.10", "0.50", "0.1000", "0.0100", "0.0010", "0.0001", "1.10"):
        assert re.fullmatch(pattern, text), text
    for text in ("0", "0.0", "0.0000", "0.00000", "0.00001", "00.5", "0100", "-0.5"):
        assert not re.fullmatch(pattern, text), text


# ---------------------------------------------------------------- over HTTP


def _error_message(answer: httpx.Response, loc: list[Any]) -> str:
    body = refused(answer, loc)
    return next(str(e["msg"]) for e in body["errors"] if e["loc"] == loc)


async def test_an_amount_is_a_string_without_leading_zeros_and_small_ones_are_taken(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw)
    buyer = await make_buyer(uw)
    holder = auth("policyholder", policy["policyholder_id"])

    def item(amount: Any, currency: str = "EUR") -> dict[str, Any]:
        return {"policy_id": policy["id"], "buyer_id": buyer["id"],
                "invoice_amount": {"amount": amount, "currency": currency},
                "shipment_date": "2027-01-10", "due_date": "2027-03-10"}  # fmt: skip

    for small in ("0.10", "0.50", "0.01"):  # what the published pattern now takes
        ok(await uw.post("/v1/coverage-checks", json=item(small), headers=holder), 200)
    for number in (5, 5.5, 0, True):
        answer = await uw.post("/v1/coverage-checks", json=item(number), headers=holder)
        loc = ["body", "invoice_amount", "amount"]
        assert _error_message(answer, loc) == 'an amount is sent as a string, e.g. "5.00"'
    for zeros in ("0100", "00.5", "007"):
        answer = await uw.post("/v1/coverage-checks", json=item(zeros), headers=holder)
        assert "leading zeros" in _error_message(answer, ["body", "invoice_amount", "amount"])
    # The batch answers each item as the single check does (its quick path included).
    batch = [item("0100"), item(5), item("0.10"), item("1.000"), item("100")]
    results = ok(await uw.post("/v1/coverage-checks/batch", json={"items": batch},
                               headers=holder), 200)["results"]  # fmt: skip
    assert ["error" in r for r in results] == [True, True, False, True, False], results
    # Money anywhere else: a policy's maximum liability, a limit's amount.
    answer = await uw.post("/v1/policies", headers=UW, json={
        "policyholder_id": unique("ph"), "currency": "EUR", "start_date": "2026-01-01",
        "end_date": "2026-12-31", "cover_type": "whole_turnover",
        "max_liability": {"amount": 5000000, "currency": "EUR"}, "premium_rate_pct": "0.35"})  # fmt: skip
    refused(answer, ["body", "max_liability", "amount"])
    answer = await uw.post(f"/v1/policies/{policy['id']}/limit-requests", headers=holder,
                           json={"buyer_id": buyer["id"], "amount": money("0050000"),
                                 "payment_terms_days": 60})  # fmt: skip
    refused(answer, ["body", "amount", "amount"])
    # Percentages too are decimal strings (api.md): a number is refused, naming the field.
    for number in (90, 0, True):
        answer = await uw.post("/v1/policies", headers=UW, json={
            "policyholder_id": unique("ph"), "currency": "EUR", "start_date": "2026-01-01",
            "end_date": "2026-12-31", "cover_type": "whole_turnover",
            "max_liability": money("5000000.00"), "premium_rate_pct": "0.35",
            "indemnity_pct": number})  # fmt: skip
        assert _error_message(answer, ["body", "indemnity_pct"]) == (
            'a percentage is sent as a string, e.g. "90" or "0.35"'
        )


async def test_money_never_carries_more_written_decimals_than_its_minor_unit(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw)
    buyer = await make_buyer(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    answer = await uw.post("/v1/coverage-checks", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "invoice_amount": money("1.000"),
        "shipment_date": "2027-01-10", "due_date": "2027-03-10"})  # fmt: skip
    assert "at most 2 decimals" in _error_message(answer, ["body", "invoice_amount"])
    yen = {"policyholder_id": unique("ph"), "currency": "JPY", "start_date": "2026-01-01",
           "end_date": "2026-12-31", "cover_type": "whole_turnover",
           "max_liability": money("100.0", "JPY"), "premium_rate_pct": "0.35"}  # fmt: skip
    answer = await uw.post("/v1/policies", headers=UW, json=yen)
    assert "at most 0 decimals" in _error_message(answer, ["body", "max_liability"])
    ok(await uw.post("/v1/policies", headers=UW,
                     json={**yen, "max_liability": money("100", "JPY")}), 201)  # fmt: skip
    # A percentage is written with no more decimals than its pattern: a policy's has 6.
    answer = await uw.post("/v1/policies", headers=UW, json={
        **yen, "policyholder_id": unique("ph"), "max_liability": money("100", "JPY"),
        "premium_rate_pct": "0.3500000"})  # fmt: skip
    refused(answer, ["body", "premium_rate_pct"])


async def test_codes_are_upper_case_and_indicators_possible_figures(uw: httpx.AsyncClient) -> None:
    answer = await uw.post("/v1/buyers", headers=UW, json={
        "name": "Lower Case GmbH", "country": "de", "registration_number": unique("HRB")})  # fmt: skip
    assert "upper case" in _error_message(answer, ["body", "country"])
    answer = await uw.post("/v1/policies", headers=UW, json={
        "policyholder_id": unique("ph"), "currency": "eur", "start_date": "2026-01-01",
        "end_date": "2026-12-31", "cover_type": "whole_turnover",
        "max_liability": money("5000000"), "premium_rate_pct": "0.35"})  # fmt: skip
    assert "upper case" in _error_message(answer, ["body", "currency"])
    refused(await uw.get("/v1/country-risks/de", headers=UW), ["path", "country"])

    def buyer(**indicators: Any) -> dict[str, Any]:
        return {"name": "Figures AG", "country": "DE", "registration_number": unique("HRB"),
                "indicators": indicators}  # fmt: skip

    for field, value in (("annual_revenue", money("-1")), ("dso_days", "-1"),
                         ("dso_prior_year_days", "-30"), ("current_ratio", "-0.5"),
                         ("overdue_ratio", "1.5"), ("litigation_count", -1),
                         ("management_changes_12m", -2)):  # fmt: skip
        answer = await uw.post("/v1/buyers", headers=UW, json=buyer(**{field: value}))
        body = refused(answer)
        assert any(e["loc"][:3] == ["body", "indicators", field] for e in body["errors"]), body
    # Equity may be negative (it is scored), revenue may be nil.
    created = ok(await uw.post("/v1/buyers", headers=UW, json=buyer(
        equity=money("-250000"), annual_revenue=money("0"))), 201)  # fmt: skip
    assert created["grade"] >= 1


async def test_free_text_carries_no_control_characters(api: Any) -> None:
    claims = await api.open("claims")
    uw = api("underwriting")
    collections = api("collections")
    policy = await make_policy(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    for name in ("a\x07\x1b[2J", "tab\there", "line\nbreak", "del\x7f", "csi\x9b2J"):
        answer = await uw.post("/v1/buyers", headers=UW, json={
            "name": name, "country": "DE", "registration_number": unique("HRB")})  # fmt: skip
        assert "control characters" in _error_message(answer, ["body", "name"])
    answer = await uw.post("/v1/buyers", headers=UW, json={
        "name": "Buyer", "country": "DE", "registration_number": "HRB\x1b1"})  # fmt: skip
    refused(answer, ["body", "registration_number"])
    # Unicode text is text: Chinese, accents, emoji.
    for name in ("上海贸易有限公司", "Wiener Möbel GmbH", "Istanbul Tekstil AŞ 🚢"):
        created = ok(await uw.post("/v1/buyers", headers=UW, json={
            "name": name, "country": "AT", "registration_number": unique("FN")}), 201)  # fmt: skip
        assert created["name"] == name
    buyer = await make_buyer(uw)
    # Several lines: tab and line breaks are kept, other controls refused.
    answer = await uw.post(f"/v1/buyers/{buyer['id']}/signals", headers=UW, json={
        "kind": "management_change", "observed_on": "2026-06-01",
        "details": "CEO left\r\n\tsee registry 注册"})  # fmt: skip
    assert ok(answer, 201)["details"] == "CEO left\r\n\tsee registry 注册"
    answer = await uw.post(f"/v1/buyers/{buyer['id']}/signals", headers=UW, json={
        "kind": "management_change", "observed_on": "2026-06-01", "details": "a\x1b[2J"})  # fmt: skip
    refused(answer, ["body", "details"])
    answer = await uw.post(f"/v1/buyers/{buyer['id']}/signals", headers=UW, json={
        "kind": "management_change", "observed_on": "2026-06-01", "details": "a\x9b2J"})  # fmt: skip
    refused(answer, ["body", "details"])
    refused(await uw.post("/v1/sanctions", headers=UW, json={"country": "IR", "reason": "a\x07"}),
            ["body", "reason"])  # fmt: skip
    refused(await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder, json={
        "invoices": [{"number": "INV\t1", "buyer_id": buyer["id"], "amount": money("10"),
                      "shipment_date": "2026-06-01", "due_date": "2026-07-01"}]}),
        ["body", "invoices", 0, "number"])  # fmt: skip
    refused(await claims.post("/v1/claims/clm-x/disputes", headers=holder, json={
        "raised_on": "2027-01-01", "description": "bad\x1b[2J", "invoice_numbers": ["INV-1"]}),
        ["body", "description"])  # fmt: skip
    refused(await claims.post("/v1/claims/clm-x/decision", headers=HANDLER,
                              json={"decision": "reject", "reason": "no\x08"}),
            ["body", "reason"])  # fmt: skip
    refused(await claims.put("/v1/calendars/CN/days/2027-02-11", headers=HANDLER,
                             json={"working": False, "reason": "\x1b]0;pwned\x07"}),
            ["body", "reason"])  # fmt: skip
    refused(await collections.post("/v1/cases/case-x/activities", headers=auth("collector"), json={
        "kind": "note", "occurred_on": "2026-06-01", "note": "x\x0cy"}), ["body", "note"])  # fmt: skip
