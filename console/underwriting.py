"""The underwriter's pages: the referral queue, a request with everything behind the engine's
answer and the decision on it; a buyer with its grade history and signals (and recording one);
a policy's limits with their history and its portfolio health; reducing or withdrawing a limit;
a country's risk level."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from babel import Locale
from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from console.forms import money_sent, typed_amount, typed_date
from console.i18n import Translator
from console.session import CsrfDep, UnderwriterDep
from console.upstream import (
    SERVICE_NAMES,
    FormKey,
    Upstream,
    UpstreamDep,
    UpstreamRefused,
    gather_all,
)
from console.web import (
    PlainIds,
    form_refused,
    form_sent_back,
    redirect,
    redirect_with_outcome,
    render,
    today,
    translator,
)
from services.underwriting.rules.limit_changes import change_effective_from, earliest_reduction_date
from services.underwriting.rules.policy import insurable
from shared.contracts import UNDERWRITER_SIGNAL_KINDS
from shared.countries import country_codes
from shared.pagination import MAX_LIMIT

router = APIRouter(prefix="/underwriting", dependencies=[PlainIds])
DECISIONS = ("approve", "partially_approve", "refuse")
SIGNAL_KINDS: tuple[str, ...] = UNDERWRITER_SIGNAL_KINDS  # the services send the others
LIMIT_CHANGES = ("increase", "reduce", "withdraw")
LIMIT_CHANGE_CHOSEN = "reduce"  # the change the form offers first (an underwriter's usual act)
# A limit's history entries the services word themselves, in English (a request's outcome, a
# signal's effect); the others carry the reason a person typed.
SERVICE_WORDED_SOURCES = ("request", "signal")
COUNTRY_RISK_LEVELS = (1, 2, 3, 4)  # the API's CountryRiskSet accepts these
# A buyer's indicators (the API's IndicatorsIn), in the order the buyer's page lists them.
INDICATORS = ("annual_revenue", "equity", "current_ratio", "dso_days", "dso_prior_year_days",
              "overdue_ratio", "litigation_count", "management_changes_12m")  # fmt: skip
# The grade factor the API adds (value "true") when an insolvency grades the buyer: its grade
# is then the insolvent grade, whatever the points.
INSOLVENCY_FACTOR = "insolvency"
# The engine's reason that the buyer is related to the policyholder (so not insurable under it).
RELATED_REASON = "buyer_related"


async def buyers_by_id(upstream: Upstream, ids: set[str]) -> dict[str, dict[str, Any]]:
    """The buyers named, read in one list request per hundred (a read refused is left out, and
    the page says so)."""
    return await upstream.by_ids("underwriting", "/v1/buyers", ids)


def insolvent(buyer: dict[str, Any], on: dt.date) -> bool:
    """The buyer is insolvent: its grade carries the insolvency factor, or its insolvency
    began on or before `on`."""
    if any(f.get("factor") == INSOLVENCY_FACTOR and f.get("value") == "true"
           for f in buyer.get("grade_factors") or []):  # fmt: skip
        return True
    since = buyer.get("insolvent_since")
    return isinstance(since, str) and dt.date.fromisoformat(since) <= on


async def sanctions_read(upstream: Upstream) -> dict[str, Any] | None:
    """The sanctions list, one read of the API's largest page (a page's only extra call for a
    buyer's standing); None when it could not be read (the page says so)."""
    found: dict[str, Any] | None = await upstream.optional(
        upstream.get("underwriting", "/v1/sanctions", limit=MAX_LIMIT)
    )
    return found


def buyer_standing(buyer: dict[str, Any] | None, sanctions: dict[str, Any] | None, on: dt.date,
                   *, related: bool = False) -> dict[str, Any]:  # fmt: skip
    """Why no one may grant or raise a limit on the buyer (underwriting's `why_not_covered`):
    `reasons`, each of insolvent, sanctioned (it or its country), not insurable (its legal form,
    or `related` to the policyholder); and `sanctions_unknown` when the sanctions list was not
    read whole and does not name it (then whether it is sanctioned is not said)."""
    if buyer is None:
        return {"reasons": [], "sanctions_unknown": False}
    reasons = []
    if insolvent(buyer, on):
        reasons.append("insolvent")
    listed = (sanctions or {}).get("items") or []
    sanctioned = any(s.get("buyer_id") == buyer["id"] or s.get("country") == buyer["country"]
                     for s in listed)  # fmt: skip
    if sanctioned:
        reasons.append("sanctioned")
    legal_form = buyer.get("legal_form")
    if legal_form and not insurable(legal_form, related):
        reasons.append("not_insurable_related" if related else "not_insurable")
    unknown = not sanctioned and (sanctions is None or bool(sanctions.get("next_cursor")))
    return {"reasons": reasons, "sanctions_unknown": unknown}


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
    """The policy's limits, each with its buyer's exposure and headroom: the exposure of exactly
    the listed limits' buyers (it lists the buyers owed without a limit too, by buyer id),
    matched by buyer; an exposure read refused is left out, and the page says so."""
    limits = await upstream.every("underwriting", f"/v1/policies/{policy_id}/limits", limit)
    exposure_of = await upstream.by_ids("underwriting", f"/v1/policies/{policy_id}/exposure",
                                        {item["buyer_id"] for item in limits}, key="buyer_id")  # fmt: skip
    return [{"limit": item, "exposure": exposure_of.get(item["buyer_id"])} for item in limits]


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
    country_risk, limits, sanctions = await gather_all(
        upstream.get("underwriting", f"/v1/country-risks/{buyer['country']}"),
        limits_with_exposure(upstream, policy["id"], request.app.state.settings.console_list_limit),
        sanctions_read(upstream),
    )
    names = await buyers_by_id(upstream, {row["limit"]["buyer_id"] for row in limits})
    related = any(r.get("code") == RELATED_REASON for r in limit_request.get("reasons") or [])
    return render(request, "underwriting/request.html", limit_request=limit_request, buyer=buyer,
                  policy=policy, country_risk=country_risk, limits=limits, buyers=names,
                  decisions=DECISIONS,
                  country_name=country_names(translator(request)).get(buyer["country"], ""),
                  standing=buyer_standing(buyer, sanctions, today(request),
                                          related=related))  # fmt: skip


def decision_body(decision: str, amount: str, currency: str, reason: str,
                  babel_locale: str) -> dict[str, Any] | None:  # fmt: skip
    """What the API is sent, or None when the form is not complete: a partial approval names
    its amount (a positive amount as the locale writes one), every decision its reason."""
    if decision not in DECISIONS or not reason.strip():
        return None
    body: dict[str, Any] = {"decision": decision, "reason": reason.strip()}
    if decision == "partially_approve":
        value = typed_amount(amount, babel_locale)
        if value is None:
            return None
        body["amount"] = money_sent(value, currency)
    return body


@router.post("/requests/{request_id}/decision", dependencies=[CsrfDep])
async def decide(
    request_id: str, request: Request, _: UnderwriterDep, upstream: UpstreamDep,
    decision: Annotated[str, Form()], reason: Annotated[str, Form()] = "",
    amount: Annotated[str, Form()] = "", currency: Annotated[str, Form()] = "",
    idempotency_key: FormKey = "",
) -> Response:  # fmt: skip
    """Approve, partially approve or refuse; a request decided meanwhile (409) is explained on
    its page, which then shows the decision that stands."""
    page = f"/underwriting/requests/{request_id}"
    body = decision_body(decision, amount, currency, reason, translator(request).babel_locale)
    if body is None:
        return await form_sent_back(request, page, "decision-incomplete")
    try:
        answer = await upstream.act("underwriting", f"/v1/limit-requests/{request_id}/decision",
                                    body, key=idempotency_key)  # fmt: skip
    except UpstreamRefused as refusal:
        if refusal.status in (401, 404):
            raise
        return await form_refused(request, page, refusal)
    return redirect(page, notice="form-replayed" if answer.replayed else "decided")


# ---------------------------------------------------------------- form values


def _count(text: str | None) -> int | None:
    """A count carried in a page's address after a form (shown only when it is one)."""
    return int(text) if text and text.isdecimal() else None


# ---------------------------------------------------------------- a buyer


@router.get("/buyers/{buyer_id}")
async def buyer_page(buyer_id: str, request: Request, _: UnderwriterDep,
                     upstream: UpstreamDep) -> Response:  # fmt: skip
    """A buyer: its grade and the factors behind it, the grade history (newest first), its
    signals, and the form to record one. A signal a service recorded (claims, collections: its
    `recorded_by` is the service's name) carries the service's English note, marked so."""
    limit = request.app.state.settings.console_list_limit
    path = f"/v1/buyers/{buyer_id}"
    buyer, grades, signals = await gather_all(
        upstream.get("underwriting", path),
        upstream.every("underwriting", f"{path}/grades", limit),
        upstream.every("underwriting", f"{path}/signals", limit),
    )
    country_risk, policies = await gather_all(
        upstream.get("underwriting", f"/v1/country-risks/{buyer['country']}"),
        upstream.by_ids("underwriting", "/v1/policies",
                        {s["policy_id"] for s in signals if s.get("policy_id")}),
    )  # fmt: skip
    factors = buyer.get("grade_factors") or []
    return render(request, "underwriting/buyer.html", buyer=buyer, grades=grades,
                  insolvent=insolvent(buyer, today(request)),
                  signals=signals, country_risk=country_risk,
                  country_name=country_names(translator(request)).get(buyer["country"], ""),
                  total_points=sum((Decimal(f["points"]) for f in factors), Decimal(0)),
                  signal_kinds=SIGNAL_KINDS, today=today(request).isoformat(),
                  highlighted=request.query_params.get("signal"),
                  limits_changed=_count(request.query_params.get("limits_changed")),
                  limits_not_halved=_count(request.query_params.get("limits_not_halved")),
                  service_callers=SERVICE_NAMES, indicator_names=INDICATORS,
                  policies=policies)  # fmt: skip


@router.post("/buyers/{buyer_id}/indicators/confirmation", dependencies=[CsrfDep])
async def confirm_indicators(buyer_id: str, request: Request, _: UnderwriterDep,
                             upstream: UpstreamDep, idempotency_key: FormKey = "",
                             policyholder_id: Annotated[str, Form()] = "",
                             unattributed: Annotated[str, Form()] = "") -> Response:  # fmt: skip
    """Confirm what one policyholder (`policyholder_id`; `unattributed`: the declaration kept
    from before declarations were per policyholder) declared about the buyer: the values then
    move its grade, which the page shows again with the limits the new grade changed (and those
    a halving left as they are), as after a signal; a refusal is explained there."""
    page = f"/underwriting/buyers/{buyer_id}"
    body: dict[str, str | None] | None = None
    if policyholder_id.strip():
        body = {"policyholder_id": policyholder_id.strip()}
    elif unattributed:
        body = {"policyholder_id": None}
    try:
        answer = await upstream.act("underwriting", f"/v1/buyers/{buyer_id}/indicators/confirmation",
                                    body, key=idempotency_key)  # fmt: skip
    except UpstreamRefused as refusal:
        if refusal.status in (401, 404):
            raise
        return await form_refused(request, page, refusal)
    return redirect(page, notice="form-replayed" if answer.replayed else "indicators-confirmed",
                    **limits_followed(answer.body))  # fmt: skip


@router.post("/buyers/{buyer_id}/signals", dependencies=[CsrfDep])
async def record_signal(
    buyer_id: str, request: Request, _: UnderwriterDep, upstream: UpstreamDep,
    kind: Annotated[str, Form()],
    observed_on: Annotated[str, Form()], details: Annotated[str, Form()] = "",
    policy_id: Annotated[str, Form()] = "", idempotency_key: FormKey = "",
) -> Response:  # fmt: skip
    """A signal on the buyer; its page then shows it with the grade before and after, and how
    many limits it changed."""
    page = f"/underwriting/buyers/{buyer_id}"
    day = typed_date(observed_on)
    if kind not in SIGNAL_KINDS or day is None:
        return await form_sent_back(request, page, "signal-incomplete")
    body: dict[str, Any] = {"kind": kind, "observed_on": day, "details": details.strip()}
    if policy_id.strip():
        body["policy_id"] = policy_id.strip()
    try:
        answer = await upstream.act("underwriting", f"/v1/buyers/{buyer_id}/signals", body,
                                    key=idempotency_key)  # fmt: skip
    except UpstreamRefused as refusal:
        if refusal.status == 404 and "policy_id" in body:  # the buyer was read: the policy
            return await form_sent_back(request, page, "signal-policy-unknown")
        if refusal.status in (401, 404):
            raise
        return await form_refused(request, page, refusal)
    recorded = answer.body
    return redirect(page, notice="form-replayed" if answer.replayed else "signal-recorded",
                    signal=recorded["id"], **limits_followed(recorded))  # fmt: skip


def limits_followed(graded: Any) -> dict[str, str | None]:
    """How many limits a new grade changed (`limit_changes`) and how many a halving left as
    they are (`limits_not_halved`), for the buyer's page to say: a signal's answer, or an
    indicators' confirmation's."""
    graded = graded if isinstance(graded, dict) else {}
    not_halved = len(graded.get("limits_not_halved") or [])
    return {"limits_changed": str(len(graded.get("limit_changes") or [])),
            "limits_not_halved": str(not_halved) if not_halved else None}  # fmt: skip


# ---------------------------------------------------------------- a policy


def ageing_chart(ageing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ageing buckets as bars of a chart drawn on the server: each bucket's share of the
    largest one (0 to 1), in the order the API answers them."""
    amounts = [Decimal(bucket["amount"]["amount"]) for bucket in ageing]
    largest = max(amounts, default=Decimal(0))
    return [{"bucket": bucket["bucket"], "amount": bucket["amount"],
             "share": float(amount / largest) if largest > 0 else 0.0}
            for bucket, amount in zip(ageing, amounts, strict=True)]  # fmt: skip


def warning_text(t: Translator, warning: dict[str, Any], names: dict[str, dict[str, Any]]
                 ) -> str:  # fmt: skip
    """A portfolio-health warning in the reader's language, its figures formatted for it (the
    API's own sentence, in English, for a warning the catalogue does not know)."""
    code = warning["code"]
    if not warning_known(t, warning):
        return str(warning["message"])
    buyer = names.get(warning.get("buyer_id") or "", {}).get("name", warning.get("buyer_id"))
    as_ratio = code != "buyer_current_ratio_low"
    figure, threshold = ((t.percent(warning[k], fraction=True) if as_ratio else
                          t.number(warning[k])) for k in ("figure", "threshold"))  # fmt: skip
    return t(f"health_warning.{code}", figure=figure, threshold=threshold, buyer=buyer)


def warning_known(t: Translator, warning: dict[str, Any]) -> bool:
    return t.has(f"health_warning.{warning['code']}")


@router.get("/policies/{policy_id}")
async def policy_page(policy_id: str, request: Request, _: UnderwriterDep,
                      upstream: UpstreamDep) -> Response:  # fmt: skip
    """A policy: its limits with the amount in force, exposure, headroom and history; its
    portfolio health with the warnings and a chart of the ageing buckets."""
    limit = request.app.state.settings.console_list_limit
    policy, health, limits = await gather_all(
        upstream.get("underwriting", f"/v1/policies/{policy_id}"),
        upstream.get("underwriting", f"/v1/policies/{policy_id}/portfolio-health"),
        limits_with_exposure(upstream, policy_id, limit),
    )
    named = ({row["limit"]["buyer_id"] for row in limits}
             | {row["buyer_id"] for row in health["concentration"]}
             | {w["buyer_id"] for w in health["warnings"] if w.get("buyer_id")})  # fmt: skip
    names = await buyers_by_id(upstream, named)
    t = translator(request)
    warnings = [{**w, "text": warning_text(t, w, names),
                 "lang": None if warning_known(t, w) else "en"} for w in health["warnings"]]  # fmt: skip
    return render(request, "underwriting/policy.html", policy=policy, health=health,
                  warnings=warnings, chart=ageing_chart(health["ageing"]), limits=limits,
                  buyers=names, highlighted=request.query_params.get("limit"),
                  service_worded=SERVICE_WORDED_SOURCES)  # fmt: skip


# ---------------------------------------------------------------- a limit's change


@router.get("/limits/{limit_id}/change")
async def limit_change_page(limit_id: str, request: Request, _: UnderwriterDep,
                            upstream: UpstreamDep) -> Response:  # fmt: skip
    """The form to raise, reduce or withdraw a limit, with the rule on when each applies: an
    increase from today, a reduction or withdrawal from tomorrow at the earliest, by default
    once the policy's reduction notice has run (the date field's bound and default follow the
    change chosen)."""
    credit_limit = await upstream.get("underwriting", f"/v1/limits/{limit_id}")
    policy, names, sanctions = await gather_all(
        upstream.get("underwriting", f"/v1/policies/{credit_limit['policy_id']}"),
        buyers_by_id(upstream, {credit_limit["buyer_id"]}),
        sanctions_read(upstream),
    )
    on = today(request)
    buyer = names.get(credit_limit["buyer_id"])
    # The service's own rule: a reduction or withdrawal applies from tomorrow at the earliest,
    # by default once the notice period has run (a withdrawal is a reduction to zero).
    default_from = change_effective_from(current=Decimal(1), new_amount=Decimal(0),
                                         requested=None, today=on,
                                         notice_days=policy["reduction_notice_days"])[0]  # fmt: skip
    return render(request, "underwriting/limit_change.html", limit=credit_limit, policy=policy,
                  service_worded=SERVICE_WORDED_SOURCES,
                  buyer=buyer, standing=buyer_standing(buyer, sanctions, on), changes=LIMIT_CHANGES,
                  chosen=LIMIT_CHANGE_CHOSEN, today=on.isoformat(), earliest=earliest_reduction_date(on).isoformat(),
                  notice_ends=default_from.isoformat())  # fmt: skip


def limit_change_body(change: str, amount: str, currency: str, effective_from: str,
                      reason: str, babel_locale: str) -> dict[str, Any] | None:  # fmt: skip
    """What the API is sent, or None when the form is not complete: an increase or a reduction
    names its new amount (as the locale writes one; an increase above zero), a withdrawal sets
    it to zero; the date is the API's default when left empty (an increase: today; a reduction:
    after the notice period)."""
    if change not in LIMIT_CHANGES or not reason.strip():
        return None
    value = (Decimal(0) if change == "withdraw"
             else typed_amount(amount, babel_locale, zero_allowed=change == "reduce"))  # fmt: skip
    if value is None:
        return None
    body: dict[str, Any] = {"new_amount": money_sent(value, currency), "reason": reason.strip()}
    if effective_from.strip():
        day = typed_date(effective_from)
        if day is None:
            return None
        body["effective_from"] = day
    return body


def goes_the_way_chosen(change: str, new_amount: Decimal, in_force: str) -> bool:
    """An increase is above the amount in force the form showed, a reduction below it (the
    service tells which a change is by its amount: a "reduction" above it would take effect as
    an increase, today). True when the form did not say what was in force."""
    try:
        shown = Decimal(in_force)
    except ArithmeticError:
        return True
    if change == "increase":
        return new_amount > shown
    return change != "reduce" or new_amount < shown


@router.post("/limits/{limit_id}/change", dependencies=[CsrfDep])
async def change_limit(
    limit_id: str, request: Request, _: UnderwriterDep, upstream: UpstreamDep,
    change: Annotated[str, Form()],
    currency: Annotated[str, Form()], policy_id: Annotated[str, Form()],
    amount: Annotated[str, Form()] = "", effective_from: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "", in_force: Annotated[str, Form()] = "",
    idempotency_key: FormKey = "",
) -> Response:  # fmt: skip
    """Raise, reduce or withdraw; a refusal (a retroactive reduction, above the single-buyer
    cap) is explained on the form, a change recorded is shown in the policy's limit history.
    An amount that does not go the way chosen (an "increase" below what is in force) is sent
    back, never recorded as the other. The amounts scheduled to start later that the change
    replaced (`cancelled`) are named in the notice, as they will not take effect."""
    form = f"/underwriting/limits/{limit_id}/change"
    body = limit_change_body(change, amount, currency, effective_from, reason,
                             translator(request).babel_locale)  # fmt: skip
    if body is None:
        return await form_sent_back(request, form, "limit-change-incomplete")
    if not goes_the_way_chosen(change, Decimal(body["new_amount"]["amount"]), in_force):
        return await form_sent_back(request, form, f"limit-change-not-{change}")
    try:
        answer = await upstream.act("underwriting", f"/v1/limits/{limit_id}/changes", body,
                                    key=idempotency_key)  # fmt: skip
    except UpstreamRefused as refusal:
        if refusal.status in (401, 404):
            raise
        return await form_refused(request, form, refusal)
    cancelled = (answer.body or {}).get("cancelled") or []
    return redirect_with_outcome(request, f"/underwriting/policies/{policy_id}", "cancelled",
                                 cancelled, limit=limit_id,
                                 notice="form-replayed" if answer.replayed else "limit-changed")  # fmt: skip


# ---------------------------------------------------------------- country risk


def country_names(t: Translator) -> dict[str, str]:
    """Every country's name in the reader's language: the catalogue's where it has one (Taiwan
    in Chinese: 中国台湾), else Babel's locale data."""
    territories = Locale.parse(t.babel_locale).territories
    return {code: t(f"country.{code}") if t.has(f"country.{code}") else territories.get(code, code)
            for code in country_codes()}  # fmt: skip


@router.get("/countries")
async def countries_page(request: Request, _: UnderwriterDep, upstream: UpstreamDep,
                         country: str = "") -> Response:  # fmt: skip
    """A country's risk level and the form to change it; after a change, how many buyers were
    graded again and limits changed, and the country's buyers with their grades now."""
    names = country_names(translator(request))
    chosen = country.strip().upper() if country.strip().upper() in names else None
    risk: dict[str, Any] | None = None
    buyers: list[dict[str, Any]] = []
    if chosen:
        limit = request.app.state.settings.console_list_limit
        risk, buyers = await gather_all(
            upstream.get("underwriting", f"/v1/country-risks/{chosen}"),
            upstream.every("underwriting", "/v1/buyers", limit, country=chosen),
        )
    query = request.query_params
    outcome = None
    if query.get("notice") == "country-risk-set" and chosen:
        outcome = {"level": _count(query.get("level")), "regraded": _count(query.get("regraded")),
                   "changed": _count(query.get("changed"))}  # fmt: skip
    t = translator(request)
    return render(request, "underwriting/countries.html", countries=sorted(
                      names.items(), key=lambda pair: t.sort_key(pair[1])), chosen=chosen, risk=risk,
                  buyers=buyers, levels=COUNTRY_RISK_LEVELS, outcome=outcome,
                  country_name=names.get(chosen or "", ""))  # fmt: skip


@router.post("/countries", dependencies=[CsrfDep])
async def set_country_risk(
    request: Request, _: UnderwriterDep, upstream: UpstreamDep,
    country: Annotated[str, Form()], level: Annotated[str, Form()] = "",
) -> Response:  # fmt: skip
    """Set a country's risk level; the page then says what the API re-evaluated."""
    code = country.strip().upper()
    known_level = level.isdecimal() and int(level) in COUNTRY_RISK_LEVELS
    if code not in country_codes() or not known_level:
        return redirect("/underwriting/countries", country=code or None,
                        error="country-risk-incomplete")  # fmt: skip
    try:
        answer = await upstream.send("underwriting", "PUT", f"/v1/country-risks/{code}",
                                     json={"level": int(level)})  # fmt: skip
    except UpstreamRefused as refusal:
        if refusal.status in (401, 503):
            raise
        return await form_refused(request, "/underwriting/countries", refusal, country=code)
    return redirect("/underwriting/countries", country=code, notice="country-risk-set",
                    level=str(answer["level"]), regraded=str(answer["buyers_regraded"]),
                    changed=str(answer["limits_changed"]))  # fmt: skip
