"""The claims handler's pages: claims by status with the decision due in working days, a claim
with its documents, disputes and assessment, and the acts on it (assess, approve or reject, pay,
settle a dispute)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from console.forms import typed_date
from console.session import CsrfDep, HandlerDep
from console.underwriting import buyers_by_id
from console.upstream import FormKey, Upstream, UpstreamDep, UpstreamRefused, gather_all
from console.web import PlainIds, form_refused, form_sent_back, redirect, render, today
from shared.calendar import is_working_day

router = APIRouter(prefix="/claims", dependencies=[PlainIds])
STATUSES = ("documents_pending", "under_review", "on_hold", "assessed", "approved", "rejected",
            "paid", "lapsed")  # fmt: skip
# A claim still waiting for its decision (the working days left to it are counted for these only).
AWAITING_DECISION = ("documents_pending", "under_review", "on_hold", "assessed")
DECIDED_NOTICE = {"approve": "claim-approved", "reject": "claim-rejected"}
# An act whose answer says its signal about the buyer has not reached underwriting yet
# (`buyer_signal.delivery`: `pending`) is done all the same; its notice says the grade lags.
SIGNAL_PENDING_NOTICE = {"claim-approved": "claim-approved-signal-pending",
                         "paid": "paid-signal-pending"}  # fmt: skip
DISPUTE_OUTCOMES = ("policyholder", "buyer")
DOWNLOAD_HEADERS = ("content-type", "content-disposition", "content-length")


def working_days_left(on: dt.date, due: dt.date, country: str,
                      corrections: dict[dt.date, bool]) -> int:  # fmt: skip
    """Working days from `on` to `due` (the due day counts, today does not); negative once
    overdue, counting the working days since."""
    step, sign = (dt.timedelta(days=1), 1) if due >= on else (dt.timedelta(days=-1), -1)
    count, day = 0, on
    while day != due:
        day += step
        if is_working_day(day, country, corrections):
            count += 1
    return sign * count


async def calendar_of(upstream: Upstream, country: str, years: set[int]) -> dict[dt.date, bool]:
    """The working calendar the claims service keeps (its package days and staff corrections)."""
    corrections: dict[dt.date, bool] = {}
    for year in sorted(years):
        days = await upstream.optional(
            upstream.get("claims", f"/v1/calendars/{country}/days", year=year)
        )
        if days is not None:
            corrections.update(
                {dt.date.fromisoformat(d["date"]): d["working"] for d in days["items"]}
            )
    return corrections


async def days_left_of(upstream: Upstream, claims: list[dict[str, Any]], on: dt.date
                       ) -> dict[str, int]:  # fmt: skip
    """Working days left to each undecided claim's decision, on its policy's claims calendar."""
    due = [c for c in claims if c.get("decision_due") and c["status"] in AWAITING_DECISION]
    policies = await upstream.by_ids("underwriting", "/v1/policies",
                                     {c["policy_id"] for c in due})  # fmt: skip
    country_of = {p["id"]: p["claims_calendar_country"] for p in policies.values()}
    due = [c for c in due if c["policy_id"] in country_of]  # a policy not read: left unsaid
    years: dict[str, set[int]] = {}
    for claim in due:
        end = dt.date.fromisoformat(claim["decision_due"])
        years.setdefault(country_of[claim["policy_id"]], set()).update(
            range(min(on, end).year, max(on, end).year + 1)
        )
    calendars = dict(zip(years, await gather_all(*(calendar_of(upstream, c, y)
                                                   for c, y in years.items())), strict=True))  # fmt: skip
    left: dict[str, int] = {}
    for claim in due:
        country = country_of[claim["policy_id"]]
        left[claim["id"]] = working_days_left(
            on, dt.date.fromisoformat(claim["decision_due"]), country, calendars[country]
        )
    return left


@router.get("")
async def claims_list(request: Request, _: HandlerDep, upstream: UpstreamDep,
                      status: str = "under_review") -> Response:  # fmt: skip
    """Claims of one status (tabs for each, with counts), the decision soonest due first."""
    limit = request.app.state.settings.console_list_limit
    every = await upstream.every("claims", "/v1/claims", limit)
    counts = {s: sum(1 for c in every if c["status"] == s) for s in STATUSES}
    shown = [c for c in every if status == "all" or c["status"] == status]
    shown.sort(key=lambda c: (c.get("decision_due") or "9999-12-31", c["created_at"]))
    on = today(request)
    left, buyers = await gather_all(
        days_left_of(upstream, shown, on),
        buyers_by_id(upstream, {c["buyer_id"] for c in shown}),
    )
    return render(request, "claims/list.html", claims=shown, counts=counts, statuses=STATUSES,
                  current=status, days_left=left, buyers=buyers, total=len(every))  # fmt: skip


def disputed_amounts(claim: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per dispute, the claim's invoices it names (each with its amount) and their sum, in the
    API's money form (an invoice the claim does not list is named without an amount)."""
    invoices = {i["number"]: i["amount"] for i in claim["invoices"]}
    found: dict[str, dict[str, Any]] = {}
    for dispute in claim["disputes"]:
        named = [(number, invoices.get(number)) for number in dispute["invoice_numbers"]]
        amounts = [amount for _, amount in named if amount]
        total = None
        if amounts:
            total = {"amount": str(sum((Decimal(a["amount"]) for a in amounts), Decimal(0))),
                     "currency": amounts[0]["currency"]}  # fmt: skip
        found[dispute["id"]] = {"invoices": named, "total": total}
    return found


@router.get("/{claim_id}")
async def claim_page(claim_id: str, request: Request, _: HandlerDep,
                     upstream: UpstreamDep) -> Response:  # fmt: skip
    claim = await upstream.get("claims", f"/v1/claims/{claim_id}")
    buyers = await buyers_by_id(upstream, {claim["buyer_id"]})
    on = today(request)
    left = await days_left_of(upstream, [claim], on)
    return render(request, "claims/claim.html", claim=claim, buyer=buyers.get(claim["buyer_id"]),
                  days_left=left.get(claim["id"]), disputed=disputed_amounts(claim),
                  outcomes=DISPUTE_OUTCOMES, today=on.isoformat())  # fmt: skip


@router.get("/{claim_id}/documents/{document_id}")
async def download(claim_id: str, document_id: str, _: HandlerDep,
                   upstream: UpstreamDep) -> Response:  # fmt: skip
    """A document as the claims service keeps it, downloaded as an attachment."""
    answer = await upstream.raw("claims", "GET", f"/v1/claims/{claim_id}/documents/{document_id}")
    headers = {name: answer.headers[name] for name in DOWNLOAD_HEADERS if name in answer.headers}
    headers.setdefault("content-disposition", "attachment")
    headers["Cache-Control"] = "private, no-store"
    return Response(answer.content, headers=headers)


async def _act(request: Request, upstream: Upstream, claim_id: str, path: str, body: Any,
               done: str, key: str) -> Response:  # fmt: skip
    page = f"/claims/{claim_id}"
    try:
        answer = await upstream.act("claims", f"/v1/claims/{claim_id}/{path}", body, key=key)
    except UpstreamRefused as refusal:
        if refusal.status in (401, 404):
            raise
        return await form_refused(request, page, refusal)
    if answer.replayed:
        return redirect(page, notice="form-replayed")
    signal = answer.body.get("buyer_signal") if isinstance(answer.body, dict) else None
    if isinstance(signal, dict) and signal.get("delivery") == "pending":
        done = SIGNAL_PENDING_NOTICE.get(done, done)
    return redirect(page, notice=done)


@router.post("/{claim_id}/assessment", dependencies=[CsrfDep])
async def assess(claim_id: str, request: Request, _: HandlerDep, upstream: UpstreamDep,
                 idempotency_key: FormKey = "") -> Response:  # fmt: skip
    return await _act(request, upstream, claim_id, "assessment", None, "assessed",
                      idempotency_key)  # fmt: skip


@router.post("/{claim_id}/decision", dependencies=[CsrfDep])
async def decide(claim_id: str, request: Request, _: HandlerDep, upstream: UpstreamDep,
                 decision: Annotated[str, Form()], reason: Annotated[str, Form()] = "",
                 idempotency_key: FormKey = "") -> Response:  # fmt: skip
    if decision not in DECIDED_NOTICE or not reason.strip():
        return await form_sent_back(request, f"/claims/{claim_id}", "decision-incomplete")
    body = {"decision": decision, "reason": reason.strip()}
    return await _act(request, upstream, claim_id, "decision", body, DECIDED_NOTICE[decision],
                      idempotency_key)  # fmt: skip


@router.post("/{claim_id}/payment", dependencies=[CsrfDep])
async def pay(claim_id: str, request: Request, _: HandlerDep, upstream: UpstreamDep,
              idempotency_key: FormKey = "") -> Response:  # fmt: skip
    return await _act(request, upstream, claim_id, "payment", None, "paid", idempotency_key)


@router.post("/{claim_id}/disputes/{dispute_id}/resolution", dependencies=[CsrfDep])
async def resolve_dispute(claim_id: str, dispute_id: str, request: Request, _: HandlerDep,
                          upstream: UpstreamDep,
                          outcome: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "",
                          resolved_on: Annotated[str, Form()] = "",
                          idempotency_key: FormKey = "") -> Response:  # fmt: skip
    """Settle an open dispute for the policyholder or the buyer, with the reason; the claim
    resumes once no dispute is open. A dispute settled meanwhile is explained, never twice."""
    page = f"/claims/{claim_id}"
    day = typed_date(resolved_on) if resolved_on.strip() else ""
    if outcome not in DISPUTE_OUTCOMES or not note.strip() or day is None:
        return await form_sent_back(request, page, "dispute-incomplete")
    body = {"outcome": outcome, "note": note.strip(), **({"resolved_on": day} if day else {})}
    try:
        answer = await upstream.act("claims", f"/v1/claims/{claim_id}/disputes/{dispute_id}"
                                    "/resolution", body, key=idempotency_key)  # fmt: skip
    except UpstreamRefused as refusal:
        if refusal.status in (401, 404):
            raise
        already = refusal.slug == "already-decided"
        return await form_refused(request, page, refusal,
                            error="dispute-already-resolved" if already else None)  # fmt: skip
    return redirect(page, notice="form-replayed" if answer.replayed else "dispute-resolved")
