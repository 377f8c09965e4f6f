"""Hostile input ends in a precise 422 problem+json naming the field, never a 500: NUL bytes and
lone surrogates anywhere, numbers past the columns' range, dates past what deadline arithmetic
can hold, cursors that overflow, JSON nested too deeply, messages without Python reprs."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from shared.settings import DEVELOPMENT_JWT_SECRET
from shared.signing import sign
from tests.builders import make_buyer, make_policy, money, ok
from tests.conftest import auth, unique

UW = auth("underwriter")
HANDLER = auth("claims_handler")
HOLDER = auth("policyholder", "ph-hostile")
COLLECTOR = auth("collector")
SERVICE = auth("service")


def refused(answer: httpx.Response, loc: list[Any] | None = None) -> dict[str, Any]:
    """A 422 validation problem; when `loc` is given, one of its errors names exactly that field."""
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = answer.json()
    assert body["type"] == "validation"
    for error in body["errors"]:
        assert set(error) <= {"loc", "msg", "type"}, error
        assert "Decimal(" not in error["msg"] and not error["msg"].startswith("Value error")
    if loc is not None:
        assert loc in [e["loc"] for e in body["errors"]], body
    return body


def cursor(created_at: str, ident: str, list_path: str = "underwriting:/v1/sanctions") -> str:
    """A cursor of underwriting's sanctions list, signed as the service signs one (its MAC
    right), so that what the position says is what gets refused."""
    raw = json.dumps([created_at, ident]).encode()
    position = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return sign(DEVELOPMENT_JWT_SECRET, f"cursor {list_path}", position)


# ---------------------------------------------------------------- NUL and lone surrogates


async def test_a_nul_byte_in_any_body_text_is_a_422_naming_the_field(api: Any) -> None:
    claims = await api.open("claims")
    uw = api("underwriting")
    collections = api("collections")
    refused(await claims.post("/v1/claims/clm-x/disputes", headers=HOLDER, json={
        "raised_on": "2027-01-01", "description": "bad\x00text", "invoice_numbers": ["INV-1"]}),
        ["body", "description"])  # fmt: skip
    refused(await claims.post("/v1/claims/clm-x/disputes", headers=HOLDER, json={
        "raised_on": "2027-01-01", "description": "x", "invoice_numbers": ["INV-1", "I\x00"]}),
        ["body", "invoice_numbers", 1])  # fmt: skip
    refused(await claims.post("/v1/claims/clm-x/decision", headers=HANDLER,
                              json={"decision": "reject", "reason": "no\x00"}),
            ["body", "reason"])  # fmt: skip
    refused(await uw.post("/v1/sanctions", headers=UW, json={"country": "IR", "reason": "a\x00"}),
            ["body", "reason"])  # fmt: skip
    refused(await uw.post("/v1/limit-requests/lr-x/decision", headers=UW,
                          json={"decision": "refuse", "reason": "\x00"}),
            ["body", "reason"])  # fmt: skip
    refused(await uw.post("/v1/limits/lim-x/changes", headers=UW,
                          json={"new_amount": money("1"), "reason": "r\x00"}),
            ["body", "reason"])  # fmt: skip
    refused(
        await uw.post(
            "/v1/buyers",
            headers=UW,
            json={"name": "N\x00", "country": "DE", "registration_number": "HRB 1"},
        ),
        ["body", "name"],
    )
    refused(
        await collections.post(
            "/v1/cases/cs-x/activities",
            headers=COLLECTOR,
            json={"kind": "note", "occurred_on": "2027-01-01", "note": "\x00"},
        ),
        ["body", "note"],
    )


async def test_a_lone_surrogate_in_body_text_is_a_422_naming_the_field(
    uw: httpx.AsyncClient,
) -> None:
    body = '{"country": "IR", "reason": "\\ud800 alone"}'
    refused(await uw.post("/v1/sanctions", headers={**UW, "content-type": "application/json"},
                          content=body), ["body", "reason"])  # fmt: skip


@pytest.mark.parametrize(("service", "path", "name", "headers"), [
    ("claims", "/v1/claims", "status", HANDLER),
    ("claims", "/v1/claims", "policy_id", HANDLER),
    ("underwriting", "/v1/buyers", "registration_number", UW),
    ("collections", "/v1/cases", "status", COLLECTOR),
    ("collections", "/v1/cases", "claim_id", COLLECTOR),
    ("underwriting", "/v1/sanctions", "cursor", UW),
])  # fmt: skip
async def test_a_nul_byte_in_a_query_filter_is_a_422_naming_the_parameter(
    api: Any, service: str, path: str, name: str, headers: dict[str, str]
) -> None:
    await api.open("claims")
    refused(await api(service).get(path, params={name: "a\x00b"}, headers=headers),
            ["query", name])  # fmt: skip


async def test_a_nul_byte_in_a_path_id_is_a_422_naming_it(uw: httpx.AsyncClient) -> None:
    refused(await uw.get("/v1/policies/pol%00x", headers=UW), ["path", "policy_id"])


async def test_a_signed_cursor_naming_a_sound_position_is_accepted(uw: httpx.AsyncClient) -> None:
    answer = await uw.get("/v1/sanctions", headers=UW,
                          params={"cursor": cursor("2027-01-01T00:00:00+00:00", "x")})  # fmt: skip
    assert answer.status_code == 200, answer.text


async def test_a_cursor_naming_an_id_with_a_nul_is_refused(uw: httpx.AsyncClient) -> None:
    answer = await uw.get("/v1/sanctions", headers=UW,
                          params={"cursor": cursor("2027-01-01T00:00:00+00:00", "id\x00")})  # fmt: skip
    refused(answer, ["query", "cursor"])


async def test_an_uploaded_file_whose_name_has_a_nul_is_a_422_naming_the_file(api: Any) -> None:
    claims = await api.open("claims")
    boundary = "hostile-boundary"
    # A file name is one line: no NUL, nor any other control character (ESC, BEL, a tab).
    for filename in (b"in\x00voice.pdf", b"x" * 300 + b".pdf", b"in\x1b[2Jvoice.pdf",
                     b"a\x07.pdf", b"a\tb.pdf", b"a\x7f.pdf"):  # fmt: skip
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\ninvoice\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="'
            ).encode()
            + filename
            + (f'"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\r\n--{boundary}--\r\n').encode()
        )
        answer = await claims.post(
            "/v1/claims/clm-x/documents", content=body,
            headers={**HOLDER, "content-type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip
        refused(answer, ["body", "file", "filename"])


# ---------------------------------------------------------------- numbers past the columns


@pytest.mark.parametrize("amount", ["1e30", str(2**64), "-1e15", "100000000000000"])
async def test_an_amount_past_the_columns_range_is_a_422_naming_it(
    uw: httpx.AsyncClient, amount: str
) -> None:
    answer = await uw.post("/v1/policies", headers=UW, json={
        "policyholder_id": "ph-1", "currency": "EUR", "start_date": "2027-01-01",
        "end_date": "2027-12-31", "cover_type": "whole_turnover",
        "max_liability": money(amount), "premium_rate_pct": "0.35"})  # fmt: skip
    refused(answer, ["body", "max_liability", "amount"])


async def test_an_amount_just_under_the_bound_is_stored(uw: httpx.AsyncClient) -> None:
    policy = await make_policy(uw, max_liability=money("99999999999999.99"))
    assert policy["max_liability"]["amount"] == "99999999999999.99"


async def test_a_count_past_what_its_column_holds_is_a_422_and_nothing_is_stored(
    uw: httpx.AsyncClient,
) -> None:
    for count in (2**31, 2**63, 2**64):
        answer = await uw.post("/v1/buyers", headers=UW, json={
            "name": "Big", "country": "DE", "registration_number": f"HRB-{count}",
            "indicators": {"litigation_count": count}})  # fmt: skip
        refused(answer, ["body", "indicators", "litigation_count"])
        found = await uw.get("/v1/buyers", headers=UW,
                             params={"country": "DE", "registration_number": f"HRB-{count}"})  # fmt: skip
        assert found.status_code == 200 and found.json()["items"] == []


async def test_a_percentage_with_more_decimals_than_its_column_is_a_422(
    uw: httpx.AsyncClient,
) -> None:
    answer = await uw.post("/v1/policies", headers=UW, json={
        "policyholder_id": "ph-1", "currency": "EUR", "start_date": "2027-01-01",
        "end_date": "2027-12-31", "cover_type": "whole_turnover",
        "max_liability": money("1000"), "premium_rate_pct": "0.1234567"})  # fmt: skip
    refused(answer, ["body", "premium_rate_pct"])


async def test_a_decimal_with_absurd_exponent_is_a_422(uw: httpx.AsyncClient) -> None:
    buyer = await make_buyer(uw)
    for ratio in ("1e999999999", "1e-999999999", "NaN", "Infinity"):
        answer = await uw.post(f"/v1/buyers/{buyer['id']}/indicators", headers=UW,
                               json={"current_ratio": ratio})  # fmt: skip
        refused(answer, ["body", "current_ratio"])


async def test_validation_messages_show_plain_numbers_never_python_reprs(
    uw: httpx.AsyncClient,
) -> None:
    answer = await uw.post("/v1/policies", headers=UW, json={
        "policyholder_id": "ph-1", "currency": "EUR", "start_date": "2027-01-01",
        "end_date": "2027-12-31", "cover_type": "whole_turnover",
        "max_liability": money("10.001"), "premium_rate_pct": "0.35"})  # fmt: skip
    body = refused(answer, ["body", "max_liability"])
    assert "10.001" in body["errors"][0]["msg"] and "Decimal" not in answer.text
    assert "Value error" not in answer.text


@pytest.mark.parametrize(("amount", "currency", "field", "quoted"), [
    (" 5", "EUR", "amount", '" 5"'),
    ("5\t", "EUR", "amount", '"5\t"'),
    ("5", " EUR", "currency", '" EUR"'),
])  # fmt: skip
async def test_a_validation_message_quotes_the_value_as_sent_blanks_and_all(
    api: Any, amount: str, currency: str, field: str, quoted: str
) -> None:
    """The blank that makes a value wrong is shown, not stripped away (`"5" is not a decimal
    amount` would leave the caller looking for what is wrong with 5)."""
    uw, cases = await api.open("underwriting"), await api.open("collections")
    sent = {"amount": amount, "currency": currency}
    registered = await uw.post("/v1/buyers", headers=UW, json={
        "name": "Blank GmbH", "country": "DE", "registration_number": unique("HRB"),
        "indicators": {"annual_revenue": sent}})  # fmt: skip
    paid = await cases.post("/v1/cases/case_1/payments", headers=COLLECTOR,
                            json={"amount": sent, "received_on": "2026-11-20"})  # fmt: skip
    for answer, loc in ((registered, ["body", "indicators", "annual_revenue", field]),
                        (paid, ["body", "amount", field])):  # fmt: skip
        body = refused(answer, loc)
        assert body["errors"][0]["msg"].startswith(quoted), body


# ---------------------------------------------------------------- dates


async def test_business_dates_past_2999_are_a_422_naming_the_field(api: Any) -> None:
    claims = await api.open("claims")
    uw = api("underwriting")
    invoice = {"number": "INV-1", "amount": money("100"), "shipment_date": "2027-01-01",
               "due_date": "9999-12-31"}  # fmt: skip
    refused(await claims.post("/v1/overdue-notifications", headers=HOLDER, json={
        "policy_id": "pol-x", "buyer_id": "buy-x", "kind": "repayment_plan",
        "invoices": [invoice], "instalments": [{"due_date": "9999-12-31", "amount": money("1")}]}),
        ["body", "invoices", 0, "due_date"])  # fmt: skip
    refused(await claims.post("/v1/overdue-notifications", headers=HOLDER, json={
        "policy_id": "pol-x", "buyer_id": "buy-x", "kind": "extension_request",
        "invoices": [{**invoice, "due_date": "2027-02-01"}], "new_due_date": "9999-12-31"}),
        ["body", "new_due_date"])  # fmt: skip
    refused(await claims.post("/v1/claims", headers=HOLDER, json={
        "policy_id": "pol-x", "buyer_id": "buy-x", "cause": "protracted_default",
        "invoices": [invoice]}), ["body", "invoices", 0, "due_date"])  # fmt: skip
    refused(
        await uw.post(
            "/v1/buyers/buy-x/signals",
            headers=UW,
            json={"kind": "payment_delay", "observed_on": "9999-12-31"},
        ),
        ["body", "observed_on"],
    )
    refused(
        await uw.post(
            "/v1/buyers/buy-x/signals",
            headers=UW,
            json={"kind": "payment_delay", "observed_on": "0001-01-01"},
        ),
        ["body", "observed_on"],
    )


@pytest.mark.parametrize(
    "when", [1762560000, 1762560000.0, "1762560000", "2026-11-08T00:00:00Z", "2026-11-08 00:00"]
)
async def test_a_business_date_is_a_yyyy_mm_dd_string_never_a_number_or_a_timestamp(
    uw: httpx.AsyncClient, when: Any
) -> None:
    answer = await uw.post("/v1/buyers/buy-x/signals", headers=UW,
                           json={"kind": "payment_delay", "observed_on": when})  # fmt: skip
    body = refused(answer, ["body", "observed_on"])
    assert "YYYY-MM-DD" in body["errors"][0]["msg"]


@pytest.mark.parametrize("when", ["2026-01-01T00:00:00", "1767225600"])
async def test_a_date_parameter_is_a_yyyy_mm_dd_string(uw: httpx.AsyncClient, when: str) -> None:
    refused(await uw.get("/v1/policies/pol-x/premium", headers=UW,
                         params={"from": when, "to": "2026-12-31"}),
            ["query", "from"])  # fmt: skip


async def test_a_date_parameter_outside_the_business_range_is_a_422(uw: httpx.AsyncClient) -> None:
    refused(await uw.get("/v1/policies/pol-x/premium", headers=UW,
                         params={"from": "0001-01-01", "to": "9999-12-31"}),
            ["query", "from"])  # fmt: skip


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_a_cursor_whose_moment_overflows_in_utc_is_a_422(
    uw: httpx.AsyncClient, moment: str
) -> None:
    answer = await uw.get("/v1/sanctions", headers=UW, params={"cursor": cursor(moment, "x")})
    refused(answer, ["query", "cursor"])


# ---------------------------------------------------------------- nesting


async def test_deeply_nested_json_with_an_idempotency_key_is_a_422_not_a_500(api: Any) -> None:
    collections = await api.open("collections")
    nested = "[" * 100_000 + "]" * 100_000
    answer = await collections.post(
        "/v1/escalations/run", content=nested,
        headers={**SERVICE, "content-type": "application/json", "Idempotency-Key": "deep-1"})  # fmt: skip
    refused(answer, ["body"])
    claims = await api.open("claims")
    answer = await claims.post(
        "/v1/claims/clm-x/payment", content=nested,
        headers={**SERVICE, "content-type": "application/json", "Idempotency-Key": "deep-2"})  # fmt: skip
    assert answer.status_code in (404, 422), answer.text


async def test_deeply_nested_json_on_a_body_route_is_a_422(uw: httpx.AsyncClient) -> None:
    nested = '{"policyholder_id": ' + "[" * 100_000 + "]" * 100_000 + "}"
    answer = await uw.post("/v1/policies", content=nested,
                           headers={**UW, "content-type": "application/json"})  # fmt: skip
    refused(answer)
    answer = await uw.post(
        "/v1/policies", content=nested,
        headers={**UW, "content-type": "application/json", "Idempotency-Key": "deep-3"})  # fmt: skip
    refused(answer)


async def test_refused_input_writes_nothing(uw: httpx.AsyncClient) -> None:
    before = ok(await uw.get("/v1/sanctions", headers=UW, params={"limit": 500}), 200)["items"]
    for reason in ("a\x00", "\ud800"):
        answer = await uw.post("/v1/sanctions", headers={**UW, "content-type": "application/json"},
                               content=json.dumps({"country": "IR", "reason": reason}))  # fmt: skip
        refused(answer, ["body", "reason"])
    after = ok(await uw.get("/v1/sanctions", headers=UW, params={"limit": 500}), 200)["items"]
    assert after == before


async def test_an_integer_in_a_body_is_a_json_integer_not_a_boolean_string_or_float(
    uw: httpx.AsyncClient,
) -> None:
    for level in (True, "3", 3.0):
        answer = await uw.put("/v1/country-risks/IS", headers=UW, json={"level": level})
        refused(answer, ["body", "level"])
    buyer = await make_buyer(uw)
    for count in (False, "1", 1.0):
        answer = await uw.post(f"/v1/buyers/{buyer['id']}/indicators", headers=UW,
                               json={"litigation_count": count})  # fmt: skip
        refused(answer, ["body", "litigation_count"])
    ok = await uw.put("/v1/country-risks/IS", headers=UW, json={"level": 3})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("flag", ["yes", "true", "on", 1, 0, 1.0])
async def test_a_boolean_in_a_body_is_a_json_boolean_not_a_string_or_number(
    api: Any, flag: Any
) -> None:
    claims = await api.open("claims")
    uw = api("underwriting")
    body = {"policyholder_id": unique("ph-flag"), "currency": "EUR", "start_date": "2026-01-01",
            "end_date": "2026-12-31", "cover_type": "whole_turnover",
            "max_liability": money("1000000"), "premium_rate_pct": "0.5"}  # fmt: skip
    refused(await uw.post("/v1/policies", headers=UW, json={**body, "political_risk_cover": flag}),
            ["body", "political_risk_cover"])  # fmt: skip
    refused(await uw.post("/v1/policies/pol-x/limit-requests", headers=HOLDER,
                          json={"buyer_id": "buy-x", "amount": money("1000"),
                                "payment_terms_days": 60, "related_to_policyholder": flag}),
            ["body", "related_to_policyholder"])  # fmt: skip
    invoice = {"number": "INV-1", "amount": money("100"), "shipment_date": "2026-06-01",
               "due_date": "2026-07-01"}  # fmt: skip
    refused(await claims.post("/v1/claims", headers=HOLDER, json={
        "policy_id": "pol-x", "buyer_id": "buy-x", "cause": "insolvency",
        "event_date": "2026-08-01", "invoices": [invoice], "war_related": flag}),
        ["body", "war_related"])  # fmt: skip
    refused(await claims.put("/v1/calendars/CN/days/2026-10-10", headers=HANDLER,
                             json={"working": flag, "reason": "bridge day"}),
            ["body", "working"])  # fmt: skip
