"""Collections routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from services.collections import service as uc
from services.collections.schemas import (
    ActivityCreate,
    ActivityRead,
    CaseCreate,
    CaseList,
    CaseRead,
    CaseStatusFilter,
    EscalationResult,
    EscalationRun,
    LadderList,
    PaymentCreate,
    PaymentRead,
)
from shared.auth import Caller, CallerDep, require
from shared.contracts import CurrencyCode, Recoveries, json_data
from shared.db import ReaderDep, ReadSessionDep, SessionDep
from shared.idempotency import CommandDep
from shared.pagination import PageDep
from shared.peers import PeersDep
from shared.problems import created_responses, problem_responses

router = APIRouter(prefix="/v1", tags=["collections"])


@router.get("/ladders", response_model=LadderList, responses=problem_responses(401))
async def list_ladders(request: Request, session: SessionDep, caller: CallerDep) -> LadderList:
    """The escalation ladders a policy or a case can climb (any token)."""
    return await uc.ladders(context(request, session, caller))


IdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Collector = Annotated[Caller, Depends(require("collector"))]
CaseOpener = Annotated[Caller, Depends(require("policyholder"))]
CaseReader = Annotated[Caller, Depends(require("policyholder", "collector"))]
READ = problem_responses(401, 403, 404, 422)
WRITE = problem_responses(401, 403, 404, 409, 422)
CREATE = {**WRITE, **created_responses()}  # a 201 names the new resource in Location


def context(
    request: Request, session: SessionDep, caller: Caller, peers: PeersDep | None = None
) -> uc.Context:
    settings = request.app.state.settings
    return uc.Context(session=session, caller=caller, today=settings.today(), settings=settings,
                      peers=peers or {})  # fmt: skip


@router.post("/cases", status_code=201, response_model=CaseRead, responses=CREATE)
async def open_case(
    body: CaseCreate,
    request: Request,
    session: SessionDep,
    caller: CaseOpener,
    cmd: CommandDep,
    peers: PeersDep,
) -> Response:
    """A policyholder's mandate (as creditor) or, from the claims service, a subrogation case."""
    ctx = context(request, session, caller, peers)
    return await cmd.run(lambda: uc.open_case(ctx, body), status_code=201,
                         location=lambda c: f"/v1/cases/{c.id}",
                         after_commit=lambda c: uc.deliver_for(ctx, c.id),
                         on_replay=lambda stored: uc.redeliver(ctx, stored))  # fmt: skip


@router.get("/cases", response_model=CaseList, responses=READ)
async def list_cases(
    request: Request, reader: ReaderDep, caller: CaseReader, page: PageDep,
    status: Annotated[CaseStatusFilter | None, Query()] = None,
    claim_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:  # fmt: skip
    # Read with no session, built as plain JSON data and written out once (FastAPI would
    # validate and serialise a CaseList again).
    today = request.app.state.settings.today()
    answer = await uc.list_cases(reader, caller, today, page, claim_id=claim_id,
                                 status=None if status is None else status.value)  # fmt: skip
    return Response(json_data(answer), media_type="application/json")


@router.get("/cases/{case_id}", response_model=CaseRead, responses=READ)
async def get_case(
    case_id: IdPath, request: Request, reader: ReaderDep, caller: CaseReader
) -> Response:
    today = request.app.state.settings.today()
    answer = await uc.get_case(reader, caller, today, case_id)
    return Response(json_data(answer), media_type="application/json")


@router.post("/cases/{case_id}/activities", status_code=201, response_model=ActivityRead,
             responses=CREATE)  # fmt: skip
async def add_activity(
    case_id: IdPath, body: ActivityCreate, request: Request, session: SessionDep,
    caller: Collector, cmd: CommandDep,
) -> Response:  # fmt: skip
    """Log a letter, call, promise to pay, dispute (the case holds), legal step or note."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: uc.add_activity(ctx, case_id, body), status_code=201,
                         location=lambda a: f"/v1/cases/{case_id}/activities/{a.id}")  # fmt: skip


@router.post("/cases/{case_id}/payments", status_code=201, response_model=PaymentRead,
             responses=CREATE)  # fmt: skip
async def record_payment(
    case_id: IdPath, body: PaymentCreate, request: Request, session: SessionDep,
    caller: Collector, cmd: CommandDep,
) -> Response:  # fmt: skip
    """Credit a recovery oldest invoice first and share it: fee, insurer, policyholder."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: uc.record_payment(ctx, case_id, body), status_code=201,
                         location=lambda p: f"/v1/cases/{case_id}/payments/{p.id}")  # fmt: skip


@router.get("/cases/{case_id}/activities/{activity_id}", response_model=ActivityRead,
            responses=READ)  # fmt: skip
async def get_activity(
    case_id: IdPath, activity_id: IdPath, request: Request, session: SessionDep,
    caller: CaseReader,
) -> ActivityRead:  # fmt: skip
    return await uc.activity(context(request, session, caller), case_id, activity_id)


@router.get("/cases/{case_id}/payments/{payment_id}", response_model=PaymentRead, responses=READ)
async def get_payment(
    case_id: IdPath,
    payment_id: IdPath,
    request: Request,
    session: SessionDep,
    caller: CaseReader,
) -> PaymentRead:
    return await uc.payment(context(request, session, caller), case_id, payment_id)


@router.get("/creditors/{creditor_id}/recoveries", response_model=Recoveries, responses=READ)
async def get_recoveries(
    creditor_id: IdPath, request: Request, session: ReadSessionDep, caller: CaseReader,
    buyer_id: Annotated[str, Query(min_length=1, max_length=64)],
    currency: Annotated[CurrencyCode, Query()],
) -> Recoveries:  # fmt: skip
    """What the creditor's mandates (cases opened before any claim) recovered from the buyer,
    per invoice number. Claims deducts it from a claim's unpaid invoices when it assesses and
    pays it (domain.md: amounts recovered before payment reduce the unpaid invoices). A
    policyholder reads its own only; a creditor with no case is not found."""
    ctx = context(request, session, caller)
    return await uc.recoveries(ctx, creditor_id, buyer_id, currency)


@router.post("/escalations/run", response_model=EscalationResult, responses=WRITE)
async def run_escalations(
    body: EscalationRun, request: Request, session: SessionDep, caller: Collector,
    cmd: CommandDep,
) -> Response:  # fmt: skip
    """Move the open cases up their ladders as of a date (a scheduler does this daily): today or
    a day gone by; a date after today is 422 `validation` on `as_of`, naming today."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: uc.run_escalations(ctx, body.as_of))
