"""Errors as RFC 9457 problem+json: one exception type, one catalogue of the problem types the
services answer (each with its status and when it is answered), mapped to HTTP in one place and
described in OpenAPI from the same catalogue."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("tci.problems")

SERVICES = frozenset({"underwriting", "claims", "collections"})


@dataclass(frozen=True)
class ProblemType:
    """One problem type: the `type` string a caller branches on, the HTTP status it comes with,
    a short title and one sentence saying when it is answered. `services` names the services
    that answer it (empty: any service, the shared plumbing raises it)."""

    slug: str
    status: int
    title: str
    description: str
    services: frozenset[str] = frozenset()

    def answered_by(self, service: str | None) -> bool:
        return service is None or not self.services or service in self.services


CATALOGUE: dict[str, ProblemType] = {}


def _entry(slug: str, status: int, title: str, description: str, *services: str) -> ProblemType:
    """Register one problem type in the catalogue (each slug once)."""
    assert slug not in CATALOGUE, f"problem type {slug!r} is catalogued twice"
    assert set(services) <= SERVICES, services
    kind = ProblemType(slug, status, title, description, frozenset(services))
    CATALOGUE[slug] = kind
    return kind


# ------------------------------------------------------------- any service (shared plumbing)
VALIDATION = _entry("validation", 422, "Invalid input",
                    "the request does not parse or a field breaks its rule; `errors` names each "
                    "field (`loc`) and why (`msg`)")  # fmt: skip
NOT_FOUND = _entry("not-found", 404, "Not found",
                   "the resource named in the path (or a record the request names) does not "
                   "exist, or the caller may not see it")  # fmt: skip
UNAUTHORIZED = _entry("unauthorized", 401, "Unauthorized",
                      "the request carries no bearer token, or one that is malformed, badly "
                      "signed, expired or not valid yet")  # fmt: skip
FORBIDDEN = _entry("forbidden", 403, "Forbidden",
                   "the caller's role may not call this route")  # fmt: skip
METHOD_NOT_ALLOWED = _entry("method-not-allowed", 405, "Method not allowed",
                            "the path exists but not with this method; `Allow` lists the "
                            "methods it takes")  # fmt: skip
PAYLOAD_TOO_LARGE = _entry("payload-too-large", 413, "Payload too large",
                           "the request body (or an uploaded document) is larger than the "
                           "service accepts")  # fmt: skip
RATE_LIMITED = _entry("rate-limited", 429, "Rate limited",
                      "the caller sent more requests than its tier allows; retry after "
                      "`Retry-After` seconds")  # fmt: skip
SERVICE_UNAVAILABLE = _entry("service-unavailable", 503, "Service unavailable",
                             "the database or a peer service cannot be reached now; retry after "
                             "`Retry-After` seconds")  # fmt: skip
INTERNAL_ERROR = _entry("internal-error", 500, "Internal error",
                        "an unexpected error; the detail quotes the request id to report")  # fmt: skip
UPSTREAM_ERROR = _entry("upstream-error", 502, "Upstream error",
                        "a peer service answered what it should not; `detail` names the peer "
                        "and its status, and `upstream_error` its problem in short when it "
                        "answered one")  # fmt: skip
HTTP_ERROR = _entry("http-error", 400, "HTTP error",
                    "any other HTTP error the web framework raises, with its own status (none "
                    "is expected)")  # fmt: skip
IDEMPOTENCY_KEY_REUSED = _entry("idempotency-key-reused", 422, "Idempotency key reused",
                                "the Idempotency-Key was already used with a different "
                                "request")  # fmt: skip
IDEMPOTENCY_KEY_IN_USE = _entry("idempotency-key-in-use", 409, "Idempotency key in use",
                                "a request with this Idempotency-Key is still being processed; "
                                "retry after `Retry-After` seconds")  # fmt: skip
CURRENCY_MISMATCH = _entry("currency-mismatch", 422, "Currency mismatch",
                           "an amount is given in another currency than the policy's (or the "
                           "case's): there is no conversion; `loc` names the field")  # fmt: skip

# ------------------------------------------------------------------------- underwriting
ALREADY_DECIDED = _entry("already-decided", 409, "Already decided",
                         "the limit request, claim or dispute was already decided: it takes no "
                         "other decision (but an approved claim on which nothing can be paid, "
                         "its buyer sanctioned or its indemnity nil, may be rejected)",
                         "underwriting", "claims", "collections")  # fmt: skip
ALREADY_ASSIGNED = _entry("already-assigned", 409, "Already assigned",
                          "the bank is already assigned to this policy",
                          "underwriting")  # fmt: skip
BUYER_EXISTS = _entry("buyer-exists", 409, "Buyer exists",
                      "a buyer with this country and registration number is already registered; "
                      "`existing_buyer_id` names it", "underwriting")  # fmt: skip
DECLARER_REQUIRED = _entry("declarer-required", 409, "Declarer required",
                           "several policyholders' declarations of indicators on the buyer are "
                           "pending; `policyholder_id` names the one to confirm "
                           "(`pending_declarers` lists them)", "underwriting")  # fmt: skip
NO_PENDING_DECLARATION = _entry("no-pending-declaration", 409, "No pending declaration",
                                "the policyholder named has no pending declaration of "
                                "indicators on the buyer (`pending_declarers` lists those "
                                "that have)", "underwriting")  # fmt: skip
POLICY_OVERLAP = _entry("policy-overlap", 409, "Policy overlap",
                        "the policyholder already has a policy in this currency whose dates "
                        "overlap; `existing_policy_id` names it", "underwriting")  # fmt: skip
SANCTION_EXISTS = _entry("sanction-exists", 409, "Sanction exists",
                         "the country or buyer is already on the sanctions list; "
                         "`existing_sanction_id` names the listing (lifting it lifts the "
                         "sanction)", "underwriting")  # fmt: skip
DUE_BEFORE_SHIPMENT = _entry("due-before-shipment", 422, "Due before shipment",
                             "an invoice's due date is before its shipment date",
                             "underwriting")  # fmt: skip
SINGLE_BUYER_CAP_EXCEEDED = _entry("single-buyer-cap-exceeded", 422,
                                   "Single-buyer cap exceeded",
                                   "a limit granted, recorded or changed by a person is above "
                                   "the policy's single-buyer cap", "underwriting")  # fmt: skip
BUYER_NOT_COVERED = _entry("buyer-not-covered", 422, "Buyer not covered",
                           "the buyer is insolvent, sanctioned (it or its country) or not "
                           "insurable: no one may grant or raise a limit on it (a refusal, or a "
                           "cut, is always possible)", "underwriting")  # fmt: skip
RETROACTIVE_REDUCTION = _entry("retroactive-reduction", 422, "Retroactive reduction",
                               "a reduction or withdrawal of a limit, or shorter payment terms, "
                               "applies only to shipments from tomorrow on "
                               "(`earliest_effective_from` names the first day allowed)",
                               "underwriting")  # fmt: skip
POLICY_INACTIVE = _entry("policy-inactive", 422, "Policy inactive",
                         "the policy has ended (`end_date`): a limit on it no longer changes, as "
                         "a limit request on it is refused (`policy_inactive`)",
                         "underwriting")  # fmt: skip

# ------------------------------------------------------------------------------- claims
POLITICAL_RISK_NOT_COVERED = _entry("political-risk-not-covered", 422,
                                    "Political risk not covered",
                                    "a political claim on a policy without political risk "
                                    "cover", "claims")  # fmt: skip
CLAIM_TOO_EARLY = _entry("claim-too-early", 422, "Claim too early",
                         "the claim's filing window has not opened yet; `first_filing_date` "
                         "says when it does", "claims")  # fmt: skip
CLAIM_TIME_BARRED = _entry("claim-time-barred", 422, "Claim time-barred",
                           "the claim's filing window has closed (`filing_deadline`)",
                           "claims")  # fmt: skip
INVOICE_ALREADY_CLAIMED = _entry("invoice-already-claimed", 409, "Invoice already claimed",
                                 "an invoice is held by another live claim; `claims` names "
                                 "them", "claims")  # fmt: skip
INVOICE_DIFFERS_FROM_NOTIFICATION = _entry("invoice-differs-from-notification", 422,
                                           "Invoice differs from its notification",
                                           "an invoice notified overdue is claimed with another "
                                           "shipment date, a due date before its original one "
                                           "or an amount above the one notified in time; "
                                           "`notified` gives what was notified",
                                           "claims")  # fmt: skip
UNSUPPORTED_MEDIA_TYPE = _entry("unsupported-media-type", 415, "Unsupported media type",
                                "a document's type is not one the claims service accepts, or "
                                "its content is not of the type declared", "claims")  # fmt: skip
UNKNOWN_INVOICE = _entry("unknown-invoice", 422, "Unknown invoice",
                         "a dispute names an invoice that is not in the claim", "claims")  # fmt: skip
ALREADY_PAID = _entry("already-paid", 409, "Already paid",
                      "the claim was paid: it is paid once", "claims")  # fmt: skip
CLAIM_ON_HOLD = _entry("claim-on-hold", 409, "Claim on hold",
                       "a dispute is open: the claim holds until it is settled", "claims")  # fmt: skip
CLAIM_LAPSED = _entry("claim-lapsed", 422, "Claim lapsed",
                      "the documents were not all given by their due date: the claim has lapsed",
                      "claims")  # fmt: skip
DOCUMENTS_MISSING = _entry("documents-missing", 422, "Documents missing",
                           "the claim is assessed only once its documents are complete; "
                           "`missing_documents` names them", "claims")  # fmt: skip
NOT_ASSESSED = _entry("not-assessed", 422, "Not assessed",
                      "a claim is approved only once it is assessed", "claims")  # fmt: skip
NOT_APPROVED = _entry("not-approved", 409, "Not approved",
                      "only an approved claim is paid (a state conflict: the claim is not "
                      "approved yet, or was rejected); `status_now` names its status", "claims")  # fmt: skip
CAPS_EXCEEDED = _entry("caps-exceeded", 409, "Caps exceeded",
                       "claims approved or paid on the policy leave less of its caps than this "
                       "claim's indemnity; `cap_left` says how much", "claims")  # fmt: skip
ASSESSMENT_OUTDATED = _entry("assessment-outdated", 409, "Assessment outdated",
                             "claims approved since the assessment leave less of the policy's "
                             "caps, or of the buyer's credit limit (`limit_used_by` names those "
                             "claims), than it assessed: assess the claim again",
                             "claims")  # fmt: skip
PLAN_EXCEEDS_DEBT = _entry("plan-exceeds-debt", 422, "Plan exceeds debt",
                           "the instalments of a payment plan add up to more than is owed",
                           "claims")  # fmt: skip
NOT_OVERDUE = _entry("not-overdue", 422, "Not overdue",
                     "an overdue notification names an invoice that is not past due, or a "
                     "mandate (a collection case with no claim) names none that is past due, "
                     "so there is no debt to collect yet (`oldest_due_date` names its oldest "
                     "due date)", "claims", "collections")  # fmt: skip
EXTENSION_TOO_LONG = _entry("extension-too-long", 422, "Extension too long",
                            "the policyholder moves a due date on its own by at most the "
                            "policy's maximum extension", "claims")  # fmt: skip
BUYER_SANCTIONED = _entry("buyer-sanctioned", 422, "Buyer sanctioned",
                          "the claim's buyer, or its country, is sanctioned: no indemnity is paid "
                          "on it, so the claim is neither approved nor paid, even one assessed or "
                          "approved before the listing (such a claim may be rejected, which frees "
                          "its share of the caps)", "claims")  # fmt: skip
NIL_INDEMNITY = _entry("nil-indemnity", 422, "Nil indemnity",
                       "the claim's indemnity is nil, so nothing is owed: it is neither approved "
                       "nor paid (reject it as nothing payable); the detail says which step of "
                       "the sum leaves nothing", "claims")  # fmt: skip

# -------------------------------------------------------------------------- collections
CASE_EXISTS = _entry("case-exists", 409, "Case exists",
                     "the claim already has a collection case, or a live case of the creditor "
                     "already collects an invoice of the mandate; `case_id` names it",
                     "collections")  # fmt: skip
CASE_CLOSED = _entry("case-closed", 409, "Case closed",
                     "a closed case takes no more activities or payments", "collections")  # fmt: skip
NO_OPEN_DISPUTE = _entry("no-open-dispute", 422, "No open dispute",
                         "only a case on hold has a dispute to resolve", "collections")  # fmt: skip
OVERPAYMENT = _entry("overpayment", 422, "Overpayment",
                     "a payment is more than the case has outstanding; `outstanding` says how "
                     "much", "collections")  # fmt: skip
PROMISE_EXCEEDS_OUTSTANDING = _entry("promise-exceeds-outstanding", 422,
                                     "Promise exceeds outstanding",
                                     "a promise to pay, with the case's open promises "
                                     "(not yet due, not yet paid), is for more than the case "
                                     "has outstanding; `outstanding` says how much, "
                                     "`promised_open` what the open promises (`open_promises`) "
                                     "still await, `promisable` what may still be promised",
                                     "collections")  # fmt: skip
WEBHOOK_URL_REFUSED = _entry("webhook-url-refused", 422, "Webhook URL refused",
                             "a webhook endpoint's URL is not https, names a user or password, "
                             "or its host resolves to a private, loopback, link-local, "
                             "multicast, reserved or unspecified address (development allows "
                             "http and loopback)")  # fmt: skip


class Problem(Exception):
    """A failure the caller can act on: a catalogued problem type (its `type` and status), a
    sentence, and extra fields. `status` overrides the type's only for `HTTP_ERROR`."""

    def __init__(
        self, kind: ProblemType, detail: str, *, status: int | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.status = status or kind.status
        self.type = kind.slug
        self.title = HTTPStatus(self.status).phrase
        self.detail = detail
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        content: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            content["instance"] = instance
        content.update(self.extra)
        return content


def not_found(what: str, ident: str) -> Problem:
    return Problem(NOT_FOUND, f"{what} {ident!r} does not exist")


def unauthorized(detail: str) -> Problem:
    return Problem(UNAUTHORIZED, detail)


def forbidden(detail: str) -> Problem:
    return Problem(FORBIDDEN, detail)


def conflict(kind: ProblemType, detail: str, **extra: Any) -> Problem:
    """A 409 problem (`kind` is a catalogued 409 type)."""
    return Problem(kind, detail, **extra)


def unprocessable(kind: ProblemType, detail: str, **extra: Any) -> Problem:
    """A 422 problem (`kind` is a catalogued 422 type)."""
    return Problem(kind, detail, **extra)


def invalid(loc: list[str | int], msg: str) -> Problem:
    """A 422 validation problem for one field, shaped like FastAPI's own validation errors."""
    return Problem(VALIDATION, msg, errors=[{"loc": loc, "msg": msg, "type": "value_error"}])


# A request holding an Idempotency-Key finishes within a second or so, or its claim expires.
_IN_USE_RETRY_AFTER_SECONDS = "1"


def problem_response(
    problem: Problem, request: Request | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    headers = dict(headers or {})
    if problem.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if problem.kind is IDEMPOTENCY_KEY_IN_USE:  # its twin is still running: when to ask again
        headers.setdefault("Retry-After", _IN_USE_RETRY_AFTER_SECONDS)
    instance = request.url.path if request is not None else None
    return JSONResponse(
        problem.body(instance), status_code=problem.status, media_type=PROBLEM_JSON, headers=headers
    )


_REPR = re.compile(r"""\bDecimal\((['"])([^()'"]*)\1\)""")


def _json_safe(value: Any) -> Any:
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)


def plain_message(msg: Any) -> str:
    """A validation message as a caller reads it: no Python repr (`Decimal('10.001')` is shown
    as 10.001), no "Value error, " prefix."""
    text = str(msg).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return _REPR.sub(lambda m: m.group(2), text)


def validation_problem(errors: list[dict[str, Any]] | Any) -> Problem:
    """A 422 problem from validation errors: each item only `loc`, `msg` (plain) and `type`."""
    items = [
        {
            "loc": [_json_safe(p) for p in e.get("loc", ())],
            "msg": plain_message(e.get("msg", "")),
            "type": str(e.get("type", "value_error")),
        }
        for e in errors
    ]
    first = items[0]["msg"] if items else "invalid input"
    return Problem(VALIDATION, f"invalid input: {first}", errors=items)


def is_json_media(content_type: str | None) -> bool:
    """A `Content-Type` naming JSON: `application/json` or a `+json` type, any parameters."""
    if content_type is None:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def body_not_json(request: Request, problem: Problem) -> Problem:
    """A JSON body refused as a whole (`loc` is the body itself) when it was not sent as JSON:
    the route read no JSON at all, so the problem says to send `Content-Type: application/json`
    rather than repeat what the parser says of a body it never parsed."""
    content_type = request.headers.get("content-type")
    errors = problem.extra.get("errors") or []
    if _expects_form(request):
        return _body_not_form(content_type, problem, errors)
    if is_json_media(content_type) or not any(e["loc"] == ["body"] for e in errors):
        return problem
    sent = content_type.split(";", 1)[0].strip() if content_type else ""
    detail = ("the body must be JSON sent with Content-Type: application/json; it was sent "
              + (f"as {sent!r}" if sent else "without a Content-Type"))  # fmt: skip
    fixed = [{**e, "msg": detail} if e["loc"] == ["body"] else e for e in errors]
    return Problem(VALIDATION, detail, errors=fixed)


def _expects_form(request: Request) -> bool:
    """Whether the route matched reads its body as a form (`multipart/form-data`: an upload)."""
    body = getattr(request.scope.get("route"), "body_field", None)
    return body is not None and isinstance(body.field_info, params.Form)


def _body_not_form(content_type: str | None, problem: Problem, errors: list[Any]) -> Problem:
    """A form's fields all missing because the body was not sent as a form (JSON, say): the
    problem says to send `multipart/form-data` rather than list every field as required."""
    sent = content_type.split(";", 1)[0].strip().lower() if content_type else ""
    if sent == "multipart/form-data" or not errors or any(e["loc"][:1] != ["body"] for e in errors):
        return problem
    detail = ("the body must be a form sent with Content-Type: multipart/form-data; it was sent "
              + (f"as {sent!r}" if sent else "without a Content-Type"))  # fmt: skip
    return Problem(VALIDATION, detail, errors=[{**e, "msg": detail} for e in errors])


_STATUS_TYPES = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED, 413: PAYLOAD_TOO_LARGE}
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method the request's path is served with, as the app's router matches it (RFC 9110:
    a 405's `Allow` lists them all; the router's own 405 names only the first route it matched,
    though a path is often served by two: `GET` and `POST /v1/policies`)."""
    routes = request.app.router.routes

    def served(method: str) -> bool:
        asked = {**request.scope, "method": method}
        return any(route.matches(asked)[0] is Match.FULL for route in routes)

    return [method for method in HTTP_METHODS if served(method)]


def without_trailing_slash(request: Request) -> str | None:
    """The path the request meant when it is served only without its trailing slash (the
    services do not redirect: a 307 answers with no body, and behind a proxy with the wrong
    scheme), else None."""
    path = request.url.path
    if len(path) < 2 or not path.endswith("/"):
        return None
    meant = path.rstrip("/")
    asked = {**request.scope, "path": meant}
    if any(route.matches(asked)[0] is not Match.NONE for route in request.app.router.routes):
        return meant
    return None


def install_problem_handlers(app: FastAPI) -> None:
    """Every error the app answers is problem+json; unexpected ones are handled by the middleware."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(body_not_json(request, validation_problem(exc.errors())), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # A body that cannot be read (not UTF-8, not JSON, broken multipart) is invalid input.
            detail = exc.detail if isinstance(exc.detail, str) else "the body cannot be read"
            return problem_response(
                Problem(VALIDATION, detail, errors=[{"loc": ["body"], "msg": detail}]),
                request,
            )
        kind = _STATUS_TYPES.get(exc.status_code, HTTP_ERROR)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        meant = without_trailing_slash(request) if exc.status_code == 404 else None
        if meant is not None:
            detail = f"no resource at {request.url.path}: the path is {meant}, without the slash"
        problem = Problem(kind, detail, status=exc.status_code)
        # Keep what the exception says in its headers; a 405's `Allow` names every method served.
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request)) or headers.get("Allow", "")
        return problem_response(problem, request, headers)


def answered_with(status: int, service: str | None = None) -> list[ProblemType]:
    """The catalogued problem types a status carries (those `service` answers, if named)."""
    return [k for k in CATALOGUE.values() if k.status == status and k.answered_by(service)]


PROBLEM_COMPONENT = "Problem"
VALIDATION_PROBLEM_COMPONENT = "ValidationProblem"


def problem_components() -> dict[str, dict[str, Any]]:
    """The named problem+json schemas every error answer refers to: `Problem`, and
    `ValidationProblem` (a 422: a problem that may name each field in `errors`), with the
    extension members the services add, typed."""
    text = {"type": "string"}
    date = {"type": "string", "format": "date"}
    money = {"$ref": "#/components/schemas/MoneyModel"}
    catalogue = "".join(
        f"\n- `{k.slug}` ({k.status}): {k.description}." for k in CATALOGUE.values()
    )
    members: dict[str, Any] = {
        "type": {**text, "description": "the problem type a caller branches on:" + catalogue},
        "title": text,
        "status": {"type": "integer"},
        "detail": text,
        "instance": {**text, "description": "the request's path"},
        "existing_policy_id": {**text, "description": "`policy-overlap`: the policy it overlaps"},
        "existing_buyer_id": {**text, "description": "`buyer-exists`: the buyer already known"},
        "pending_declarers": {"type": "array", "items": {"type": ["string", "null"]},
                              "description": "`declarer-required`, `no-pending-declaration`: "
                              "the policyholders whose declarations are pending (null: one "
                              "declared before they were kept per policyholder)"},
        "existing_sanction_id": {**text, "description": "`sanction-exists`: the listing already "
                                 "there (lifting it lifts the sanction)"},
        "filing_deadline": {**date, "description": "the last day a claim may be filed"},
        "first_filing_date": {**date, "description": "`claim-too-early`: the first day"},
        "status_now": {**text, "description": "the status the resource is in now"},
        "upstream_error": {
            "type": "object", "title": "UpstreamProblem",
            "properties": {"type": text, "title": text, "status": {"type": "integer"},
                           "detail": text},
            "description": "`upstream-error`: the peer's problem in short (its type, title, "
            "status and the start of its detail), when it answered one"},
        "decided_status": {**text, "description": "`already-decided`: the decision taken"},
        "missing_documents": {"type": "array", "items": text,
                              "description": "`documents-missing`: the kinds still missing"},
        "documents_due": {**date, "description": "`claim-lapsed`: when documents were due"},
        "earliest_effective_from": {**date, "description": "`retroactive-reduction`: the "
                                    "first day a reduction may take effect"},
        "end_date": {**date, "description": "`policy-inactive`: the day the policy ended"},
        "single_buyer_cap": {**money, "description": "`single-buyer-cap-exceeded`: the cap"},
        "cap_left": {**money, "description": "what the policy's caps leave"},
        "limit_used_by": {"type": "object", "additionalProperties": money,
                          "description": "`assessment-outdated`: the claims approved or paid on "
                          "the policy and buyer, each with what it covered of the buyer's credit "
                          "limit"},
        "outstanding": {**money, "description": "`overpayment`, `promise-exceeds-outstanding`: "
                        "what is outstanding"},
        "promised_open": {**money, "description": "`promise-exceeds-outstanding`: what the "
                          "case's open promises still await"},
        "promisable": {**money, "description": "`promise-exceeds-outstanding`: what may still "
                       "be promised"},
        "open_promises": {"type": "array", "items": text,
                          "description": "`promise-exceeds-outstanding`: the open promises "
                          "(ids of their `promise_to_pay` activities), earliest due first"},
        "open_disputes": {"type": "array", "items": text,
                          "description": "`already-decided` on a collection case's dispute: the "
                          "disputes still open"},
        "claims": {"type": "object", "additionalProperties": text,
                   "description": "`invoice-already-claimed`: each invoice's claim"},
        "notified": {"type": "object", "additionalProperties": {"type": "object"},
                     "description": "`invoice-differs-from-notification`: per invoice, what its "
                     "notifications said (`shipment_date`, original `due_date`, `amount` "
                     "notified in time) and the fields claimed otherwise (`differs`)"},
        "invoice_numbers": {"type": "array", "items": text,
                            "description": "the invoice numbers the refusal is about"},
        "case_id": {**text, "description": "`case-exists`: the case already open"},
        "buyer_id": {**text, "description": "`buyer-sanctioned`: the buyer under sanctions"},
        "loc": {"type": "array", "items": {"anyOf": [text, {"type": "integer"}]},
                "description": "`currency-mismatch`: the field in the other currency; "
                "`not-overdue`: the due date that is not past due"},
        "expected_currency": {**text, "description": "`currency-mismatch`: the currency "
                              "expected"},
        "max_new_due_date": {**date, "description": "`extension-too-long`: the latest due "
                             "date the policyholder may set on its own"},
        "oldest_due_date": {**date, "description": "`not-overdue` on a mandate: the oldest due "
                            "date of its invoices, none of them past due"},
    }  # fmt: skip
    field_error = {
        "type": "object",
        "title": "FieldError",
        "properties": {
            "loc": {"type": "array", "items": {"anyOf": [text, {"type": "integer"}]}},
            "msg": text,
            "type": text,
        },
        "required": ["loc", "msg"],
    }
    required = ["type", "title", "status", "detail"]
    return {
        PROBLEM_COMPONENT: {
            "type": "object",
            "title": PROBLEM_COMPONENT,
            "description": "An error, as RFC 9457 problem+json.",
            "properties": members,
            "required": required,
        },
        "FieldError": field_error,
        VALIDATION_PROBLEM_COMPONENT: {
            "type": "object",
            "title": VALIDATION_PROBLEM_COMPONENT,
            "description": "Invalid input or a business rule refused (422): `errors` names each "
            "field that broke its rule (absent when a rule refused the request as a whole).",
            "properties": {
                **members,
                "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}},
            },
            "required": required,
        },
    }


def problem_answer(status: int, service: str | None = None) -> dict[str, Any]:
    """The OpenAPI response for one problem+json status: the named problem schema, and the
    problem types it can carry, each with when it is answered, in the description and listed in
    `x-problem-types`."""
    kinds = answered_with(status, service)
    description = HTTPStatus(status).phrase
    if kinds:
        description += ", one of these problem types:\n" + "".join(
            f"\n- `{k.slug}`: {k.description}." for k in kinds
        )
    component = VALIDATION_PROBLEM_COMPONENT if status == 422 else PROBLEM_COMPONENT
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{component}"}}},
        "x-problem-types": [k.slug for k in kinds],
    }


def problem_responses(
    *statuses: int, service: str | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring the problem+json answers a route can give, each
    listing the catalogue's problem types of its status (`describe_problems` narrows them to
    the service's own once the app is built)."""
    return {s: problem_answer(s, service) for s in statuses}


def describe_problems(openapi: Mapping[str, Any], service: str) -> None:
    """Rewrite every problem+json response of an OpenAPI document (in place) to list the
    problem types its status carries in `service`."""
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for status, answer in operation.get("responses", {}).items():
                content = answer.get("content", {})
                if str(status).isdigit() and PROBLEM_JSON in content:
                    answer.update(problem_answer(int(status), service))


def created_responses(description: str = "Created") -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entry for a 201 that names the new resource in `Location`."""
    location = {"description": "the new resource's path", "schema": {"type": "string"}}
    return {201: {"description": description, "headers": {"Location": location}}}
