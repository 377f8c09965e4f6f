"""The days an activity and a payment give are days a collector could mean: done, or received, on
or after the day the case was opened and not after today; a promise to pay falls due on or after
the day it was made and within the promise horizon (a setting, default 365 days) after it. Any
other day is 422 on the field, naming the bound."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.builders import make_buyer, money, ok
from tests.conftest import auth, unique

COLLECTOR = auth("collector")
TODAY = "2027-03-10"  # the case is opened today


@pytest.fixture
async def case(api: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[httpx.AsyncClient, str]:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    cases: httpx.AsyncClient = await api.open("collections")
    creditor = unique("ph")
    buyer = await make_buyer(api("underwriting"))
    opened = ok(await cases.post("/v1/cases", headers=auth("policyholder", creditor), json={
        "creditor_id": creditor, "buyer_id": buyer["id"], "debtor_country": "DE",
        "invoices": [{"number": "N-1", "amount": money("1000"), "due_date": "2027-02-15"}]}),
        201)  # fmt: skip
    return cases, opened["id"]


def refused(answer: httpx.Response, field: str) -> str:
    """The message of a 422 on `field` of the body."""
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["errors"]
    assert error["loc"] == ["body", field]
    return str(error["msg"])


async def promise(cases: httpx.AsyncClient, case_id: str, due_on: str,
                  made_on: str = TODAY) -> httpx.Response:  # fmt: skip
    return await cases.post(f"/v1/cases/{case_id}/activities", headers=COLLECTOR, json={
        "kind": "promise_to_pay", "occurred_on": made_on, "promised_amount": money("10"),
        "promised_on": due_on})  # fmt: skip


async def test_an_activity_happened_between_the_cases_opening_and_today(
    case: tuple[httpx.AsyncClient, str],
) -> None:
    cases, case_id = case
    path = f"/v1/cases/{case_id}/activities"
    long_ago = await cases.post(
        path, headers=COLLECTOR, json={"kind": "call", "occurred_on": "1900-01-01"}
    )
    assert "2027-03-10" in refused(long_ago, "occurred_on")
    ahead = await cases.post(
        path, headers=COLLECTOR, json={"kind": "call", "occurred_on": "2027-03-11"}
    )
    assert "2027-03-10" in refused(ahead, "occurred_on")
    ok(await cases.post(path, headers=COLLECTOR, json={"kind": "call", "occurred_on": TODAY}), 201)


async def test_a_promise_falls_due_from_the_day_it_is_made_to_the_horizon_after_it(
    case: tuple[httpx.AsyncClient, str],
) -> None:
    cases, case_id = case
    far = refused(await promise(cases, case_id, "2999-01-01"), "promised_on")
    assert "365 days" in far and "2028-03-09" in far  # the horizon's last day
    before = refused(await promise(cases, case_id, "2027-03-09"), "promised_on")
    assert "2027-03-10" in before  # the day it was made
    ok(await promise(cases, case_id, TODAY), 201)  # paid the day it is promised
    ok(await promise(cases, case_id, "2028-03-09"), 201)  # the horizon's last day
    read = ok(await cases.get(f"/v1/cases/{case_id}", headers=COLLECTOR), 200)
    assert [a["promised_on"] for a in read["activities"]] == [TODAY, "2028-03-09"]


async def test_the_promise_horizon_is_a_setting(case: tuple[httpx.AsyncClient, str]) -> None:
    cases, case_id = case
    settings = cases._transport.app.state.settings  # type: ignore[attr-defined]
    settings.promise_horizon_days = 30
    beyond = refused(await promise(cases, case_id, "2027-04-10"), "promised_on")
    assert "30 days" in beyond and "2027-04-09" in beyond
    ok(await promise(cases, case_id, "2027-04-09"), 201)


async def test_a_payment_is_received_between_the_cases_opening_and_today(
    case: tuple[httpx.AsyncClient, str],
) -> None:
    cases, case_id = case
    path = f"/v1/cases/{case_id}/payments"
    long_ago = await cases.post(
        path, headers=COLLECTOR, json={"amount": money("1"), "received_on": "1900-01-01"}
    )
    assert "2027-03-10" in refused(long_ago, "received_on")
    ahead = await cases.post(
        path, headers=COLLECTOR, json={"amount": money("1"), "received_on": "2999-01-01"}
    )
    assert "2027-03-10" in refused(ahead, "received_on")
    ok(
        await cases.post(
            path, headers=COLLECTOR, json={"amount": money("1"), "received_on": TODAY}
        ),
        201,
    )
