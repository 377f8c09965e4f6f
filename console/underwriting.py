"""The underwriter's pages: the referral queue, a request with everything behind the engine's
answer, and the decision on it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from console.session import CsrfDep, UnderwriterDep
from console.upstream import Upstream, UpstreamDep, UpstreamRefused, gather_all
from console.web import redirect, render, today

router = APIRouter(prefix="/underwriting")
DECISIONS = ("approve", "partially_approve", "refuse")


async def buyers_by_id(upstream: Upstream, ids: set[str]) -> dict[str, dict[str, Any]]:
    """The buyers named, read side by side (one that cannot be read is left out)."""

    async def one(buyer_id: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await upstream.get("underwriting", f"/v1/buyers/{buyer_id}")
        except UpstreamRefused:
            return None
        return found

    found = await gather_all(*(one(buyer_id) for buyer_id in sorted(ids)))
    return {buyer["id"]: buyer for buyer in found if buyer is not None}


def age_in_days(created_at: str, on: dt.date) -> int:
    return max(0, (on - dt.datetime.fromisoformat(created_at).date()).days)


@router.get("/queue")
async def queue(request: Request, _: UnderwriterDep, upstream: UpstreamDep) -> Response:
    """Referred requests, oldest first, with their age, buyer, grade and requested amount."""
    limit = request.app.state.settings.console_list_limit
    requests = await upstream.every("underwriting", "/v1/limit-requests", limit, status="referred")
    buyers = await buyers_by_id(upstream, {r["buyer_id"] for r in requests})
    on = today(request)
    rows = [{"request": r, "buyer": buyers.get(r["buyer_id"]),
             "age_days": age_in_days(r["created_at"], on)} for r in requests]  # fmt: skip
    return render(request, "underwriting/queue.html", rows=rows)


async def limits_with_exposure(upstream: Upstream, policy_id: str, limit: int
                               ) -> list[dict[str, Any]]:  # fmt: skip
    """The policy's limits, each with its exposure and headroom when it has a limit in force."""
    limits, exposure = await gather_all(
        upstream.every("underwriting", f"/v1/policies/{policy_id}/limits", limit),
        upstream.every("underwriting", f"/v1/policies/{policy_id}/exposure", limit),
    )
    exposure_of = {row["limit_id"]: row for row in exposure}
    return [{"limit": item, "exposure": exposure_of.get(item["id"])} for item in limits]


@router.get("/requests/{request_id}")
async def request_page(request_id: str, request: Request, _: UnderwriterDep,
                       upstream: UpstreamDep) -> Response:  # fmt: skip
    """A limit request: the buyer's grade factors and country risk, the policy's limits and
    exposure, the engine's reasons, and the decision form while it is referred."""
    limit_request = await upstream.get("underwriting", f"/v1/limit-requests/{request_id}")
    buyer, policy = await gather_all(
        upstream.get("underwriting", f"/v1/buyers/{limit_request['buyer_id']}"),
        upstream.get("underwriting", f"/v1/policies/{limit_request['policy_id']}"),
    )
    country_risk, limits = await gather_all(
        upstream.get("underwriting", f"/v1/country-risks/{buyer['country']}"),
        limits_with_exposure(upstream, policy["id"], request.app.state.settings.console_list_limit),
    )
    names = await buyers_by_id(upstream, {row["limit"]["buyer_id"] for row in limits})
    return render(request, "underwriting/request.html", limit_request=limit_request, buyer=buyer,
                  policy=policy, country_risk=country_risk, limits=limits, buyers=names,
                  decisions=DECISIONS)  # fmt: skip


def decision_body(decision: str, amount: str, currency: str, reason: str) -> dict[str, Any] | None:
    """What the API is sent, or None when the form is not complete: a partial approval names
    its amount (a positive decimal), every decision its reason."""
    if decision not in DECISIONS or not reason.strip():
        return None
    body: dict[str, Any] = {"decision": decision, "reason": reason.strip()}
    if decision == "partially_approve":
        try:
            value = Decimal(amount.strip().replace(",", ""))
        except InvalidOperation:
            return None
        if not value.is_finite() or value <= 0:
            return None
        body["amount"] = {"amount": str(value), "currency": currency}
    return body


@router.post("/requests/{request_id}/decision", dependencies=[CsrfDep])
async def decide(
    request_id: str, _: UnderwriterDep, upstream: UpstreamDep,
    decision: Annotated[str, Form()], reason: Annotated[str, Form()] = "",
    amount: Annotated[str, Form()] = "", currency: Annotated[str, Form()] = "",
) -> Response:  # fmt: skip
    """Approve, partially approve or refuse; a request decided meanwhile (409) is explained on
    its page, which then shows the decision that stands."""
    page = f"/underwriting/requests/{request_id}"
    body = decision_body(decision, amount, currency, reason)
    if body is None:
        return redirect(page, error="decision-incomplete")
    try:
        await upstream.post("underwriting", f"/v1/limit-requests/{request_id}/decision", body)
    except UpstreamRefused as refused:
        if refused.status in (401, 404, 503):
            raise
        return redirect(page, error=refused.slug)
    return redirect(page, notice="decided")
