"""The collector's pages: cases by stage and days past due, a case with its invoices, activities
and payments, and recording an activity or a payment (with its allocation shown)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from console.forms import money_sent, typed_amount, typed_date
from console.session import CollectorDep, CsrfDep
from console.underwriting import buyers_by_id
from console.upstream import FormKey, Upstream, UpstreamDep, UpstreamRefused
from console.web import PlainIds, form_refused, form_sent_back, redirect, render, today, translator

router = APIRouter(prefix="/cases", dependencies=[PlainIds])
STAGES = ("new", "reminder_letter", "phone_collection", "legal", "amicable", "lawyer_letter",
          "lawsuit")  # fmt: skip
ACTIVITY_KINDS = (
    "letter",
    "call",
    "promise_to_pay",
    "dispute",
    "dispute_resolved",
    "legal_filing",
    "note",
)
CASE_STATUSES = ("open", "on_hold", "closed")


@router.get("")
async def cases_list(request: Request, _: CollectorDep, upstream: UpstreamDep,
                     status: str = "open") -> Response:  # fmt: skip
    """Cases of one status grouped by stage, the most days past due first."""
    limit = request.app.state.settings.console_list_limit
    every = await upstream.every("collections", "/v1/cases", limit)
    counts = {s: sum(1 for c in every if c["status"] == s) for s in CASE_STATUSES}
    shown = [c for c in every if status == "all" or c["status"] == status]
    order = {stage: index for index, stage in enumerate(STAGES)}
    shown.sort(key=lambda c: (-order.get(c["stage"], 0), -c["days_past_due"], c["created_at"]))
    groups = [(stage, [c for c in shown if c["stage"] == stage]) for stage in reversed(STAGES)]
    buyers = await buyers_by_id(upstream, {c["buyer_id"] for c in shown})
    return render(request, "collections/list.html", groups=[g for g in groups if g[1]],
                  counts=counts, statuses=CASE_STATUSES, current=status, buyers=buyers)  # fmt: skip


@router.get("/{case_id}")
async def case_page(case_id: str, request: Request, _: CollectorDep,
                    upstream: UpstreamDep) -> Response:  # fmt: skip
    case = await upstream.get("collections", f"/v1/cases/{case_id}")
    buyers = await buyers_by_id(upstream, {case["buyer_id"]})
    highlighted = request.query_params.get("payment")
    still_open = set(case.get("open_disputes", []))
    open_disputes = [a for a in case["activities"] if a["id"] in still_open]
    return render(request, "collections/case.html", case=case, buyer=buyers.get(case["buyer_id"]),
                  activity_kinds=ACTIVITY_KINDS, highlighted=highlighted,
                  open_disputes=open_disputes, today=today(request).isoformat())  # fmt: skip


async def _record(request: Request, upstream: Upstream, case_id: str, path: str,
                  body: dict[str, Any], notice: str, key: str) -> Response:  # fmt: skip
    page = f"/cases/{case_id}"
    try:
        created = await upstream.act("collections", f"/v1/cases/{case_id}/{path}", body, key=key)
    except UpstreamRefused as refusal:
        if refusal.status in (401, 404):
            raise
        already = path == "activities" and refusal.slug == "already-decided"
        return await form_refused(request, page, refusal,
                            error="dispute-already-resolved" if already else None)  # fmt: skip
    return redirect(page, notice="form-replayed" if created.replayed else notice,
                    payment=created.body["id"] if path == "payments" else None)  # fmt: skip


@router.post("/{case_id}/payments", dependencies=[CsrfDep])
async def record_payment(
    case_id: str, request: Request, _: CollectorDep, upstream: UpstreamDep,
    amount: Annotated[str, Form()], currency: Annotated[str, Form()],
    received_on: Annotated[str, Form()], idempotency_key: FormKey = "",
) -> Response:  # fmt: skip
    """A payment received from the debtor (its amount as the reader's language writes one); the
    case page then shows how it was allocated."""
    value = typed_amount(amount, translator(request).babel_locale)
    day = typed_date(received_on)
    if value is None or day is None:
        return await form_sent_back(request, f"/cases/{case_id}", "payment-incomplete")
    body = {"amount": money_sent(value, currency), "received_on": day}
    return await _record(request, upstream, case_id, "payments", body, "payment-recorded",
                         idempotency_key)  # fmt: skip


@router.post("/{case_id}/activities", dependencies=[CsrfDep])
async def record_activity(
    case_id: str, request: Request, _: CollectorDep, upstream: UpstreamDep,
    kind: Annotated[str, Form()], occurred_on: Annotated[str, Form()],
    currency: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "",
    promised_amount: Annotated[str, Form()] = "", promised_on: Annotated[str, Form()] = "",
    dispute_id: Annotated[str, Form()] = "", idempotency_key: FormKey = "",
) -> Response:  # fmt: skip
    """An activity; a promise to pay with its amount (as the reader's language writes one) and
    date, a dispute's resolution naming the open dispute it resolves (chosen on the page when
    the case has several). A dispute resolved meanwhile is explained, never resolved twice."""
    day = typed_date(occurred_on)
    if kind not in ACTIVITY_KINDS or day is None:
        return await form_sent_back(request, f"/cases/{case_id}", "activity-incomplete")
    body: dict[str, Any] = {"kind": kind, "occurred_on": day}
    if note.strip():
        body["note"] = note.strip()
    if kind == "promise_to_pay":
        value = typed_amount(promised_amount, translator(request).babel_locale)
        promised_day = typed_date(promised_on)
        if value is None or promised_day is None:
            return await form_sent_back(request, f"/cases/{case_id}", "activity-incomplete")
        body["promised_amount"] = money_sent(value, currency)
        body["promised_on"] = promised_day
    if kind == "dispute_resolved" and dispute_id.strip():
        body["dispute_id"] = dispute_id.strip()
    return await _record(request, upstream, case_id, "activities", body, "activity-recorded",
                         idempotency_key)  # fmt: skip
