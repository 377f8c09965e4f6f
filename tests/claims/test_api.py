"""The claims API with underwriting and collections in-process: notifications, the filing window,
documents, disputes, assessment with coverage from underwriting, decision, payment and the
subrogation case."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.claims.models import outbox
from services.claims.service import lapse_overdue, record_delivery
from shared.db import get_session
from shared.http import ServiceClient
from shared.outbox import deliver
from shared.peers import get_peers
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.builders import check, declared_on, make_buyer, make_policy, money, ok
from tests.conftest import auth, token

TODAY = "2027-06-10"
HANDLER = auth("claims_handler")
UW = auth("underwriter")


@pytest.fixture
async def apis(api: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, httpx.AsyncClient]:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    monkeypatch.setenv("TCI_CLAIMS_MAX_DOCUMENT_BYTES", "2000")
    return {"claims": await api.open("claims"), "underwriting": api("underwriting"),
            "collections": api("collections")}  # fmt: skip


async def insured(uw: httpx.AsyncClient, **policy: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A policy (deductible 5,000) and a buyer with a 100,000 limit on it since 1 January."""
    terms = {"start_date": "2027-01-01", "end_date": "2027-12-31", "deductible": money("5000"),
             **policy}  # fmt: skip
    p = await make_policy(uw, **terms)
    buyer = await make_buyer(uw)
    ok(await uw.post(f"/v1/policies/{p['id']}/limits", headers=UW, json={
        "buyer_id": buyer["id"], "amount": money("100000"), "effective_from": "2027-01-01",
        "payment_terms_days": 90, "reason": "book migrated from the previous system"}), 201)  # fmt: skip
    return p, buyer


async def another_buyer(uw: httpx.AsyncClient, policy: dict[str, Any]) -> dict[str, Any]:
    """Another buyer with a 100,000 limit of its own on the policy since 1 January (a buyer's
    limit is used once, whatever the claims on it: two claims on the caps name two buyers)."""
    buyer = await make_buyer(uw)
    ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": buyer["id"], "amount": money("100000"), "effective_from": "2027-01-01",
        "payment_terms_days": 90, "reason": "book migrated from the previous system"}), 201)  # fmt: skip
    return buyer


async def filed_claim(
    claims: httpx.AsyncClient, policy: dict[str, Any], buyer: dict[str, Any],
    holder: dict[str, str], **filing: Any,
) -> dict[str, Any]:  # fmt: skip
    """An insolvency claim on `INVOICES` (event on 1 June 2027), filed by the policyholder: 201."""
    body = {"policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
            "event_date": "2027-06-01", "invoices": INVOICES, **filing}  # fmt: skip
    return ok(await claims.post("/v1/claims", headers=holder, json=body), 201)  # type: ignore[no-any-return]


def invoice(number: str, amount: str, shipped: str, due: str) -> dict[str, Any]:
    return {"number": number, "amount": money(amount), "shipment_date": shipped, "due_date": due}


INVOICES = [invoice("INV-1", "80000", "2027-03-01", "2027-04-30"),
            invoice("INV-2", "40000", "2027-03-20", "2027-05-19")]  # fmt: skip


async def upload(claims: httpx.AsyncClient, claim_id: str, kind: str, holder: dict[str, str],
                 content: bytes = b"%PDF-1.4 scanned", content_type: str = "application/pdf",
                 ) -> httpx.Response:  # fmt: skip
    return await claims.post(f"/v1/claims/{claim_id}/documents", headers=holder,
                             data={"kind": kind},
                             files={"file": (f"{kind}.pdf", content, content_type)})  # fmt: skip


async def complete(claims: httpx.AsyncClient, claim: dict[str, Any], holder: dict[str, str]
                   ) -> dict[str, Any]:  # fmt: skip
    for kind in claim["missing_documents"]:
        stored = ok(await upload(claims, claim["id"], kind, holder), 201)
        assert stored["kind"] == kind and kind not in stored["missing_documents"]
    assert stored["claim_status"] in ("under_review", "on_hold") and stored["decision_due"]
    return ok(await claims.get(f"/v1/claims/{claim['id']}", headers=holder), 200)


async def test_an_insolvency_claim_from_notification_to_the_subrogation_case(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw, collections = apis["claims"], apis["underwriting"], apis["collections"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])

    notified = ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "kind": "overdue",
        "invoices": INVOICES}), 201)  # fmt: skip
    assert [i["late"] for i in notified["invoices"]] == [False, False]
    assert notified["invoices"][0]["notification_deadline"] == "2027-06-29"
    # Underwriting heard of it: shipments after today are stopped on that policy.
    stopped = ok(await check(uw, policy, buyer["id"], "1000", "2027-06-11", "2027-07-11"), 200)
    assert "stop_shipment" in stopped["reasons"]

    claim = await filed_claim(claims, policy, buyer, holder)
    assert claim["status"] == "documents_pending" and claim["filing_deadline"] == "2027-07-01"
    # The insolvency is the policyholder's statement until the claim is approved on its proof:
    # the buyer's grade and limits stay as they were.
    assert ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200)["grade"] < 10
    stopped = ok(await check(uw, policy, buyer["id"], "1000", "2027-06-11", "2027-07-11"), 200)
    assert "limit_withdrawn" not in stopped["reasons"]
    assert claim["missing_documents"] == ["trade_contract", "proof_of_delivery", "invoice",
                                          "ageing_report", "statement_of_account",
                                          "insolvency_proof"]  # fmt: skip
    assert claim["documents_due"] == "2027-07-10"
    too_soon = await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER)
    assert too_soon.status_code == 422 and too_soon.json()["type"] == "documents-missing"

    claim = await complete(claims, claim, holder)
    assert claim["status"] == "under_review" and claim["missing_documents"] == []
    assert claim["decision_due"] == "2027-07-01"  # 15 working days on the CN calendar

    assessed = ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)
    assert assessed["status"] == "assessed"
    steps = [(s["name"], s["amount"]["amount"]) for s in assessed["assessment"]["steps"]]
    assert steps == [("reductions", "0.00"), ("insured_loss", "100000.00"),
                     ("indemnity_percentage", "90000.00"), ("deductible_and_threshold", "85000.00"),
                     ("caps", "85000.00"), ("rounding", "85000.00")]  # fmt: skip
    assert assessed["assessment"]["steps"][0]["note"] == (
        "credit notes, set-offs and recoveries of 0.00 applied oldest first; unpaid 120000.00"
    )
    assert assessed["indemnity"] == money("85000.00")
    lines = {i["number"]: i for i in assessed["assessment"]["invoices"]}
    assert lines["INV-2"]["covered"] == money("20000.00") and lines["INV-2"]["exclusions"] == []

    approve = {"decision": "approve", "reason": "file complete, cover confirmed"}
    ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER, json=approve), 200)
    # Approved, the insolvency reached underwriting before the answer: the buyer is graded 10,
    # its limit withdrawn from tomorrow, while the shipments already made keep their cover.
    assert ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200)["grade"] == 10
    withdrawn = ok(await check(uw, policy, buyer["id"], "1000", "2027-06-11", "2027-07-11"), 200)
    assert "limit_withdrawn" in withdrawn["reasons"]
    twice = await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER, json=approve)
    assert twice.status_code == 409 and twice.json()["type"] == "already-decided"

    keyed = {**HANDLER, "Idempotency-Key": f"pay-{claim['id']}"}
    paid = ok(await claims.post(f"/v1/claims/{claim['id']}/payment", headers=keyed), 200)
    assert paid["status"] == "paid" and paid["paid_on"] == TODAY and paid["collection_case_id"]
    # A replay answers what the first answer said, the case its delivery opened included.
    replayed = await claims.post(f"/v1/claims/{claim['id']}/payment", headers=keyed)
    assert replayed.headers.get("idempotent-replayed") == "true"
    assert ok(replayed, 200) == paid
    again = await claims.post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER)
    assert again.status_code == 409 and again.json()["type"] == "already-paid"

    case = ok(await collections.get(f"/v1/cases/{paid['collection_case_id']}",
                                    headers=auth("collector")), 200)  # fmt: skip
    assert case["claim_id"] == claim["id"] and case["insurer_share_pct"] == "70.8333"
    assert case["outstanding"] == money("120000.00") and case["ladder"] == "reminder_15_30_45"
    listed = ok(await collections.get(f"/v1/cases?claim_id={claim['id']}",
                                      headers=auth("collector")), 200)  # fmt: skip
    assert len(listed["items"]) == 1  # opened exactly once


async def test_a_rejected_insolvency_claim_never_reaches_the_buyers_grade(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """What a policyholder states of its buyer moves the grade only once confirmed: an insolvency
    claim rejected leaves the buyer's grade and every limit on it (another policyholder's too)."""
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    other = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31")
    ok(await uw.post(f"/v1/policies/{other['id']}/limits", headers=UW, json={
        "buyer_id": buyer["id"], "amount": money("50000"), "effective_from": "2027-01-01",
        "payment_terms_days": 90, "reason": "book migrated from the previous system"}), 201)  # fmt: skip
    before = ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200)["grade"]
    holder = auth("policyholder", policy["policyholder_id"])
    claim = await complete(claims, await filed_claim(claims, policy, buyer, holder), holder)
    ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)
    rejected = ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                                    json={"decision": "reject", "reason": "no insolvency "
                                          "proceedings found in the register"}), 200)  # fmt: skip
    assert rejected["status"] == "rejected"
    assert ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200)["grade"] == before
    for insured_by in (policy, other):
        covered = ok(await check(uw, insured_by, buyer["id"], "1000", "2027-06-11", "2027-07-11"),
                     200)  # fmt: skip
        assert "limit_withdrawn" not in covered["reasons"], covered


async def test_the_filing_window_refuses_late_and_early_claims_with_their_dates(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    base = {"policy_id": policy["id"], "buyer_id": buyer["id"], "invoices": INVOICES[:1]}
    late = await claims.post("/v1/claims", headers=holder, json={
        **base, "cause": "insolvency", "event_date": "2027-05-10"})  # fmt: skip
    assert late.status_code == 422 and late.json()["type"] == "claim-time-barred"
    assert late.json()["filing_deadline"] == "2027-06-09"
    on_the_day = await claims.post("/v1/claims", headers=holder, json={
        **base, "cause": "insolvency", "event_date": "2027-05-11"})  # fmt: skip
    assert on_the_day.status_code == 201
    twice = await claims.post("/v1/claims", headers=holder, json={
        **base, "cause": "insolvency", "event_date": "2027-05-12"})  # fmt: skip
    assert twice.status_code == 409 and twice.json()["type"] == "invoice-already-claimed"
    early = await claims.post("/v1/claims", headers=holder, json={
        **base, "cause": "protracted_default"})  # fmt: skip
    assert early.status_code == 422 and early.json()["type"] == "claim-too-early"
    assert early.json()["first_filing_date"] == "2027-10-27"  # 30 April + 180
    future = await claims.post("/v1/claims", headers=holder, json={
        **base, "cause": "insolvency", "event_date": "2027-06-11"})  # fmt: skip
    assert future.status_code == 422 and future.json()["errors"][0]["loc"] == ["body", "event_date"]
    political = await claims.post("/v1/claims", headers=holder, json={
        **base, "cause": "political", "event_date": "2027-06-01"})  # fmt: skip
    assert political.status_code == 422 and political.json()["type"] == "political-risk-not-covered"
    stranger = auth("policyholder", "someone-else")
    foreign = await claims.post("/v1/claims", headers=stranger, json={
        **base, "cause": "insolvency", "event_date": "2027-06-01"})  # fmt: skip
    assert foreign.status_code == 404
    other_currency = await claims.post("/v1/claims", headers=holder, json={
        **base, "cause": "insolvency", "event_date": "2027-06-01",
        "invoices": [invoice("X", "1", "2027-03-01", "2027-04-30") | {"amount": money("1", "USD")}]})  # fmt: skip
    assert (
        other_currency.status_code == 422 and other_currency.json()["type"] == "currency-mismatch"
    )


async def test_late_notification_and_a_dispute_settled_for_the_buyer_exclude_invoices(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    old = invoice("OLD", "30000", "2027-01-20", "2027-03-01")  # notified 101 days after due
    notified = ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "kind": "overdue",
        "invoices": [old, *INVOICES]}), 201)  # fmt: skip
    assert [i["late"] for i in notified["invoices"]] == [True, False, False]
    claim = ok(await claims.post("/v1/claims", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
        "event_date": "2027-06-01", "invoices": [old, *INVOICES],
        "credit_notes": money("10000")}), 201)  # fmt: skip
    claim = await complete(claims, claim, holder)

    dispute = ok(await claims.post(f"/v1/claims/{claim['id']}/disputes", headers=holder, json={
        "raised_on": "2027-06-05", "description": "quality complaint",
        "invoice_numbers": ["INV-2"]}), 201)  # fmt: skip
    assert dispute["claim_status"] == "on_hold"
    held = await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER)
    assert held.status_code == 409 and held.json()["type"] == "claim-on-hold"
    # Approving it is refused for the same rule (the dispute), not as "not assessed".
    approving = await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                                  json={"decision": "approve", "reason": "proof checked"})  # fmt: skip
    assert approving.status_code == 409 and approving.json()["type"] == "claim-on-hold"
    unknown = await claims.post(f"/v1/claims/{claim['id']}/disputes", headers=holder, json={
        "raised_on": "2027-06-05", "description": "x", "invoice_numbers": ["NOPE"]})  # fmt: skip
    assert unknown.status_code == 422
    # INV-2 shipped on 2027-03-20: a dispute over its goods is not raised before they left.
    early = await claims.post(f"/v1/claims/{claim['id']}/disputes", headers=holder, json={
        "raised_on": "2027-03-19", "description": "x", "invoice_numbers": ["INV-2"]})  # fmt: skip
    assert early.status_code == 422 and early.json()["errors"][0]["loc"] == ["body", "raised_on"]
    assert "2027-03-20" in early.json()["detail"]
    resolved = ok(await claims.post(
        f"/v1/claims/{claim['id']}/disputes/{dispute['id']}/resolution", headers=HANDLER,
        json={"outcome": "buyer"}), 200)  # fmt: skip
    assert resolved["claim_status"] == "under_review"

    assessed = ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)
    lines = {i["number"]: i for i in assessed["assessment"]["invoices"]}
    assert lines["OLD"]["exclusions"] == ["notified_late"]
    assert lines["OLD"]["reduction"] == money("10000.00")  # the oldest takes the credit note
    assert lines["INV-2"]["exclusions"] == ["dispute_settled_for_buyer"]
    assert lines["INV-1"]["covered"] == money("80000.00")
    assert assessed["indemnity"] == money("67000.00")  # 80,000 × 90% − 5,000

    # Paid, the debt passes to collections: the buyer was found not to owe INV-2, so the case
    # does not collect it (nor count it in the loss the insurer's share is of); OLD, notified
    # late, is still owed by the buyer (its recovery is the policyholder's by the share).
    ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                         json={"decision": "approve", "reason": "ok"}), 200)  # fmt: skip
    paid = ok(await claims.post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER), 200)
    case = ok(await apis["collections"].get(f"/v1/cases/{paid['collection_case_id']}",
                                            headers=auth("collector")), 200)  # fmt: skip
    assert sorted(i["number"] for i in case["invoices"]) == ["INV-1", "OLD"]
    assert case["outstanding"] == money("100000.00")  # OLD's 20,000 left unpaid + INV-1
    assert case["insurer_share_pct"] == "67"  # 67,000 of the 100,000 the buyer owes


async def test_a_dispute_settled_for_the_buyer_still_excludes_its_invoice_claimed_again(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """INV-2 disputed and settled for the buyer under a claim then rejected: claimed again, it
    stays excluded (the buyer was found not to owe it); INV-1 alone is indemnified."""
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    filing = {"policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
              "event_date": "2027-06-01", "invoices": INVOICES}  # fmt: skip
    first = await complete(claims, ok(await claims.post("/v1/claims", headers=holder,
                                                        json=filing), 201), holder)  # fmt: skip
    dispute = ok(await claims.post(f"/v1/claims/{first['id']}/disputes", headers=holder, json={
        "raised_on": "2027-06-05", "description": "quality complaint",
        "invoice_numbers": ["INV-2"]}), 201)  # fmt: skip
    ok(await claims.post(f"/v1/claims/{first['id']}/disputes/{dispute['id']}/resolution",
                         headers=HANDLER, json={"outcome": "buyer"}), 200)  # fmt: skip
    ok(await claims.post(f"/v1/claims/{first['id']}/decision", headers=HANDLER,
                         json={"decision": "reject", "reason": "filed again"}), 200)  # fmt: skip
    again = await complete(claims, ok(await claims.post("/v1/claims", headers=holder,
                                                        json=filing), 201), holder)  # fmt: skip
    assessed = ok(await claims.post(f"/v1/claims/{again['id']}/assessment", headers=HANDLER), 200)
    lines = {i["number"]: i for i in assessed["assessment"]["invoices"]}
    assert lines["INV-2"]["exclusions"] == ["dispute_settled_for_buyer"]
    assert assessed["indemnity"] == money("67000.00")  # 80,000 × 90% − 5,000


async def test_a_dispute_shows_who_raised_and_settled_it_and_is_settled_once(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = {"Authorization": "Bearer " + token("policyholder", policy["policyholder_id"],
                                                 subject="Ms Holder")}  # fmt: skip
    handler = {"Authorization": "Bearer " + token("claims_handler", subject="Wang Fang")}
    claim = await filed_claim(claims, policy, buyer, holder)
    claim = await complete(claims, claim, holder)
    tomorrow = (dt.date.fromisoformat(TODAY) + dt.timedelta(days=1)).isoformat()
    early = await claims.post(f"/v1/claims/{claim['id']}/disputes", headers=holder, json={
        "raised_on": tomorrow, "description": "not yet", "invoice_numbers": ["INV-2"]})  # fmt: skip
    assert early.status_code == 422, early.text
    assert [e["loc"] for e in early.json()["errors"]] == [["body", "raised_on"]]
    raised = ok(await claims.post(f"/v1/claims/{claim['id']}/disputes", headers=holder, json={
        "raised_on": "2027-06-05", "description": "short delivery",
        "invoice_numbers": ["INV-2"]}), 201)  # fmt: skip
    assert (raised["raised_by"], raised["resolved_by"], raised["note"]) == ("Ms Holder", None, None)
    path = f"/v1/claims/{claim['id']}/disputes/{raised['id']}"
    for day in (tomorrow, "2027-06-04"):  # not yet come; before the dispute was raised
        refused = await claims.post(f"{path}/resolution", headers=handler,
                                    json={"outcome": "buyer", "resolved_on": day})  # fmt: skip
        assert refused.status_code == 422, refused.text
        assert [e["loc"] for e in refused.json()["errors"]] == [["body", "resolved_on"]]
    settled = ok(await claims.post(f"{path}/resolution", headers=handler, json={
        "outcome": "policyholder", "note": "the carrier's receipt shows full delivery"}), 200)  # fmt: skip
    assert settled["outcome"] == "policyholder" and settled["resolved_on"] == TODAY
    assert (settled["resolved_by"], settled["note"]) == (
        "Wang Fang",
        "the carrier's receipt shows full delivery",
    )
    again = await claims.post(f"{path}/resolution", headers=handler, json={"outcome": "buyer"})
    assert again.status_code == 409 and again.json()["type"] == "already-decided"
    [listed] = ok(await claims.get(f"/v1/claims/{claim['id']}", headers=holder), 200)["disputes"]
    assert listed == ok(await claims.get(path, headers=handler), 200)
    assert (listed["raised_by"], listed["outcome"], listed["claim_status"]) == (
        "Ms Holder",
        "policyholder",
        "under_review",
    )


async def test_documents_types_sizes_owners_and_lapse(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    claim = await filed_claim(claims, policy, buyer, holder)
    exe = await upload(claims, claim["id"], "invoice", holder, b"MZ", "application/x-msdownload")
    assert exe.status_code == 415
    disguised = await upload(
        claims, claim["id"], "invoice", holder, b"MZ\x90\x00", "application/pdf"
    )
    assert disguised.status_code == 415 and "not application/pdf" in disguised.json()["detail"]
    big = await upload(claims, claim["id"], "invoice", holder, b"x" * 2001)
    assert big.status_code == 413
    bad_kind = await upload(claims, claim["id"], "selfie", holder)
    assert bad_kind.status_code == 422
    stranger = auth("policyholder", "someone-else")
    assert (await claims.get(f"/v1/claims/{claim['id']}", headers=stranger)).status_code == 404
    assert (await upload(claims, claim["id"], "invoice", stranger)).status_code == 404
    uploaded = await upload(claims, claim["id"], "invoice", holder)
    stored = ok(uploaded, 201)
    assert stored["size"] == len(b"%PDF-1.4 scanned") and len(stored["sha256"]) == 64
    download = await claims.get(uploaded.headers["location"], headers=HANDLER)
    assert download.status_code == 200 and download.content == b"%PDF-1.4 scanned"
    assert download.headers["etag"] == f'"{stored["sha256"]}"'
    assert download.headers["content-type"] == "application/pdf"
    assert (await claims.get(uploaded.headers["location"], headers=stranger)).status_code == 404
    mine = ok(await claims.get("/v1/claims", headers=holder), 200)
    assert [c["id"] for c in mine["items"]] == [claim["id"]]
    assert ok(await claims.get("/v1/claims", headers=stranger), 200)["items"] == []

    # The grace period ends with documents still missing: the claim lapses.
    settings = claims._transport.app.state.settings  # type: ignore[attr-defined]
    settings.fixed_today = dt.date(2027, 7, 11)
    lapsed = ok(await claims.get(f"/v1/claims/{claim['id']}", headers=holder), 200)
    assert lapsed["status"] == "lapsed"
    refused = await upload(claims, claim["id"], "trade_contract", holder)
    assert refused.status_code == 422 and refused.json()["type"] == "claim-lapsed"
    session = claims._transport.app.dependency_overrides[get_session]  # type: ignore[attr-defined]
    async for s in session():
        assert await lapse_overdue(s, dt.date(2027, 7, 10)) == []  # the last day of grace
        assert claim["id"] in await lapse_overdue(s, dt.date(2027, 7, 11))
    recorded = ok(await claims.get("/v1/claims?status=lapsed", headers=holder), 200)
    assert [c["id"] for c in recorded["items"]] == [claim["id"]]


async def test_an_upload_with_a_kind_or_a_file_given_twice_is_refused_naming_it(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    claim = await filed_claim(claims, policy, buyer, holder)
    url = f"/v1/claims/{claim['id']}/documents"
    pdf = ("invoice.pdf", b"%PDF-1.4 scanned", "application/pdf")
    two_kinds = await claims.post(url, headers=holder, data={"kind": ["trade_contract", "invoice"]},
                                  files={"file": pdf})  # fmt: skip
    two_files = await claims.post(url, headers=holder, data={"kind": "invoice"},
                                  files=[("file", pdf), ("file", pdf)])  # fmt: skip
    for answer, part in ((two_kinds, "kind"), (two_files, "file")):
        assert answer.status_code == 422, answer.text
        assert [e["loc"] for e in answer.json()["errors"]] == [["body", part]]
    after = ok(await claims.get(f"/v1/claims/{claim['id']}", headers=holder), 200)
    assert after["documents"] == [] and "invoice" in after["missing_documents"]  # nothing stored


async def test_an_extension_beyond_the_maximum_and_a_repayment_plan(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    base = {"policy_id": policy["id"], "buyer_id": buyer["id"]}
    upcoming = invoice("UP", "5000", "2027-05-01", "2027-06-30")
    accepted = ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
        **base, "kind": "extension_request", "invoices": [upcoming],
        "new_due_date": "2027-08-29"}), 201)  # fmt: skip
    assert accepted["extension_accepted"] and not accepted["stop_shipment_signalled"]
    refused = await claims.post("/v1/overdue-notifications", headers=holder, json={
        **base, "kind": "extension_request", "invoices": [upcoming],
        "new_due_date": "2027-08-30"})  # fmt: skip
    assert refused.status_code == 422 and refused.json()["type"] == "extension-too-long"
    for earlier in ("2027-06-30", "2027-06-01"):  # not a move later: no extension at all
        backwards = await claims.post("/v1/overdue-notifications", headers=holder, json={
            **base, "kind": "extension_request", "invoices": [upcoming],
            "new_due_date": earlier})  # fmt: skip
        assert backwards.status_code == 422 and backwards.json()["type"] == "validation"
        assert backwards.json()["errors"][0]["loc"] == ["body", "new_due_date"]
    # Extended to 29 August: an extension stating the first due date again may not bring it back.
    back = await claims.post("/v1/overdue-notifications", headers=holder, json={
        **base, "kind": "extension_request", "invoices": [upcoming],
        "new_due_date": "2027-08-01"})  # fmt: skip
    assert back.status_code == 422 and "2027-08-29, the due date on record" in back.text
    not_due = await claims.post("/v1/overdue-notifications", headers=holder, json={
        **base, "kind": "overdue", "invoices": [upcoming]})  # fmt: skip
    assert not_due.status_code == 422 and not_due.json()["type"] == "not-overdue"
    plan = ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
        **base, "kind": "repayment_plan", "invoices": INVOICES[:1],
        "instalments": [{"due_date": "2027-07-01", "amount": money("40000")},
                        {"due_date": "2027-08-01", "amount": money("40000")}]}), 201)  # fmt: skip
    assert len(plan["instalments"]) == 2 and plan["stop_shipment_signalled"]
    too_much = await claims.post("/v1/overdue-notifications", headers=holder, json={
        **base, "kind": "repayment_plan", "invoices": INVOICES[:1],
        "instalments": [{"due_date": "2027-07-01", "amount": money("80000.01")}]})  # fmt: skip
    assert too_much.status_code == 422 and too_much.json()["type"] == "plan-exceeds-debt"
    past = await claims.post("/v1/overdue-notifications", headers=holder, json={
        **base, "kind": "repayment_plan", "invoices": INVOICES[:1],
        "instalments": [{"due_date": "2027-06-09", "amount": money("100")}]})  # fmt: skip
    assert past.status_code == 422 and past.json()["errors"][0]["loc"][-1] == "due_date"
    again = ok(await claims.get(f"/v1/overdue-notifications/{plan['id']}", headers=holder), 200)
    assert again == plan
    for kind, stray in (("overdue", {"new_due_date": "2027-08-29"}),
                        ("overdue", {"instalments": [{"due_date": "2027-07-01",
                                                      "amount": money("100")}]}),
                        ("repayment_plan", {"new_due_date": "2027-08-29", "instalments": [
                            {"due_date": "2027-07-01", "amount": money("100")}]})):  # fmt: skip
        misplaced = await claims.post("/v1/overdue-notifications", headers=holder, json={
            **base, "kind": kind, "invoices": INVOICES[:1], **stray})  # fmt: skip
        assert misplaced.status_code == 422 and misplaced.json()["type"] == "validation", stray


async def test_an_invoice_notified_as_shipped_after_today_is_refused_naming_it(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    base = {"policy_id": policy["id"], "buyer_id": buyer["id"]}
    odd = invoice("ODD", "500", "2999-01-01", "2999-02-01")
    for kind, invoices, more in (
        ("extension_request", [odd], {"new_due_date": "2999-03-01"}),
        ("repayment_plan", [*INVOICES[:1], invoice("NEXT", "500", "2027-06-11", "2027-07-11")],
         {"instalments": [{"due_date": "2027-07-01", "amount": money("100")}]}),
    ):  # fmt: skip
        refused = await claims.post("/v1/overdue-notifications", headers=holder, json={
            **base, "kind": kind, "invoices": invoices, **more})  # fmt: skip
        assert refused.status_code == 422, refused.text
        assert [e["loc"] for e in refused.json()["errors"]] == [
            ["body", "invoices", len(invoices) - 1, "shipment_date"]], refused.text  # fmt: skip
        assert TODAY in refused.json()["detail"]


async def test_an_invoice_shipped_outside_the_policy_is_refused_and_stops_or_signals_nothing(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """An invoice shipped before the policy began (or after it ended) is no receivable it
    insures: a notification naming it is refused with the invoice, its shipment date and the
    policy's start (or end), and nothing is recorded, stopped or told to underwriting."""
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw, end_date="2027-05-31")  # ended before today (2027-06-10)
    holder = auth("policyholder", policy["policyholder_id"])
    base = {"policy_id": policy["id"], "buyer_id": buyer["id"]}
    ancient = invoice("OLD-1990", "500", "1990-01-15", "1990-03-15")
    after = invoice("AFTER-END", "500", "2027-06-01", "2027-06-05")
    for kind, invoices, more, bound in (
        ("overdue", [*INVOICES[:1], ancient], {}, "2027-01-01"),
        ("overdue", [after], {}, "2027-05-31"),
        ("extension_request", [ancient], {"new_due_date": "1990-04-15"}, "2027-01-01"),
        ("repayment_plan", [ancient],
         {"instalments": [{"due_date": "2027-07-01", "amount": money("100")}]}, "2027-01-01"),
        ("arrears_cleared", [ancient], {}, "2027-01-01"),
    ):  # fmt: skip
        refused = await claims.post("/v1/overdue-notifications", headers=holder, json={
            **base, "kind": kind, "invoices": invoices, **more})  # fmt: skip
        assert refused.status_code == 422, refused.text
        problem, named = refused.json(), invoices[-1]
        assert problem["type"] == "validation"
        assert [e["loc"] for e in problem["errors"]] == [
            ["body", "invoices", len(invoices) - 1, "shipment_date"]], refused.text  # fmt: skip
        for said in (named["number"], named["shipment_date"], bound):
            assert said in problem["detail"], (said, problem["detail"])
    on_time = ok(await check(uw, policy, buyer["id"], "1000", "2027-05-20", "2027-06-20"), 200)
    assert "stop_shipment" not in on_time["reasons"]
    signals = ok(await uw.get(f"/v1/buyers/{buyer['id']}/signals", headers=UW), 200)
    assert signals["items"] == []
    session = claims._transport.app.dependency_overrides[get_session]  # type: ignore[attr-defined]
    async for s in session():
        told = (await s.execute(select(outbox).where(outbox.c.target == "underwriting"))).all()
        assert not [m for m in told if buyer["id"] in m.path]


async def test_a_payment_made_while_collections_is_down_is_handed_over_later_exactly_once(
    apis: dict[str, httpx.AsyncClient],
    api: Any,
) -> None:
    claims, uw, collections = apis["claims"], apis["underwriting"], apis["collections"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    claim = await filed_claim(claims, policy, buyer, holder)
    claim = await complete(claims, claim, holder)
    ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)
    ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                         json={"decision": "approve", "reason": "ok"}), 200)  # fmt: skip

    app = claims._transport.app  # type: ignore[attr-defined]
    working = await app.dependency_overrides[get_peers]()
    down = ServiceClient("http://collections", jwt_secret=DEVELOPMENT_JWT_SECRET,
                         caller_name="claims", retries=0,
                         transport=httpx.MockTransport(lambda _: httpx.Response(503)))  # fmt: skip

    async def collections_down() -> dict[str, ServiceClient]:
        return {**working, "collections": down}

    app.dependency_overrides[get_peers] = collections_down
    paid = ok(await claims.post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER), 200)
    assert paid["status"] == "paid" and paid["collection_case_id"] is None
    session = app.dependency_overrides[get_session]
    async for s in session():
        pending = (await s.execute(select(outbox).where(outbox.c.aggregate_id == claim["id"],
                                  outbox.c.target == "collections"))
                   ).mappings().one()  # fmt: skip
        assert pending["delivered_at"] is None and pending["attempts"] == 1
        assert pending["last_error"].startswith("503")
        # Past the attempts allowed, a message is left for an operator, not sent again.
        assert await deliver(s, outbox, working, aggregate_id=claim["id"], max_attempts=1) == []
        # Collections is back: the background loop's delivery opens the case, once.
        for _ in range(2):
            for message in await deliver(s, outbox, working):
                await record_delivery(s, message)
    await down.aclose()
    app.dependency_overrides[get_peers] = lambda: working
    after = ok(await claims.get(f"/v1/claims/{claim['id']}", headers=holder), 200)
    assert after["collection_case_id"]
    listed = ok(await collections.get(f"/v1/cases?claim_id={claim['id']}",
                                      headers=auth("collector")), 200)  # fmt: skip
    assert [c["id"] for c in listed["items"]] == [after["collection_case_id"]]


async def test_an_approval_after_another_claim_used_the_caps_needs_a_new_assessment(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw, max_liability=money("100000"))
    holder = auth("policyholder", policy["policyholder_id"])
    filed = []
    for number, on in (("A", buyer), ("B", await another_buyer(uw, policy))):
        claim = ok(await claims.post("/v1/claims", headers=holder, json={
            "policy_id": policy["id"], "buyer_id": on["id"], "cause": "insolvency",
            "event_date": "2027-06-01",
            "invoices": [invoice(f"{number}-1", "80000", "2027-03-01", "2027-04-30"),
                         invoice(f"{number}-2", "40000", "2027-03-20", "2027-05-19")]}), 201)  # fmt: skip
        claim = await complete(claims, claim, holder)
        assessed = ok(await claims.post(f"/v1/claims/{claim['id']}/assessment",
                                        headers=HANDLER), 200)  # fmt: skip
        assert assessed["indemnity"] == money("85000.00")
        filed.append(claim["id"])
    approve = {"decision": "approve", "reason": "ok"}
    ok(await claims.post(f"/v1/claims/{filed[0]}/decision", headers=HANDLER, json=approve), 200)
    stale = await claims.post(f"/v1/claims/{filed[1]}/decision", headers=HANDLER, json=approve)
    assert stale.status_code == 409 and stale.json()["type"] == "assessment-outdated"
    assert stale.json()["cap_left"] == money("15000.00")
    again = ok(await claims.post(f"/v1/claims/{filed[1]}/assessment", headers=HANDLER), 200)
    assert again["indemnity"] == money("15000.00")
    assert "maximum liability" in again["assessment"]["steps"][4]["note"]
    ok(await claims.post(f"/v1/claims/{filed[1]}/decision", headers=HANDLER, json=approve), 200)


async def test_political_loss_is_paid_at_its_own_rate_and_war_or_nuclear_are_excluded(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]

    async def assessed(policy_terms: dict[str, Any], **claim: Any) -> dict[str, Any]:
        policy, buyer = await insured(uw, **policy_terms)
        holder = auth("policyholder", policy["policyholder_id"])
        filed = ok(await claims.post("/v1/claims", headers=holder, json={
            "policy_id": policy["id"], "buyer_id": buyer["id"], "event_date": "2027-06-01",
            "invoices": INVOICES, **claim}), 201)  # fmt: skip
        filed = await complete(claims, filed, holder)
        return ok(await claims.post(f"/v1/claims/{filed['id']}/assessment", headers=HANDLER), 200)

    political = await assessed({"political_risk_cover": True, "political_indemnity_pct": "80"},
                               cause="political", war_related=True)  # fmt: skip
    assert political["indemnity"] == money("75000.00")  # 100,000 × 80% − 5,000
    assert political["assessment"]["claim_exclusions"] == []
    assert "political percentage" in political["assessment"]["steps"][2]["note"]
    # A war under political cover is a political loss (domain.md: the cover's risks are FX
    # transfer restrictions, war, import bans): paid at the political percentage too.
    at_war = await assessed({"political_risk_cover": True, "political_indemnity_pct": "75"},
                            cause="insolvency", war_related=True)  # fmt: skip
    assert at_war["indemnity"] == money("70000.00")  # 100,000 × 75% − 5,000
    assert at_war["assessment"]["claim_exclusions"] == []
    war = await assessed({}, cause="insolvency", war_related=True)
    assert war["indemnity"] == money("0.00")
    assert war["assessment"]["claim_exclusions"] == ["war_without_political_cover"]
    nuclear = await assessed({"political_risk_cover": True}, cause="insolvency",
                             nuclear_related=True)  # fmt: skip
    assert nuclear["assessment"]["claim_exclusions"] == ["nuclear_risk"]
    assert nuclear["indemnity"] == money("0.00")


async def test_the_waiting_period_runs_from_the_original_due_date_after_an_extension(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw, start_date="2026-11-01")  # in force when EXT was shipped
    holder = auth("policyholder", policy["policyholder_id"])
    first = invoice("EXT", "10000", "2026-11-01", "2026-12-10")
    ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "kind": "overdue",
        "invoices": [first]}), 201)  # fmt: skip
    # Claimed with the due date moved to 31 January 2027, the window still opens 180 days after
    # the original 10 December 2026: 8 June 2027, so the claim is in time on 10 June.
    moved = {**first, "due_date": "2027-01-31"}
    before = ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200)["grade"]
    claim = await claims.post("/v1/claims", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "protracted_default",
        "invoices": [moved]})  # fmt: skip
    assert claim.status_code == 201, claim.text
    assert claim.json()["loss_date"] == "2027-06-08"
    assert claim.json()["filing_deadline"] == "2027-07-08"
    # A protracted default is a payment delay for underwriting: one more point on the grade.
    after = ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200)["grade"]
    assert after == before + 1


async def test_the_notification_period_runs_from_the_original_due_date_after_an_extension(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """An extension asked ahead of the due date is not a notification of an overdue, and moves no
    clock: an invoice notified (or claimed) after its original due date + the notification
    period is late, whatever due date it is quoted with."""
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    base = {"policy_id": policy["id"], "buyer_id": buyer["id"]}
    notified = invoice("EXT-A", "10000", "2027-03-01", "2027-04-10")
    never = invoice("EXT-B", "20000", "2027-03-01", "2027-04-10")
    with declared_on(claims, dt.date(2027, 4, 1)):  # both extended ahead, by the 60 days allowed
        for extended in (notified, never):
            asked = ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
                **base, "kind": "extension_request", "invoices": [extended],
                "new_due_date": "2027-06-09"}), 201)  # fmt: skip
            assert asked["invoices"][0]["notification_deadline"] == "2027-06-09"
            assert asked["invoices"][0]["late"] is False
    # On 10 June, a day after 10 April + 60 days, EXT-A is notified with its new due date: late.
    late = ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
        **base, "kind": "overdue", "invoices": [{**notified, "due_date": "2027-06-09"}]}), 201)  # fmt: skip
    assert late["invoices"][0]["notification_deadline"] == "2027-06-09"
    assert late["invoices"][0]["late"] is True
    # Claimed with both: EXT-A was notified late, EXT-B never notified by its deadline.
    claim = ok(await claims.post("/v1/claims", headers=holder, json={
        **base, "cause": "insolvency", "event_date": "2027-06-01",
        "invoices": [notified, never]}), 201)  # fmt: skip
    await complete(claims, claim, holder)
    assessed = ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)
    lines = {i["number"]: i["exclusions"] for i in assessed["assessment"]["invoices"]}
    assert lines == {"EXT-A": ["notified_late"], "EXT-B": ["notified_late"]}
    assert assessed["indemnity"] == money("0.00")


async def test_a_due_date_extended_twice_stays_within_the_maximum_from_the_original(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    base = {"policy_id": policy["id"], "buyer_id": buyer["id"], "kind": "extension_request"}
    upcoming = invoice("TWO-EXT", "5000", "2027-05-01", "2027-06-30")  # at most to 29 August
    ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
        **base, "invoices": [upcoming], "new_due_date": "2027-07-30"}), 201)  # fmt: skip
    moved = {**upcoming, "due_date": "2027-07-30"}
    beyond = await claims.post("/v1/overdue-notifications", headers=holder, json={
        **base, "invoices": [moved], "new_due_date": "2027-08-30"})  # fmt: skip
    assert beyond.status_code == 422 and beyond.json()["type"] == "extension-too-long"
    assert beyond.json()["max_new_due_date"] == "2027-08-29"
    within = ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
        **base, "invoices": [moved], "new_due_date": "2027-08-29"}), 201)  # fmt: skip
    assert within["invoices"][0]["notification_deadline"] == "2027-08-29"


async def test_an_invoice_notified_again_keeps_the_standing_of_its_first_notification(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """Notified in time, an invoice stays in time when notified again after its deadline (the
    claim counts its first notification); notified late, it stays late."""
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    base = {"policy_id": policy["id"], "buyer_id": buyer["id"], "kind": "overdue"}
    in_time = invoice("TWICE-1", "10000", "2027-02-01", "2027-04-01")  # deadline 31 May
    late = invoice("TWICE-2", "10000", "2027-02-01", "2027-03-31")  # deadline 30 May
    with declared_on(claims, dt.date(2027, 5, 31)):
        first = ok(await claims.post("/v1/overdue-notifications", headers=holder,
                                     json={**base, "invoices": [in_time, late]}), 201)  # fmt: skip
    assert {i["number"]: i["late"] for i in first["invoices"]} == {"TWICE-1": False,
                                                                   "TWICE-2": True}  # fmt: skip
    again = ok(await claims.post("/v1/overdue-notifications", headers=holder,
                                 json={**base, "invoices": [in_time, late]}), 201)  # fmt: skip
    assert {i["number"]: (i["late"], i["notification_deadline"]) for i in again["invoices"]} == {
        "TWICE-1": (False, "2027-05-31"), "TWICE-2": (True, "2027-05-30")}  # fmt: skip


async def test_an_invoice_extended_within_the_maximum_keeps_the_cover_of_its_original_terms(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """Cover is judged on the shipment date with the credit period agreed then: an invoice claimed
    with the due date the policyholder moved (within the maximum extension) is covered as it was
    shipped, though the moved date lies beyond the limit's 90 days of terms."""
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    base = {"policy_id": policy["id"], "buyer_id": buyer["id"]}
    shipped = invoice("EXT-C", "10000", "2027-03-01", "2027-04-10")
    with declared_on(claims, dt.date(2027, 4, 1)):
        ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
            **base, "kind": "extension_request", "invoices": [shipped],
            "new_due_date": "2027-06-09"}), 201)  # fmt: skip
    with declared_on(claims, dt.date(2027, 5, 1)):
        notified = ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
            **base, "kind": "overdue", "invoices": [shipped]}), 201)  # fmt: skip
        assert notified["invoices"][0]["late"] is False
    claim = ok(await claims.post("/v1/claims", headers=holder, json={
        **base, "cause": "insolvency", "event_date": "2027-06-01",
        "invoices": [{**shipped, "due_date": "2027-06-09"}]}), 201)  # fmt: skip
    await complete(claims, claim, holder)
    assessed = ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)
    [line] = assessed["assessment"]["invoices"]
    assert line["exclusions"] == [] and line["covered"] == money("10000.00")
    assert assessed["indemnity"] == money("4000.00")  # 10,000 × 90% − 5,000


async def test_arrears_paid_end_the_stop_shipment(apis: dict[str, httpx.AsyncClient]) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    base = {"policy_id": policy["id"], "buyer_id": buyer["id"], "invoices": INVOICES[:1]}
    ok(await claims.post("/v1/overdue-notifications", headers=holder,
                         json={**base, "kind": "overdue"}), 201)  # fmt: skip
    stopped = ok(await check(uw, policy, buyer["id"], "1000", "2027-06-11", "2027-07-11"), 200)
    assert "stop_shipment" in stopped["reasons"]
    cleared = ok(await claims.post("/v1/overdue-notifications", headers=holder,
                                   json={**base, "kind": "arrears_cleared"}), 201)  # fmt: skip
    assert cleared["stop_shipment_cleared"] and not cleared["stop_shipment_signalled"]
    assert [i["late"] for i in cleared["invoices"]] == [False]
    again = ok(await check(uw, policy, buyer["id"], "1000", "2027-06-11", "2027-07-11"), 200)
    assert "stop_shipment" not in again["reasons"] and again["covered"]


async def test_the_stop_shipment_ends_only_once_every_notified_overdue_is_cleared(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    base = {"policy_id": policy["id"], "buyer_id": buyer["id"]}
    ok(await claims.post("/v1/overdue-notifications", headers=holder,
                         json={**base, "kind": "overdue", "invoices": INVOICES}), 201)  # fmt: skip
    # One of the two paid: the other is still in arrears, shipments stay stopped.
    partly = ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
        **base, "kind": "arrears_cleared", "invoices": INVOICES[:1]}), 201)  # fmt: skip
    assert not partly["stop_shipment_cleared"] and not partly["stop_shipment_signalled"]
    stopped = ok(await check(uw, policy, buyer["id"], "1000", "2027-06-11", "2027-07-11"), 200)
    assert "stop_shipment" in stopped["reasons"]
    read = ok(await claims.get(f"/v1/overdue-notifications/{partly['id']}", headers=holder), 200)
    assert read == partly
    # The last one paid: the arrears are cleared.
    cleared = ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
        **base, "kind": "arrears_cleared", "invoices": INVOICES[1:]}), 201)  # fmt: skip
    assert cleared["stop_shipment_cleared"]
    again = ok(await check(uw, policy, buyer["id"], "1000", "2027-06-11", "2027-07-11"), 200)
    assert "stop_shipment" not in again["reasons"] and again["covered"]
    read = ok(await claims.get(f"/v1/overdue-notifications/{partly['id']}", headers=holder), 200)
    assert read == partly  # as it stood when it was made


async def test_declared_exposure_outside_the_claim_does_not_reduce_its_indemnity(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    # Declared and unpaid, not claimed: coverage checks see no headroom left on this buyer...
    ok(await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder, json={
        "invoices": [{"number": "OTHER", "buyer_id": buyer["id"], "amount": money("100000"),
                      "shipment_date": "2027-02-01", "due_date": "2027-04-01"}]}), 201)  # fmt: skip
    seen = ok(await check(uw, policy, buyer["id"], "1000", "2027-03-01", "2027-04-30"), 200)
    assert seen["reasons"] == ["headroom_exhausted"]
    # ...but the indemnity counts the limit against the claim's own invoices only (step 2).
    claim = await filed_claim(claims, policy, buyer, holder)
    claim = await complete(claims, claim, holder)
    assessed = ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)
    assert assessed["indemnity"] == money("85000.00")
    assert all(line["exclusions"] == [] for line in assessed["assessment"]["invoices"])


async def test_an_upload_retried_with_its_idempotency_key_is_replayed_whatever_the_boundary(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    claim = await filed_claim(claims, policy, buyer, holder)
    keyed = {**holder, "Idempotency-Key": "upload-1"}

    def multipart(boundary: str, content: bytes) -> tuple[bytes, dict[str, str]]:
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\n'
            f'invoice\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="inv.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
        ).encode()
        body += content + f"\r\n--{boundary}--\r\n".encode()
        return body, {**keyed, "content-type": f"multipart/form-data; boundary={boundary}"}

    url = f"/v1/claims/{claim['id']}/documents"
    body, headers = multipart("first-boundary", b"%PDF-1.4 A")
    first = await claims.post(url, content=body, headers=headers)
    assert first.status_code == 201, first.text
    body, headers = multipart("another-boundary-on-retry", b"%PDF-1.4 A")
    retried = await claims.post(url, content=body, headers=headers)
    assert retried.status_code == 201 and retried.headers["idempotent-replayed"] == "true"
    assert retried.json()["id"] == first.json()["id"]
    body, headers = multipart("third", b"%PDF-1.4 B")
    other = await claims.post(url, content=body, headers=headers)
    assert other.status_code == 422 and other.json()["type"] == "idempotency-key-reused"
    documents = ok(await claims.get(f"/v1/claims/{claim['id']}", headers=holder), 200)["documents"]
    assert len(documents) == 1 and documents[0]["size"] == len(b"%PDF-1.4 A")


async def test_a_claim_with_nothing_to_indemnify_is_not_approved_but_rejected_as_nothing_payable(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """An insured loss at the claim threshold leaves a nil indemnity: nothing is owed, so the
    claim is neither approved nor paid (no subrogation case with no insurer share): approval is
    422 `nil-indemnity` saying why, and the claim is rejected as nothing payable."""
    claims, uw, collections = apis["claims"], apis["underwriting"], apis["collections"]
    policy, buyer = await insured(uw, claim_threshold=money("100000"))
    holder = auth("policyholder", policy["policyholder_id"])
    claim = await filed_claim(claims, policy, buyer, holder)
    claim = await complete(claims, claim, holder)
    assessed = ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)
    assert assessed["indemnity"] == money("0.00")  # the insured loss of 100,000 is at the threshold

    refused = await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                                json={"decision": "approve", "reason": "nothing to pay"})  # fmt: skip
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["type"] == "nil-indemnity" and problem["status_now"] == "assessed"
    assert problem["detail"] == (
        f"claim {claim['id']} is not approved: its indemnity is nil (the insured loss of "
        "100000.00 is at or below the claim threshold of 100000.00), so nothing is owed on it; "
        "reject it as nothing payable"
    )
    unpaid = await claims.post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER)
    assert unpaid.status_code == 409 and unpaid.json()["type"] == "not-approved"

    rejected = ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                                    json={"decision": "reject", "reason": "nothing payable"}),
                  200)  # fmt: skip
    assert rejected["status"] == "rejected" and rejected["paid_on"] is None
    assert not rejected["collection_case_id"]
    cases = ok(await collections.get(f"/v1/cases?claim_id={claim['id']}",
                                     headers=auth("collector")), 200)  # fmt: skip
    assert cases["items"] == []


async def test_a_claim_wide_exclusion_does_not_deny_the_cover_its_invoices_had_when_shipped(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    claim = ok(await claims.post("/v1/claims", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
        "event_date": "2027-06-01", "invoices": INVOICES, "war_related": True}), 201)  # fmt: skip
    claim = await complete(claims, claim, holder)
    assessed = ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)
    assert assessed["indemnity"] == money("0.00")
    lines = assessed["assessment"]["invoices"]
    assert [(i["covered_on_shipment_date"], i["coverage_reasons"], i["exclusions"], i["covered"])
            for i in lines] == [(True, [], ["war_without_political_cover"], money("0.00"))] * 2  # fmt: skip
    assert assessed["assessment"]["claim_exclusions"] == ["war_without_political_cover"]


async def test_a_claim_or_a_case_whose_amounts_add_up_to_10_14_or_more_is_refused(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw, collections = apis["claims"], apis["underwriting"], apis["collections"]
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    largest = "99999999999999.99"  # each amount is valid on its own (less than 10^14)
    invoices = [invoice(f"BIG-{n}", largest, "2027-03-01", "2027-04-30") for n in (1, 2)]
    filing = {"policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
              "event_date": "2027-06-01"}  # fmt: skip
    refused = await claims.post("/v1/claims", headers=holder, json={**filing, "invoices": invoices})
    assert refused.status_code == 422 and refused.json()["type"] == "validation"
    assert "must add up to less than 10^14" in refused.json()["detail"]
    reductions = await claims.post("/v1/claims", headers=holder, json={
        **filing, "invoices": invoices[:1], "credit_notes": money(largest),
        "set_offs": money(largest)})  # fmt: skip
    assert reductions.status_code == 422 and reductions.json()["type"] == "validation"
    one = ok(await claims.post("/v1/claims", headers=holder, json={
        **filing, "invoices": invoices[:1], "credit_notes": money(largest)}), 201)  # fmt: skip
    assert one["reductions"] == money(largest)

    case = await collections.post("/v1/cases", headers=holder, json={
        "creditor_id": policy["policyholder_id"], "buyer_id": buyer["id"], "debtor_country": "DE",
        "invoices": [{"number": f"BIG-{n}", "amount": money(largest), "due_date": "2027-04-30"}
                     for n in (1, 2)]})  # fmt: skip
    assert case.status_code == 422 and "must add up to less than 10^14" in case.json()["detail"]


async def test_a_document_sent_as_json_is_told_to_send_a_form(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """An upload's fields sent as JSON are not each "required": the answer says to send the form
    as multipart/form-data."""
    policy, buyer = await insured(apis["underwriting"])
    holder = auth("policyholder", policy["policyholder_id"])
    claim = await filed_claim(apis["claims"], policy, buyer, holder)
    answer = await apis["claims"].post(f"/v1/claims/{claim['id']}/documents", headers=holder,
                                       json={"kind": "invoice", "file": "invoice.pdf"})  # fmt: skip
    body = ok(answer, 422)
    assert "multipart/form-data" in body["detail"] and "'application/json'" in body["detail"]
    assert {tuple(e["loc"]) for e in body["errors"]} == {("body", "kind"), ("body", "file")}


async def test_a_war_default_under_political_cover_says_nothing_of_the_buyers_payments(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """A protracted default caused by war, under political cover, is a political loss (paid at
    the political percentage): like a political claim it sends underwriting no payment delay at
    filing and no loss at payment."""
    claims, uw = apis["claims"], apis["underwriting"]
    policy = await make_policy(uw, start_date="2026-11-01", end_date="2027-10-31",
                               political_risk_cover=True, political_indemnity_pct="80")  # fmt: skip
    buyer = await make_buyer(uw)
    ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": buyer["id"], "amount": money("100000"), "effective_from": "2026-11-01",
        "payment_terms_days": 90, "reason": "book migrated"}), 201)  # fmt: skip
    holder = auth("policyholder", policy["policyholder_id"])
    late = invoice("WAR", "10000", "2026-11-01", "2026-12-10")  # the window opened 8 June 2027
    with declared_on(claims, dt.date(2027, 1, 5)):  # notified in time
        ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
            "policy_id": policy["id"], "buyer_id": buyer["id"], "kind": "overdue",
            "invoices": [late]}), 201)  # fmt: skip
    filed = ok(await claims.post("/v1/claims", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "protracted_default",
        "war_related": True, "invoices": [late]}), 201)  # fmt: skip
    assert filed["buyer_signal"] is None
    filed = await complete(claims, filed, holder)
    assessed = ok(await claims.post(f"/v1/claims/{filed['id']}/assessment", headers=HANDLER), 200)
    assert "political percentage" in assessed["assessment"]["steps"][2]["note"]
    ok(await claims.post(f"/v1/claims/{filed['id']}/decision", headers=HANDLER,
                         json={"decision": "approve", "reason": "war damage proven"}), 200)  # fmt: skip
    paid = ok(await claims.post(f"/v1/claims/{filed['id']}/payment", headers=HANDLER), 200)
    assert paid["status"] == "paid" and paid["buyer_signal"] is None
    # Underwriting heard of the overdue (a stop-shipment) and of collections' own case, never of
    # the claim as a payment default.
    kinds = {x["kind"] for x in ok(await uw.get(f"/v1/buyers/{buyer['id']}/signals",
                                                headers=UW), 200)["items"]}  # fmt: skip
    assert not kinds & {"payment_delay", "protracted_default", "claim_paid"}, kinds
