"""Underwriting routes: parse, authorise, call a use case, answer."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response

from services.underwriting import coverage as cov
from services.underwriting import limits as lim
from services.underwriting import service as uc
from services.underwriting.schemas import (
    IDS_PER_LIST,
    AssignmentCreate,
    AssignmentRead,
    BuyerCreate,
    BuyerGradedRead,
    BuyerList,
    BuyerRead,
    BuyerSignalList,
    BuyerSignalRead,
    CountryRiskRead,
    CountryRiskSet,
    CoverageBatchCreate,
    CoverageBatchRead,
    CoverageCheckCreate,
    CoverageRead,
    DecisionCreate,
    DeclarationCreate,
    DeclarationRead,
    ExposureList,
    ExternalLimitCreate,
    GradeHistoryList,
    IdQuery,
    IndicatorsConfirm,
    IndicatorsIn,
    LimitChangeCreate,
    LimitChangeRead,
    LimitList,
    LimitRead,
    LimitRequestCreate,
    LimitRequestList,
    LimitRequestRead,
    LimitRequestStatus,
    PolicyAndBuyerRead,
    PolicyCreate,
    PolicyRead,
    PortfolioHealthRead,
    PremiumRead,
    RecordedLimitRead,
    RegistrationNumberQuery,
    SanctionCreate,
    SanctionList,
    SanctionRead,
    SignalCreate,
    SignalRead,
)
from shared.auth import Caller, require
from shared.contracts import CountryCode, json_data
from shared.db import ReaderDep, ReadSessionDep, SessionDep, UnitsOfWorkDep
from shared.idempotency import CommandDep
from shared.pagination import KeyPageDep, Page, PageDep
from shared.problems import created_responses, problem_responses

router = APIRouter(prefix="/v1", tags=["underwriting"])

IdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
# `?id=a&id=b`: only the items with these ids (a page reads what it shows in one request).
IdsQuery = Annotated[
    list[IdQuery] | None,
    Query(alias="id", max_length=IDS_PER_LIST,
          description=f"only these ids (repeated, at most {IDS_PER_LIST})"),
]  # fmt: skip
BuyerIdsQuery = Annotated[
    list[IdQuery] | None,
    Query(alias="buyer_id", max_length=IDS_PER_LIST,
          description=f"only these buyers (repeated, at most {IDS_PER_LIST})"),
]  # fmt: skip
Underwriter = Annotated[Caller, Depends(require("underwriter"))]
Staff = Annotated[Caller, Depends(require("underwriter", "claims_handler", "collector"))]
PolicyReader = Annotated[
    Caller, Depends(require("underwriter", "claims_handler", "collector", "policyholder", "bank"))
]
PolicyholderOrStaff = Annotated[
    Caller, Depends(require("underwriter", "claims_handler", "collector", "policyholder"))
]
Policyholder = Annotated[Caller, Depends(require("policyholder"))]
CoverageCaller = Annotated[
    Caller, Depends(require("policyholder", "bank", "underwriter", "claims_handler"))
]

READ = problem_responses(401, 403, 404, 422)
WRITE = problem_responses(401, 403, 404, 409, 422)
CREATE = {**WRITE, **created_responses()}  # a 201 names the new resource in Location
# A policy of the same policyholder and currency whose dates overlap an existing one.
POLICY_WRITE = {
    **WRITE,
    409: {**WRITE[409], "description": "Conflict: `policy-overlap`, naming the policy it overlaps "
          "in `existing_policy_id`"},
}  # fmt: skip
POLICY_CREATE = {**POLICY_WRITE, **created_responses()}


def context(request: Request, session: SessionDep, caller: Caller) -> uc.Context:
    settings = request.app.state.settings
    return uc.Context(session=session, caller=caller, today=settings.today(), settings=settings)


# ---------------------------------------------------------------- policies


@router.post("/policies", status_code=201, response_model=PolicyRead, responses=POLICY_CREATE)
async def create_policy(
    body: PolicyCreate, request: Request, session: SessionDep, caller: Underwriter,
    cmd: CommandDep,
) -> Response:  # fmt: skip
    """Write a policy with every parameter of domain.md (defaults filled in)."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: uc.create_policy(ctx, body), status_code=201,
                         location=lambda p: f"/v1/policies/{p.id}")  # fmt: skip


@router.get("/policies", response_model=Page[PolicyRead], responses=READ)
async def list_policies(
    request: Request, session: SessionDep, caller: PolicyReader, page: PageDep,
    policyholder_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    ids: IdsQuery = None,
) -> Page[PolicyRead]:  # fmt: skip
    """Staff: every policy (`?policyholder_id=` for one policyholder's); a policyholder its own;
    a bank those assigned to it. `?id=` (repeated) keeps those of the ids named."""
    return await uc.list_policies(context(request, session, caller), policyholder_id, page,
                                  ids=ids)  # fmt: skip


@router.get("/policies/{policy_id}", response_model=PolicyRead, responses=READ)
async def get_policy(policy_id: IdPath, reader: ReaderDep, caller: PolicyReader) -> Response:
    # Read in one statement outside any transaction, built as plain JSON data and written out
    # once (FastAPI would validate and serialise a PolicyRead again).
    policy = await uc.get_policy(reader, caller, policy_id)
    return Response(json_data(policy), media_type="application/json")


@router.get("/policies/{policy_id}/buyers/{buyer_id}", response_model=PolicyAndBuyerRead,
            responses=READ)  # fmt: skip
async def get_policy_and_buyer(
    policy_id: IdPath, buyer_id: IdPath, reader: ReaderDep, caller: Staff
) -> Response:
    """The policy and a buyer's standing in one read (`buyer` null when there is no such buyer):
    what claims reads before it acts on a (policy, buyer), in one call instead of two."""
    found = await uc.get_policy_and_buyer(reader, caller, policy_id, buyer_id)
    return Response(json_data(found), media_type="application/json")


@router.post("/policies/{policy_id}/assignments", status_code=201,
             response_model=AssignmentRead, responses=CREATE)  # fmt: skip
async def assign_policy(
    policy_id: IdPath, body: AssignmentCreate, request: Request, session: SessionDep,
    caller: Underwriter, cmd: CommandDep,
) -> Response:  # fmt: skip
    """Make a bank loss payee of the policy: it may then check coverage under it."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: uc.assign_policy(ctx, policy_id, body.bank_id), status_code=201,
                         location=lambda a: f"/v1/policies/{policy_id}/assignments/{a.id}")  # fmt: skip


@router.get("/policies/{policy_id}/assignments/{assignment_id}", response_model=AssignmentRead,
            responses=READ)  # fmt: skip
async def get_assignment(
    policy_id: IdPath, assignment_id: IdPath, request: Request, session: ReadSessionDep,
    caller: PolicyReader,
) -> AssignmentRead:  # fmt: skip
    """A bank's assignment to a policy: staff and the policyholder read any of the policy's, a
    bank its own."""
    return await uc.get_assignment(context(request, session, caller), policy_id, assignment_id)


# ---------------------------------------------------------------- buyers


@router.post("/buyers", status_code=201, response_model=BuyerRead, responses=CREATE)
async def register_buyer(
    body: BuyerCreate, request: Request, session: SessionDep,
    caller: Annotated[Caller, Depends(require("underwriter", "policyholder"))], cmd: CommandDep,
) -> Response:  # fmt: skip
    """Register a buyer (unique per country and registration number); it is graded at once."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: uc.register_buyer(ctx, body), status_code=201,
                         location=lambda b: f"/v1/buyers/{b.id}")  # fmt: skip


@router.get("/buyers/{buyer_id}", response_model=BuyerRead, responses=READ)
async def get_buyer(
    buyer_id: IdPath, request: Request, session: ReadSessionDep, caller: PolicyholderOrStaff
) -> BuyerRead:
    """A buyer with its grade; staff also see the factors behind it."""
    return await uc.get_buyer(context(request, session, caller), buyer_id)


@router.get("/buyers/{buyer_id}/grades", response_model=GradeHistoryList, responses=READ)
async def list_buyer_grades(
    buyer_id: IdPath, request: Request, session: ReadSessionDep, caller: PolicyholderOrStaff,
    page: PageDep,
) -> GradeHistoryList:  # fmt: skip
    """A buyer's grade history, newest recorded first: each grade with the date it describes,
    its cause and country risk level; staff also see the factors."""
    return await uc.grade_history(context(request, session, caller), buyer_id, page)


@router.get("/buyers/{buyer_id}/signals", response_model=BuyerSignalList, responses=READ)
async def list_buyer_signals(
    buyer_id: IdPath, request: Request, session: ReadSessionDep, caller: PolicyholderOrStaff,
    page: PageDep,
) -> BuyerSignalList:  # fmt: skip
    """A buyer's signals, newest recorded first, each with its points and the grade before and
    after: staff every one; a policyholder those recorded under its own policies."""
    return await uc.buyer_signals(context(request, session, caller), buyer_id, page)


@router.get("/buyers/{buyer_id}/signals/{signal_id}", response_model=BuyerSignalRead,
            responses=READ)  # fmt: skip
async def get_buyer_signal(
    buyer_id: IdPath, signal_id: IdPath, request: Request, session: ReadSessionDep,
    caller: PolicyholderOrStaff,
) -> BuyerSignalRead:  # fmt: skip
    """One signal of a buyer, as its signal list shows it to the caller."""
    return await uc.buyer_signal(context(request, session, caller), buyer_id, signal_id)


@router.get("/buyers", response_model=BuyerList, responses=READ)
async def find_buyers(
    request: Request, session: SessionDep, caller: PolicyholderOrStaff, page: PageDep,
    country: CountryCode | None = None,
    registration_number: Annotated[RegistrationNumberQuery | None, Query()] = None,
    ids: IdsQuery = None,
) -> BuyerList:  # fmt: skip
    """Staff: every buyer. A policyholder: the buyers it registered or holds a limit or a limit
    request on, or any buyer looked up by its exact `country` and `registration_number`.
    `?id=` (repeated) keeps those of the ids named."""
    ctx = context(request, session, caller)
    return await uc.list_buyers(ctx, country, registration_number, page, ids=ids)


@router.post("/buyers/{buyer_id}/indicators", response_model=BuyerGradedRead, responses=WRITE)
async def update_indicators(
    buyer_id: IdPath, body: IndicatorsIn, request: Request, session: SessionDep,
    caller: Annotated[Caller, Depends(require("underwriter", "policyholder"))], cmd: CommandDep,
) -> Response:  # fmt: skip
    """A policyholder's indicators are kept as declared; an underwriter's are confirmed: they
    regrade the buyer, and its limits follow the new grade (halved when it newly reaches the
    halving grade, each change listed). They supersede a pending declaration of any indicator
    they give (confirmed later, it would put an older figure back); one declaring none of them
    stays pending, as declared, and is listed in `declarations`."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: lim.update_indicators(ctx, buyer_id, body))


@router.post("/buyers/{buyer_id}/indicators/confirmation", response_model=BuyerGradedRead,
             responses=WRITE)  # fmt: skip
async def confirm_indicators(
    buyer_id: IdPath, request: Request, session: SessionDep, caller: Underwriter,
    cmd: CommandDep, body: IndicatorsConfirm | None = None,
) -> Response:  # fmt: skip
    """An underwriter confirms the indicators one policyholder declared: they now move the
    grade, and its limits follow. The body's `policyholder_id` names the declaration (null: the
    one kept unattributed); without it (or without a body), the buyer's only pending one. Several
    pending and none named: 409 `declarer-required` (`pending_declarers` lists them); a
    declarer named with nothing pending: 409 `no-pending-declaration`; none pending and none
    named: the buyer as it is. The grade history takes an entry only when the buyer's
    indicators change."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: lim.confirm_indicators(ctx, buyer_id, body))


@router.post("/buyers/{buyer_id}/signals", status_code=201, response_model=SignalRead,
             responses=CREATE)  # fmt: skip
async def record_signal(
    buyer_id: IdPath, body: SignalCreate, request: Request, session: SessionDep,
    caller: Underwriter, cmd: CommandDep,
) -> Response:  # fmt: skip
    """A signal on a buyer: the new grade and every limit change it caused. An underwriter sends
    one of `insolvency_filing`, `court_judgment`, `payment_delay`, `management_change`,
    `registry_change`, `overdue_notified` and `arrears_cleared` (another kind: 422); the kinds
    of the closed loop (`claim_paid`, `protracted_default`, `collection_legal`,
    `collection_paid`) only a service token sends, from what its service saw."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: lim.record_signal(ctx, buyer_id, body), status_code=201,
                         location=lambda s: f"/v1/buyers/{buyer_id}/signals/{s.id}")  # fmt: skip


@router.put("/country-risks/{country}", response_model=CountryRiskRead, responses=WRITE)
async def set_country_risk(
    country: CountryCode, body: CountryRiskSet, request: Request, session: SessionDep,
    caller: Underwriter, cmd: CommandDep, units: UnitsOfWorkDep,
) -> Response:  # fmt: skip
    """Set a country's risk level (1 low … 4 high): every buyer of the country is graded again
    and its limits follow (the answer counts them), a slice of the book per transaction."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: lim.set_country_risk(ctx, units, country, body.level),
                         own_transactions=True)  # fmt: skip


@router.get("/country-risks/{country}", response_model=CountryRiskRead, responses=READ)
async def get_country_risk(
    country: CountryCode, request: Request, session: SessionDep, caller: Staff
) -> CountryRiskRead:
    return await uc.get_country_risk(context(request, session, caller), country)


@router.post("/sanctions", status_code=201, response_model=SanctionRead, responses=CREATE)
async def add_sanction(
    body: SanctionCreate, request: Request, session: SessionDep, caller: Underwriter,
    cmd: CommandDep,
) -> Response:  # fmt: skip
    """Sanction a country or a buyer, listed once: never covered, never indemnified."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: uc.add_sanction(ctx, body), status_code=201,
                         location=lambda s: f"/v1/sanctions/{s.id}")  # fmt: skip


@router.get("/sanctions", response_model=SanctionList, responses=READ)
async def list_sanctions(
    request: Request, session: SessionDep, caller: Staff, page: PageDep
) -> SanctionList:
    return await uc.list_sanctions(context(request, session, caller), page)


@router.get("/sanctions/{sanction_id}", response_model=SanctionRead, responses=READ)
async def get_sanction(
    sanction_id: IdPath, request: Request, session: ReadSessionDep, caller: Staff
) -> SanctionRead:
    return await uc.get_sanction(context(request, session, caller), sanction_id)


@router.delete("/sanctions/{sanction_id}", response_model=SanctionRead, responses=WRITE)
async def remove_sanction(
    sanction_id: IdPath, request: Request, session: SessionDep, caller: Underwriter,
    cmd: CommandDep,
) -> Response:  # fmt: skip
    ctx = context(request, session, caller)
    return await cmd.run(lambda: uc.remove_sanction(ctx, sanction_id))


# ---------------------------------------------------------------- limit requests and limits


@router.post("/policies/{policy_id}/limit-requests", status_code=201,
             response_model=LimitRequestRead, responses=CREATE)  # fmt: skip
async def request_limit(
    policy_id: IdPath, body: LimitRequestCreate, request: Request, session: SessionDep,
    caller: Policyholder, cmd: CommandDep,
) -> Response:  # fmt: skip
    """Ask for a credit limit on a buyer: approved, partially approved, refused or referred, at
    once, with reason codes."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: lim.request_limit(ctx, policy_id, body), status_code=201,
                         location=lambda r: f"/v1/limit-requests/{r.id}")  # fmt: skip


@router.get("/limit-requests", response_model=LimitRequestList, responses=READ)
async def list_limit_requests(
    request: Request, session: SessionDep, caller: Staff, page: PageDep,
    status: Annotated[LimitRequestStatus | None, Query()] = None,
) -> LimitRequestList:  # fmt: skip
    """The underwriters' review queue (`?status=referred`), oldest first; staff may read it."""
    return await lim.list_limit_requests(context(request, session, caller), status, page)


@router.get("/limit-requests/{request_id}", response_model=LimitRequestRead, responses=READ)
async def get_limit_request(
    request_id: IdPath, request: Request, session: SessionDep, caller: PolicyholderOrStaff
) -> LimitRequestRead:
    """A limit request: staff, or the policyholder of its policy."""
    return await lim.get_limit_request(context(request, session, caller), request_id)


@router.post("/limit-requests/{request_id}/decision", response_model=LimitRequestRead,
             responses=WRITE)  # fmt: skip
async def decide_limit_request(
    request_id: IdPath, body: DecisionCreate, request: Request, session: SessionDep,
    caller: Underwriter, cmd: CommandDep,
) -> Response:  # fmt: skip
    """An underwriter's final decision on a referred request; a second decision is 409."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: lim.decide_request(ctx, request_id, body))


@router.post("/policies/{policy_id}/limits", status_code=201,
             response_model=RecordedLimitRead, responses=CREATE)  # fmt: skip
async def record_external_limit(
    policy_id: IdPath, body: ExternalLimitCreate, request: Request, session: SessionDep,
    caller: Underwriter, cmd: CommandDep,
) -> Response:  # fmt: skip
    """Record a limit granted outside the engine, possibly from a past date, not after the
    policy's end; recording again what is already in force changes nothing (`unchanged`). A
    lower amount or shorter terms apply from tomorrow at the earliest (422
    `retroactive-reduction` names the day): goods shipped until today stay covered."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: lim.record_external_limit(ctx, policy_id, body), status_code=201,
                         location=lambda lim: f"/v1/limits/{lim.id}")  # fmt: skip


@router.get("/policies/{policy_id}/limits", response_model=LimitList, responses=READ)
async def list_limits(
    policy_id: IdPath, request: Request, session: SessionDep, caller: PolicyReader, page: PageDep
) -> LimitList:
    """One limit per buyer, with its history of amounts."""
    return await lim.list_limits(context(request, session, caller), policy_id, page)


@router.get("/limits/{limit_id}", response_model=LimitRead, responses=READ)
async def get_limit(
    limit_id: IdPath, request: Request, session: SessionDep, caller: PolicyReader
) -> LimitRead:
    """A limit with its history: staff, the policyholder of its policy, or an assigned bank."""
    return await lim.get_limit(context(request, session, caller), limit_id)


@router.post("/limits/{limit_id}/changes", status_code=201, response_model=LimitChangeRead,
             responses=CREATE)  # fmt: skip
async def change_limit(
    limit_id: IdPath, body: LimitChangeCreate, request: Request, session: SessionDep,
    caller: Underwriter, cmd: CommandDep,
) -> Response:  # fmt: skip
    """Change a limit's amount (0 withdraws it). Reductions apply from tomorrow at the earliest,
    by default after the policy's reduction notice period; a date, given or by default, is not
    after the policy's end (422 naming `effective_from`)."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: lim.change_limit(ctx, limit_id, body), status_code=201,
                         location=lambda _: f"/v1/limits/{limit_id}")  # fmt: skip


# ---------------------------------------------------------------- declarations and health


@router.post("/policies/{policy_id}/declarations", status_code=201,
             response_model=DeclarationRead, responses=CREATE)  # fmt: skip
async def declare_receivables(
    policy_id: IdPath, body: DeclarationCreate, request: Request, session: SessionDep,
    caller: Policyholder, cmd: CommandDep,
) -> Response:  # fmt: skip
    """Declare receivables; a known invoice number is updated. Each invoice was shipped by
    today and not before the policy's start less the history the cash-flow indicators read (two
    years by default), is due within a year of its shipment (or the policy's maximum credit
    period, when longer; TCI_UW_DECLARED_CREDIT_DAYS_AT_MOST), and was paid (if at all) not
    before that history: else 422 naming the invoice's field and the bound."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: uc.declare_receivables(ctx, policy_id, body), status_code=201,
                         location=lambda _: f"/v1/policies/{policy_id}/exposure")  # fmt: skip


@router.get("/policies/{policy_id}/premium", response_model=PremiumRead, responses=READ)
async def premium(
    policy_id: IdPath, request: Request, session: SessionDep, caller: PolicyholderOrStaff,
    period_from: Annotated[dt.date | None, Query(alias="from")] = None,
    period_to: Annotated[dt.date | None, Query(alias="to")] = None,
) -> PremiumRead:  # fmt: skip
    """Declared insured turnover in the period × the premium rate: turnover shipped while the
    policy is active, to insurable buyers in covered countries (any other invoice shipped in the
    period is counted in `invoices_excluded`)."""
    return await uc.premium_for(context(request, session, caller), policy_id, period_from,
                                period_to)  # fmt: skip


@router.get("/policies/{policy_id}/exposure", response_model=ExposureList, responses=READ)
async def exposure(
    policy_id: IdPath, request: Request, session: SessionDep, caller: PolicyholderOrStaff,
    page: KeyPageDep, buyer_ids: BuyerIdsQuery = None,
) -> ExposureList:  # fmt: skip
    """Per buyer of the policy's book, a credit limit granted on it or receivables declared
    (covered by the discretionary limit, or by nothing): the limit a coverage check of a
    shipment today counts, with its source, the exposure and the headroom. `?buyer_id=`
    (repeated) keeps those of the buyers named.

    Ordered by buyer id, not by `created_at` (a page then reads only its own buyers' books,
    however large the policy's): the cursor names the last buyer shown, so a buyer coming into
    the book between two pages is on a later page when its id comes after the cursor, and on
    none when before; no buyer already in the book is skipped or repeated."""
    ctx = context(request, session, caller)
    return await cov.exposure_page(ctx, policy_id, page, buyer_ids)


@router.get("/policies/{policy_id}/portfolio-health", response_model=PortfolioHealthRead,
            responses=READ)  # fmt: skip
async def portfolio_health(
    policy_id: IdPath, request: Request, session: SessionDep, caller: PolicyholderOrStaff
) -> PortfolioHealthRead:
    """DSO and its change, overdue ratio, ageing, concentration and warnings."""
    return await uc.portfolio_health(context(request, session, caller), policy_id)


# ---------------------------------------------------------------- coverage

# The hot routes sit in their own router, included first, so a request for them is matched
# against two routes instead of every route of the service.
coverage_router = APIRouter(prefix="/v1", tags=["coverage"])


@coverage_router.post("/coverage-checks", response_model=CoverageRead, responses=READ)
async def check_coverage(
    body: CoverageCheckCreate, request: Request, reader: ReaderDep, caller: CoverageCaller
) -> Response:
    """Whether a receivable is covered, which conditions held, and for how much."""
    answer = await cov.check_coverage(reader, caller, request.app.state.settings.today(), body)
    return Response(_json(answer), media_type="application/json")


@coverage_router.post(
    "/coverage-checks/batch",
    response_model=None,
    responses={200: {"model": CoverageBatchRead, "description": "each item's answer, in order"},
               **problem_responses(401, 403, 413, 422)},
)  # fmt: skip
async def check_coverage_batch(
    body: CoverageBatchCreate, request: Request, reader: ReaderDep, caller: CoverageCaller
) -> Response:
    """Up to 10,000 checks, answered in order, each as the single check would answer it."""
    settings = request.app.state.settings
    results = await cov.check_coverage_batch(reader, caller, settings.today(), body.items, settings)
    return Response(_json({"results": results}), media_type="application/json")


def _json(body: Any) -> bytes:
    """Answers are built as plain JSON data (strings, booleans, lists) by the service; orjson
    refuses anything else (a Decimal or float included) rather than guess."""
    return orjson.dumps(body)
