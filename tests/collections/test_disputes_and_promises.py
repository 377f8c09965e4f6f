"""A case's disputes once its debt is settled (paid in full, or collected by the case a paid claim
took over), a case closed by a takeover announced as any closed case, and its promises to pay
weighed together against what it owes."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from services.collections.models import Activity
from shared.db import get_session
from tests.builders import make_buyer, money, ok
from tests.conftest import auth, unique
from tests.feed import of_type, read_feed

COLLECTOR = auth("collector")
SERVICE = auth("service")
TODAY = "2027-03-10"


def today(client: httpx.AsyncClient, day: str) -> None:
    """Time passes: the in-process service's pinned today moves on."""
    settings = client._transport.app.state.settings  # type: ignore[attr-defined]
    settings.fixed_today = dt.date.fromisoformat(day)


@pytest.fixture
async def cases(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    client: httpx.AsyncClient = await api.open("collections")
    return client


@pytest.fixture
async def buyer(api: Any, cases: httpx.AsyncClient) -> str:
    return str((await make_buyer(api("underwriting")))["id"])


def opening(creditor: str, buyer: str, *invoices: tuple[str, str, str], **extra: Any
            ) -> dict[str, Any]:  # fmt: skip
    return {"creditor_id": creditor, "buyer_id": buyer, "debtor_country": "DE",
            "invoices": [{"number": n, "amount": money(a), "due_date": d} for n, a, d in invoices],
            **extra}  # fmt: skip


N1 = ("N-1", "400", "2027-02-15")
N2 = ("N-2", "600", "2027-02-20")
N3 = ("N-3", "200", "2027-02-25")


async def mandated(cases: httpx.AsyncClient, buyer: str, *invoices: tuple[str, str, str],
                   creditor: str | None = None) -> dict[str, Any]:  # fmt: skip
    creditor = creditor or unique("ph")
    return ok(await cases.post("/v1/cases", headers=auth("policyholder", creditor),
                               json=opening(creditor, buyer, *invoices)), 201)  # fmt: skip


async def act(cases: httpx.AsyncClient, case: dict[str, Any], status: int = 201, **body: Any
              ) -> dict[str, Any]:  # fmt: skip
    return ok(await cases.post(f"/v1/cases/{case['id']}/activities", headers=COLLECTOR,
                               json={"occurred_on": TODAY, **body}), status)  # fmt: skip


async def pay(cases: httpx.AsyncClient, case: dict[str, Any], amount: str, status: int = 201,
              on: str = TODAY) -> dict[str, Any]:  # fmt: skip
    return ok(await cases.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR,
                               json={"amount": money(amount), "received_on": on}), status)  # fmt: skip


async def seen(cases: httpx.AsyncClient, case: dict[str, Any]) -> dict[str, Any]:
    return ok(await cases.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)


def claim_of(case: dict[str, Any], buyer: str, *invoices: tuple[str, str, str]) -> dict[str, Any]:
    """A paid claim on the mandate's debt whose indemnity deducted nothing of the mandate's
    recoveries (it read them before they came in): paid 50% of the invoices."""
    body = opening(case["creditor_id"], buyer, *invoices, claim_id=unique("clm"),
                   insurer_share_pct="50")  # fmt: skip
    for invoice in body["invoices"]:
        invoice["recovered_in_collections"] = money("0")
    return body


# ---------------------------------------------------------------- disputes once the debt is settled


async def test_a_case_paid_in_full_resolves_its_open_disputes_as_moot(
    cases: httpx.AsyncClient, buyer: str
) -> None:
    """Held by two disputes, the case is paid in full: it closes, and each dispute is resolved as
    moot on the day of that payment, saying so; none is left open on a closed case."""
    case = await mandated(cases, buyer, N1, N2)
    first = await act(cases, case, kind="dispute", note="N-2: goods damaged")
    second = await act(cases, case, kind="dispute", note="N-1: price")
    assert (await seen(cases, case))["status"] == "on_hold"
    today(cases, "2027-03-12")
    paid = await pay(cases, case, "1000", on="2027-03-11")
    assert paid["case_status"] == "closed"
    after = await seen(cases, case)
    assert (after["status"], after["closed_on"], after["open_disputes"]) == (
        "closed", "2027-03-11", [])  # fmt: skip
    mooted = [a for a in after["activities"] if a["kind"] == "dispute_resolved"]
    assert [(a["dispute_id"], a["occurred_on"]) for a in mooted] == [
        (first["id"], "2027-03-11"), (second["id"], "2027-03-11")]  # fmt: skip
    assert all("moot" in a["note"] and paid["id"] in a["note"] for a in mooted)
    refused = await act(cases, case, 409, kind="dispute_resolved", dispute_id=first["id"],
                        occurred_on="2027-03-12")  # fmt: skip
    assert refused["type"] == "case-closed"


async def test_a_closed_mandate_taken_over_owing_again_collects_free_of_its_moot_disputes(
    cases: httpx.AsyncClient, buyer: str
) -> None:
    """The buyer disputed N-2, then paid N-1 and N-2 in full: the disputes were moot. A paid claim
    on N-1, N-2 and N-3 (which the mandate never had) takes the closed mandate over: it owes N-3's
    200 and collects it, open, not held by a dispute about a debt long paid."""
    case = await mandated(cases, buyer, N1, N2)
    await act(cases, case, kind="dispute", note="N-2: goods damaged")
    await pay(cases, case, "1000")
    taken = ok(await cases.post("/v1/cases", headers=SERVICE,
                                json=claim_of(case, buyer, N1, N2, N3)), 201)  # fmt: skip
    assert taken["id"] == case["id"]
    assert (taken["status"], taken["outstanding"], taken["open_disputes"]) == (
        "open", money("200.00"), [])  # fmt: skip


async def test_a_closed_mandate_taken_over_owing_again_holds_on_a_dispute_still_open(
    cases: httpx.AsyncClient, buyer: str
) -> None:
    """A mandate closed with a dispute still open (paid in full before disputes were resolved as
    moot on closing) and taken over owing N-3's 200 opens again on hold, not open: the dispute
    holds it until it is resolved."""
    case = await mandated(cases, buyer, N1, N2)
    dispute = await act(cases, case, kind="dispute", note="N-2: goods damaged")
    await pay(cases, case, "1000")
    app = cases._transport.app  # type: ignore[attr-defined]
    session: Callable[[], AsyncIterator[Any]] = app.dependency_overrides[get_session]
    async for s in session():  # the case as such a payment left it: its dispute open
        await s.execute(delete(Activity).where(Activity.case_id == case["id"],
                                               Activity.kind == "dispute_resolved"))  # fmt: skip
        await s.flush()
    assert (await seen(cases, case))["open_disputes"] == [dispute["id"]]
    taken = ok(await cases.post("/v1/cases", headers=SERVICE,
                                json=claim_of(case, buyer, N1, N2, N3)), 201)  # fmt: skip
    assert (taken["id"], taken["status"], taken["outstanding"]) == (
        case["id"], "on_hold", money("200.00"))  # fmt: skip
    assert taken["open_disputes"] == [dispute["id"]]
    climbed = ok(await cases.post("/v1/escalations/run", headers=COLLECTOR,
                                  json={"as_of": TODAY}), 200)  # fmt: skip
    assert case["id"] not in [m["case_id"] for m in climbed["moved"]]
    opened = await act(cases, case, kind="dispute_resolved", dispute_id=dispute["id"])
    assert opened["case_status"] == "open"


async def test_a_held_mandate_taken_over_owing_nothing_closes_with_its_disputes_moot(
    cases: httpx.AsyncClient, buyer: str
) -> None:
    """The buyer disputed N-2's quality and paid 700 (N-1's 400, 300 of N-2); the paid claim
    counted 200 of it recovered on N-2 and left 100 of N-2 unpaid (a credit note of 300 settled
    the dispute): taken over, the held mandate owes nothing, closes, and its dispute is moot."""
    case = await mandated(cases, buyer, N1, N2)
    dispute = await act(cases, case, kind="dispute", note="N-2: quality")
    await pay(cases, case, "700")
    body = claim_of(case, buyer, ("N-2", "100", "2027-02-20"))
    body["invoices"][0]["recovered_in_collections"] = money("200")
    body["settled_invoices"] = [{"number": "N-1", "recovered_in_collections": money("400")}]
    taken = ok(await cases.post("/v1/cases", headers=SERVICE, json=body), 201)
    assert (taken["id"], taken["status"], taken["outstanding"]) == (
        case["id"], "closed", money("0.00"))  # fmt: skip
    assert taken["open_disputes"] == []
    mooted = taken["activities"][-1]
    assert (mooted["kind"], mooted["dispute_id"]) == ("dispute_resolved", dispute["id"])
    assert "moot" in mooted["note"] and body["claim_id"] in mooted["note"]
    # Its creditor hears it closed, as of any case closed, and why.
    [closed] = of_type(await read_feed(cases, auth("policyholder", case["creditor_id"])),
                       "case.closed")  # fmt: skip
    assert closed["data"] == {"case_id": case["id"], "claim_id": body["claim_id"],
                              "creditor_id": case["creditor_id"], "closed_on": TODAY,
                              "reason": "settled_by_claim", "recovered": money("700.00")}  # fmt: skip


async def test_a_mandate_whose_debt_a_taken_over_case_collects_hands_its_disputes_over(
    cases: httpx.AsyncClient, buyer: str
) -> None:
    """Two mandates of one creditor on one buyer: A collects N-1, B collects N-2 and is held by
    the buyer's dispute of it. A paid claim on both takes A over; B's N-2 is collected by A from
    now on, so B closes, and the dispute goes with the debt: raised again on A, which holds,
    and resolved on B as carried over."""
    a = await mandated(cases, buyer, N1)
    b = await mandated(cases, buyer, N2, creditor=a["creditor_id"])
    dispute = await act(cases, b, kind="dispute", note="N-2: goods damaged")
    taken = ok(await cases.post("/v1/cases", headers=SERVICE,
                                json=claim_of(a, buyer, N1, N2)), 201)  # fmt: skip
    assert (taken["id"], taken["outstanding"]) == (a["id"], money("1000.00"))
    assert taken["status"] == "on_hold" and len(taken["open_disputes"]) == 1
    carried = next(x for x in taken["activities"] if x["id"] == taken["open_disputes"][0])
    assert carried["kind"] == "dispute"
    assert dispute["id"] in carried["note"] and "goods damaged" in carried["note"]
    closed = await seen(cases, b)
    assert (closed["status"], closed["open_disputes"]) == ("closed", [])
    handed = [x for x in closed["activities"] if x["kind"] == "dispute_resolved"]
    assert [x["dispute_id"] for x in handed] == [dispute["id"]]
    assert carried["id"] in handed[0]["note"] and a["id"] in handed[0]["note"]
    resolved = await act(cases, taken, kind="dispute_resolved", dispute_id=carried["id"])
    assert resolved["case_status"] == "open"
    [heard] = of_type(await read_feed(cases, auth("policyholder", a["creditor_id"])),
                      "case.closed")  # fmt: skip
    assert (heard["data"]["case_id"], heard["data"]["reason"], heard["data"]["recovered"]) == (
        b["id"], "collected_by_another_case", money("0.00"))  # fmt: skip


# ---------------------------------------------------------------- promises to pay, together


def promise(amount: str, due: str, made: str = TODAY) -> dict[str, Any]:
    return {"kind": "promise_to_pay", "occurred_on": made, "promised_amount": money(amount),
            "promised_on": due}  # fmt: skip


async def test_promises_still_open_together_promise_at_most_what_the_case_owes(
    cases: httpx.AsyncClient, buyer: str
) -> None:
    """1,000 owed, 600 promised for the 20th: a second promise of 400.01 is refused naming the
    open promise, the 600 it awaits and the 400 that may still be promised; one of 400 is
    taken, and then nothing more may be promised."""
    case = await mandated(cases, buyer, N1, N2)
    first = await act(cases, case, **promise("600", "2027-03-20"))
    over = await act(cases, case, 422, **promise("400.01", "2027-03-25"))
    assert over["type"] == "promise-exceeds-outstanding"
    assert (over["outstanding"], over["promised_open"], over["promisable"]) == (
        money("1000.00"), money("600.00"), money("400.00"))  # fmt: skip
    assert over["open_promises"] == [first["id"]]
    assert over["detail"] == (
        f"a promise of 400.01 EUR, with 600.00 EUR promised and not yet paid by the open "
        f"promises ({first['id']} due 2027-03-20), exceeds the outstanding 1000.00 EUR: at most "
        f"400.00 EUR more may be promised")  # fmt: skip
    second = await act(cases, case, **promise("400", "2027-03-25"))
    cent = await act(cases, case, 422, **promise("0.01", "2027-03-30"))
    assert cent["open_promises"] == [first["id"], second["id"]]
    assert cent["promisable"] == money("0.00")
    assert [a["kind"] for a in (await seen(cases, case))["activities"]] == ["promise_to_pay"] * 2


async def test_a_promise_kept_or_broken_no_longer_holds_what_it_promised(
    cases: httpx.AsyncClient, buyer: str
) -> None:
    """600 promised for the 20th and 400 for the 25th on 1,000 owed. 600 paid on the 12th keeps
    the first: 400 is owed and awaited by the second, nothing more may be promised. The 25th
    passes unpaid (the second is broken): the 400 may be promised again."""
    case = await mandated(cases, buyer, N1, N2)
    await act(cases, case, **promise("600", "2027-03-20"))
    second = await act(cases, case, **promise("400", "2027-03-25"))
    today(cases, "2027-03-12")
    await pay(cases, case, "600", on="2027-03-12")
    still = await act(cases, case, 422, **promise("0.01", "2027-03-30", made="2027-03-12"))
    assert (still["outstanding"], still["open_promises"]) == (money("400.00"), [second["id"]])
    today(cases, "2027-03-26")
    again = await act(cases, case, **promise("400", "2027-04-10", made="2027-03-26"))
    assert again["promised_amount"] == money("400.00")
