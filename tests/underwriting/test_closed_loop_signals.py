"""The closed loop in underwriting: what a paid claim, a protracted default and a collection case's
payment behaviour weigh in the grade, as settings with domain.md's defaults, and how a buyer's grade
moves when they arrive."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from typing import Any, get_args

import httpx
import pytest
from pydantic import ValidationError

from services.underwriting import rules
from services.underwriting.config import UnderwritingSettings
from shared.contracts import UNDERWRITER_SIGNAL_KINDS, SignalKind
from tests.builders import make_buyer, make_policy, ok
from tests.conftest import auth

UW = auth("underwriter")
# The closed loop's kinds come from claims and collections, with a service token.
SERVICE = auth("service")
TODAY = dt.date(2027, 1, 10)
LOOP_KINDS = ("claim_paid", "protracted_default", "collection_legal", "collection_paid")


def test_every_signal_kind_has_a_weight_and_the_closed_loop_ones_have_theirs() -> None:
    assert set(get_args(SignalKind)) == set(rules.DEFAULT_SIGNAL_POINTS)
    assert [rules.signal_points(kind) for kind in LOOP_KINDS] == [D(2), D(2), D(1), D(-1)]


def test_a_case_paid_in_full_offsets_the_payment_delay_its_mandate_signalled() -> None:
    opened = [("payment_delay", TODAY - dt.timedelta(days=30))]
    paid = [*opened, ("collection_paid", TODAY)]
    assert rules.recent_signal_points(opened, today=TODAY) == D(1)
    assert rules.recent_signal_points(paid, today=TODAY) == D(0)


def test_a_favourable_signal_never_makes_a_buyer_better_than_its_record() -> None:
    assert rules.recent_signal_points([("collection_paid", TODAY)], today=TODAY) == D(0)
    clean = rules.grade_buyer(rules.Indicators(), country_risk_level=1)
    assert rules.grade_on(rules.Indicators(), day=TODAY, country_risk_level=1,
                          signals=[("collection_paid", TODAY)],
                          insolvent_since=None).grade == clean.grade  # fmt: skip


def test_a_paid_protracted_default_and_a_legal_step_add_their_points_to_the_grade() -> None:
    signals = [("protracted_default", TODAY), ("collection_legal", TODAY - dt.timedelta(days=10))]
    before = rules.grade_on(rules.Indicators(), day=TODAY, country_risk_level=1, signals=[],
                            insolvent_since=None)  # fmt: skip
    after = rules.grade_on(rules.Indicators(), day=TODAY, country_risk_level=1, signals=signals,
                           insolvent_since=None)  # fmt: skip
    assert after.points - before.points == D(3)
    assert ("signals", "3") in [(f.factor, f.value) for f in after.factors]


def test_a_paid_claim_observed_after_the_day_graded_does_not_count_on_it() -> None:
    later = rules.grade_on(rules.Indicators(), day=TODAY, country_risk_level=1,
                           signals=[("claim_paid", TODAY + dt.timedelta(days=1))],
                           insolvent_since=None)  # fmt: skip
    assert "signals" not in [f.factor for f in later.factors]


def test_the_weights_are_settings_whose_overrides_leave_the_other_kinds_at_their_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TCI_UW_SIGNAL_POINTS", '{"claim_paid": "3.5", "collection_paid": "0"}')
    weights = UnderwritingSettings().signal_weights()
    assert weights["claim_paid"] == D("3.5") and weights["collection_paid"] == D(0)
    assert weights["protracted_default"] == D(2) and weights["court_judgment"] == D(1)
    assert UnderwritingSettings(_env_file=None).signal_memory_days == 365  # type: ignore[call-arg]


def test_a_weight_for_a_kind_that_does_not_exist_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TCI_UW_SIGNAL_POINTS", '{"claim_payd": "2"}')
    with pytest.raises(ValidationError, match="claim_payd"):
        UnderwritingSettings()


# ---------------------------------------------------------------- over the API, in-process


async def signal(uw: httpx.AsyncClient, buyer_id: str, kind: str, **extra: Any) -> dict[str, Any]:
    body = {"kind": kind, "observed_on": dt.date.today().isoformat(), **extra}
    sender = UW if kind in UNDERWRITER_SIGNAL_KINDS else SERVICE
    return ok(await uw.post(f"/v1/buyers/{buyer_id}/signals", headers=sender, json=body), 201)


async def test_a_paid_claim_moves_the_buyers_grade_by_its_weight(uw: httpx.AsyncClient) -> None:
    policy = await make_policy(uw)
    buyer = await make_buyer(uw)
    recorded = await signal(uw, buyer["id"], "claim_paid", policy_id=policy["id"],
                            details="insolvency claim clm-1 paid")  # fmt: skip
    assert D(recorded["points"]) == D(2)
    assert (recorded["grade_before"], recorded["grade"]) == (buyer["grade"], buyer["grade"] + 2)


async def test_a_case_paid_in_full_brings_the_grade_back_after_its_legal_step(
    uw: httpx.AsyncClient,
) -> None:
    buyer = await make_buyer(uw)
    grade = buyer["grade"]
    assert (await signal(uw, buyer["id"], "payment_delay"))["grade"] == grade + 1
    assert (await signal(uw, buyer["id"], "collection_legal"))["grade"] == grade + 2
    paid = await signal(uw, buyer["id"], "collection_paid")
    assert D(paid["points"]) == D(-1) and paid["grade"] == grade + 1


async def test_a_closed_loop_signal_that_reaches_grade_8_halves_the_limits(
    uw: httpx.AsyncClient,
) -> None:
    policy = await make_policy(uw)
    buyer = await make_buyer(uw, indicators={})  # unknown indicators: grade 5 in a level-2 country
    ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": buyer["id"], "amount": {"amount": "100000", "currency": "EUR"},
        "effective_from": "2026-01-01", "payment_terms_days": 90, "reason": "migrated"}), 201)  # fmt: skip
    await signal(uw, buyer["id"], "collection_legal")
    paid = await signal(uw, buyer["id"], "protracted_default", policy_id=policy["id"])
    assert paid["grade"] >= 8
    [change] = paid["limit_changes"]
    assert change["new_amount"]["amount"] == "50000.00" and "halved" in change["reason"]


async def test_the_weight_set_for_a_kind_is_what_its_signal_adds_to_the_grade(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TCI_UW_SIGNAL_POINTS", '{"collection_legal": "3"}')
    uw: httpx.AsyncClient = await api.open("underwriting")
    buyer = await make_buyer(uw)
    recorded = await signal(uw, buyer["id"], "collection_legal")
    assert D(recorded["points"]) == D(3) and recorded["grade"] == buyer["grade"] + 3


async def test_an_underwriter_sends_only_the_kinds_of_api_md_a_service_also_the_closed_loops(
    uw: httpx.AsyncClient,
) -> None:
    """api.md lists seven kinds an underwriter may send (another: 422); the closed loop's are the
    services' own account of a claim paid or a case at law or paid in full: refused from an
    underwriter, naming the kinds it may send, with nothing recorded and the grade unmoved."""
    policy = await make_policy(uw)
    buyer = await make_buyer(uw)
    path = f"/v1/buyers/{buyer['id']}/signals"
    on = dt.date.today().isoformat()
    for kind in LOOP_KINDS:
        body = {"kind": kind, "observed_on": on, "policy_id": policy["id"]}
        refused = await uw.post(path, headers=UW, json=body)
        assert refused.status_code == 422, refused.text
        problem = refused.json()
        assert problem["type"] == "validation"
        assert [e["loc"] for e in problem["errors"]] == [["body", "kind"]]
        assert kind in problem["detail"]
        assert all(allowed in problem["detail"] for allowed in UNDERWRITER_SIGNAL_KINDS)
    assert ok(await uw.get(path, headers=UW), 200)["items"] == []
    assert ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200)["grade"] == buyer["grade"]
    assert set(UNDERWRITER_SIGNAL_KINDS) | set(LOOP_KINDS) == set(get_args(SignalKind))
    for kind in UNDERWRITER_SIGNAL_KINDS:
        body = {"kind": kind, "observed_on": on, "policy_id": policy["id"]}
        ok(await uw.post(path, headers=UW, json=body), 201)
    paid = ok(await uw.post(path, headers=SERVICE, json={
        "kind": "claim_paid", "observed_on": on, "policy_id": policy["id"]}), 201)  # fmt: skip
    assert D(paid["points"]) == D(2)
