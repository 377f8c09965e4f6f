"""A creditor's signal weighs only with a stake in the buyer (`rules.signal_weighs`): collections
reports a mandate, a legal step or a case paid in full for a creditor; without a credit limit of
the creditor on the buyer (a limit request alone is not one) the signal is kept, with no points, and changes no grade and
no limit (otherwise any policyholder could downgrade any buyer for every insurer of it). The
decision is kept on the signal, so the whole-book re-grade reads the signals the one-buyer path
reads."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from typing import Any

import httpx
import pytest

from services.underwriting import rules
from shared.contracts import UNDERWRITER_SIGNAL_KINDS
from tests.builders import make_buyer, make_policy, money, ok, request_limit
from tests.conftest import auth, unique

UW = auth("underwriter")
# The closed loop's kinds come from claims and collections, with a service token.
SERVICE = auth("service")
TODAY = dt.date(2027, 6, 10)
# Six points in Germany (country level 2): grade 7; one signal's point more halves its limits.
WEAK = {"current_ratio": "0.5", "dso_days": "40", "dso_prior_year_days": "40",
        "overdue_ratio": "0.2", "litigation_count": 0, "management_changes_12m": 0,
        "equity": money("50000000")}  # fmt: skip


# ---------------------------------------------------------------- the rule


@pytest.mark.parametrize("kind", ["payment_delay", "collection_legal", "collection_paid"])
def test_a_creditors_collection_signal_weighs_only_with_a_stake_in_the_buyer(kind: str) -> None:
    assert rules.signal_weighs(kind, "ph-1", creditor_has_stake=True)
    assert not rules.signal_weighs(kind, "ph-1", creditor_has_stake=False)
    code, message = rules.unweighed_reason(False) or ("", "")
    assert code == "creditor_without_stake" and "no credit limit on the buyer" in message
    assert rules.unweighed_reason(True) is None


@pytest.mark.parametrize("kind", sorted(rules.SIGNAL_KINDS))
def test_a_signal_naming_no_creditor_weighs_as_before(kind: str) -> None:
    assert rules.signal_weighs(kind, None, creditor_has_stake=False)
    assert not rules.stake_needed(kind, None)


def test_other_kinds_naming_a_creditor_need_no_stake() -> None:
    for kind in ("insolvency_filing", "court_judgment", "overdue_notified", "claim_paid"):
        assert rules.signal_weighs(kind, "ph-1", creditor_has_stake=False)


# ---------------------------------------------------------------- over the API


@pytest.fixture
async def uw(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY.isoformat())
    client: httpx.AsyncClient = await api.open("underwriting")
    return client


async def signal(uw: httpx.AsyncClient, buyer_id: str, kind: str, **named: str) -> dict[str, Any]:
    body = {"kind": kind, "observed_on": TODAY.isoformat(), **named}
    # What collections reports (a creditor's, a case's) comes with a service token.
    by_collections = bool({"creditor_id", "case_id"} & named.keys())
    sender = UW if kind in UNDERWRITER_SIGNAL_KINDS and not by_collections else SERVICE
    return ok(await uw.post(f"/v1/buyers/{buyer_id}/signals", headers=sender, json=body), 201)


async def buyer_now(uw: httpx.AsyncClient, buyer_id: str) -> dict[str, Any]:
    return ok(await uw.get(f"/v1/buyers/{buyer_id}", headers=UW), 200)


async def limits_of(uw: httpx.AsyncClient, policy: dict[str, Any]) -> list[Any]:
    listed = ok(await uw.get(f"/v1/policies/{policy['id']}/limits", headers=UW), 200)
    return [[(e["amount"], e["effective_from"]) for e in limit["history"]]
            for limit in listed["items"]]  # fmt: skip


async def test_a_mandate_of_a_creditor_without_a_limit_is_kept_but_moves_no_grade_and_no_limit(
    uw: httpx.AsyncClient,
) -> None:
    insured = await make_policy(uw)
    buyer = await make_buyer(uw, indicators=WEAK)
    assert buyer["grade"] == 7
    assert (await request_limit(uw, insured, buyer["id"], "50000"))["status"] == "approved"
    before = await limits_of(uw, insured)
    stranger = unique("ph")

    answers = [await signal(uw, buyer["id"], kind, creditor_id=stranger, case_id="case-1")
               for kind in ("payment_delay", "collection_legal")]  # fmt: skip

    for answer in answers:
        assert answer["weighed"] is False
        assert answer["unweighed_reason"]["code"] == "creditor_without_stake"
        assert D(answer["points"]) == D(0)
        assert (answer["grade_before"], answer["grade"]) == (7, 7)
        assert answer["limit_changes"] == []
    now = await buyer_now(uw, buyer["id"])
    assert now["grade"] == 7
    assert not [f for f in now["grade_factors"] if f["factor"] == "signals"]
    assert await limits_of(uw, insured) == before
    # Kept, and read back as recorded: not weighed.
    listed = ok(await uw.get(f"/v1/buyers/{buyer['id']}/signals", headers=UW), 200)["items"]
    assert [(s["kind"], s["weighed"]) for s in listed] == [
        ("collection_legal", False), ("payment_delay", False)]  # fmt: skip
    stored = ok(await uw.get(f"/v1/buyers/{buyer['id']}/signals/{answers[0]['id']}",
                             headers=UW), 200)  # fmt: skip
    assert stored["weighed"] is False
    assert stored["unweighed_reason"] == answers[0]["unweighed_reason"]
    # An underwriter's own signal on the buyer weighs as before, counted without the stranger's.
    judged = await signal(uw, buyer["id"], "court_judgment")
    assert judged["weighed"] is True and judged["unweighed_reason"] is None
    assert (judged["grade_before"], judged["grade"]) == (7, 8)
    assert len(judged["limit_changes"]) == 1


async def test_the_same_mandate_of_a_creditor_holding_a_limit_lowers_the_grade(
    uw: httpx.AsyncClient,
) -> None:
    insured = await make_policy(uw)
    creditor = await make_policy(uw)
    buyer = await make_buyer(uw, indicators=WEAK)
    await request_limit(uw, insured, buyer["id"], "50000")
    await request_limit(uw, creditor, buyer["id"], "10000")

    answer = await signal(uw, buyer["id"], "payment_delay",
                          creditor_id=creditor["policyholder_id"], case_id="case-1")  # fmt: skip

    assert answer["weighed"] is True and answer["unweighed_reason"] is None
    assert D(answer["points"]) == D(1) and (answer["grade_before"], answer["grade"]) == (7, 8)
    assert {c["policy_id"] for c in answer["limit_changes"]} == {insured["id"], creditor["id"]}


async def test_a_limit_recorded_by_an_underwriter_is_a_stake_and_anothers_limit_is_not(
    uw: httpx.AsyncClient,
) -> None:
    holder = await make_policy(uw)
    buyer, elsewhere = await make_buyer(uw), await make_buyer(uw)
    ok(await uw.post(f"/v1/policies/{holder['id']}/limits", headers=UW, json={
        "buyer_id": buyer["id"], "amount": money("20000"), "effective_from": "2027-01-01",
        "payment_terms_days": 90, "reason": "book migrated"}), 201)  # fmt: skip
    creditor = holder["policyholder_id"]

    on_its_buyer = await signal(uw, buyer["id"], "payment_delay", creditor_id=creditor)
    on_another = await signal(uw, elsewhere["id"], "payment_delay", creditor_id=creditor)

    assert (on_its_buyer["weighed"], D(on_its_buyer["points"])) == (True, D(1))
    assert on_its_buyer["grade"] == buyer["grade"] + 1
    assert (on_another["weighed"], D(on_another["points"])) == (False, D(0))
    assert (await buyer_now(uw, elsewhere["id"]))["grade"] == elsewhere["grade"]


async def test_a_case_paid_in_full_for_a_creditor_without_a_stake_does_not_raise_the_grade(
    uw: httpx.AsyncClient,
) -> None:
    creditor = await make_policy(uw)
    buyer = await make_buyer(uw)
    await request_limit(uw, creditor, buyer["id"], "10000")
    await signal(uw, buyer["id"], "payment_delay", creditor_id=creditor["policyholder_id"])

    paid = await signal(uw, buyer["id"], "collection_paid", creditor_id=unique("ph"))

    assert (paid["weighed"], D(paid["points"])) == (False, D(0))
    assert paid["grade"] == paid["grade_before"] == buyer["grade"] + 1
    assert (await buyer_now(uw, buyer["id"]))["grade"] == buyer["grade"] + 1


async def test_the_whole_book_regrade_skips_unweighed_signals_as_the_one_buyer_path_does(
    uw: httpx.AsyncClient,
) -> None:
    """Per buyer of a country of its own: a creditor's delay with a stake and a stranger's
    mandate, legal step and payment in full; the same delay alone; the stranger's signals alone.
    After the country's re-grade each has the grade and factors a re-grade of that buyer alone
    gives, and the stranger's signals weigh nothing in either."""
    country = "BZ"  # its level moves once in this run, so its book is re-graded
    creditor = await make_policy(uw)
    stranger = unique("ph")
    buyers = [await make_buyer(uw, country=country) for _ in range(3)]
    for buyer in buyers[:2]:
        await request_limit(uw, creditor, buyer["id"], "10000")
        await signal(uw, buyer["id"], "payment_delay", creditor_id=creditor["policyholder_id"])
    for buyer in (buyers[0], buyers[2]):
        for kind in ("payment_delay", "collection_legal", "collection_paid"):
            await signal(uw, buyer["id"], kind, creditor_id=stranger)

    risk = ok(await uw.put(f"/v1/country-risks/{country}", headers=UW, json={"level": 3}), 200)

    assert risk["buyers_regraded"] == len(buyers)
    by_book = [await buyer_now(uw, b["id"]) for b in buyers]
    signals = [next((f["value"] for f in b["grade_factors"] if f["factor"] == "signals"), None)
               for b in by_book]  # fmt: skip
    assert signals == ["1", "1", None]
    assert by_book[0]["grade_factors"] == by_book[1]["grade_factors"]
    assert by_book[2]["grade"] == buyers[2]["grade"] + 1  # level 3: +1, nothing of the stranger
    for buyer in by_book:  # the same indicators confirmed again: the buyer re-graded alone
        alone = ok(await uw.post(f"/v1/buyers/{buyer['id']}/indicators", headers=UW,
                                 json=buyer["indicators"]), 200)  # fmt: skip
        assert (alone["grade"], alone["grade_factors"]) == (buyer["grade"],
                                                            buyer["grade_factors"])  # fmt: skip


async def test_a_limit_request_not_granted_is_no_stake(uw: httpx.AsyncClient) -> None:
    """A request is the policyholder's own word: referred (or refused), it grants no limit, and a
    mandate of its policyholder weighs nothing."""
    insured = await make_policy(uw)
    creditor = await make_policy(uw)
    buyer = await make_buyer(uw, indicators=WEAK)
    await request_limit(uw, insured, buyer["id"], "50000")
    asked = await request_limit(uw, creditor, buyer["id"], "90000000")
    assert asked["status"] != "approved"

    answer = await signal(uw, buyer["id"], "payment_delay",
                          creditor_id=creditor["policyholder_id"], case_id="case-2")  # fmt: skip

    assert (
        answer["weighed"] is False
        and answer["unweighed_reason"]["code"] == "creditor_without_stake"
    )
    assert (answer["grade_before"], answer["grade"]) == (7, 7) and answer["limit_changes"] == []


async def test_a_refused_limit_request_is_no_stake(uw: httpx.AsyncClient) -> None:
    """A refusal, by the engine or by an underwriter, is a decision on the pair (it ends the
    discretionary limit there) but grants nothing: a request any policyholder may make, refused
    at once (terms over the policy's maximum), must not let its mandates weigh on the buyer."""
    insured = await make_policy(uw)
    buyer = await make_buyer(uw, indicators=WEAK)
    await request_limit(uw, insured, buyer["id"], "50000")
    by_engine, by_underwriter = await make_policy(uw), await make_policy(uw)
    refused = await request_limit(uw, by_engine, buyer["id"], "10000", terms=365)
    assert refused["status"] == "refused"
    referred = await request_limit(uw, by_underwriter, buyer["id"], "90000000")
    decided = ok(await uw.post(f"/v1/limit-requests/{referred['id']}/decision", headers=UW,
                               json={"decision": "refuse", "reason": "no"}), 200)  # fmt: skip
    assert decided["status"] == "refused"

    answers = [await signal(uw, buyer["id"], "payment_delay",
                            creditor_id=policy["policyholder_id"], case_id=unique("case"))
               for policy in (by_engine, by_underwriter)]  # fmt: skip

    for answer in answers:
        assert answer["weighed"] is False
        assert answer["unweighed_reason"]["code"] == "creditor_without_stake"
        assert (answer["grade_before"], answer["grade"]) == (7, 7)
        assert answer["limit_changes"] == []
    assert (await buyer_now(uw, buyer["id"]))["grade"] == 7


@pytest.mark.parametrize("field", ["creditor_id", "case_id"])
async def test_an_underwriter_may_not_speak_for_collections(
    uw: httpx.AsyncClient, field: str
) -> None:
    """A creditor's or a case's delay counts once per episode: only collections names them."""
    buyer = await make_buyer(uw)
    body = {"kind": "payment_delay", "observed_on": TODAY.isoformat(), field: "x-1"}
    refused = await uw.post(f"/v1/buyers/{buyer['id']}/signals", headers=UW, json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["loc"] == ["body", field]
    assert (await buyer_now(uw, buyer["id"]))["grade"] == buyer["grade"]
