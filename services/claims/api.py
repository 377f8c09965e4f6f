"""Claims routes (api.md, Claims)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    Path,
    Query,
    Request,
    Response,
    UploadFile,
)

from services.claims import notifications
from services.claims import service as uc
from services.claims.config import ClaimsSettings
from services.claims.schemas import (
    ClaimCreate,
    ClaimList,
    ClaimRead,
    ClaimStatus,
    DecisionCreate,
    DisputeCreate,
    DisputeRead,
    DisputeResolve,
    DocumentKind,
    DocumentUploadRead,
    NotificationCreate,
    NotificationRead,
)
from shared.auth import Caller, require
from shared.db import SessionDep
from shared.idempotency import CommandDep
from shared.pagination import PageDep
from shared.peers import PeersDep
from shared.problems import created_responses, invalid, problem_responses

router = APIRouter(prefix="/v1", tags=["claims"])

IdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Policyholder = Annotated[Caller, Depends(require("policyholder"))]
Handler = Annotated[Caller, Depends(require("claims_handler"))]
HolderOrHandler = Annotated[Caller, Depends(require("policyholder", "claims_handler"))]
READ = problem_responses(401, 403, 404, 422)
# A route calling a peer (it takes `PeersDep`) declares 502 too: `shared.app` adds it.
WRITE = problem_responses(401, 403, 404, 409, 422, 503)
CREATE = {**WRITE, **created_responses()}  # a 201 names the new resource in Location


def context(
    request: Request, session: SessionDep, caller: Caller, peers: PeersDep | None = None
) -> uc.Context:
    """The use case's context; `peers` only for a route that calls a peer (it depends on them)."""
    settings: ClaimsSettings = request.app.state.settings
    return uc.Context(session=session, caller=caller, today=settings.today(), settings=settings,
                      peers=peers or {})  # fmt: skip


# ---------------------------------------------------------------- overdue notifications


@router.post("/overdue-notifications", status_code=201, response_model=NotificationRead,
             responses=CREATE)  # fmt: skip
async def notify_overdue(
    body: NotificationCreate, request: Request, session: SessionDep, caller: Policyholder,
    peers: PeersDep, cmd: CommandDep,
) -> Response:  # fmt: skip
    """Invoices unpaid past due (each in time or late), an extension request or a repayment plan;
    an overdue starts stop-shipment in underwriting. An invoice shipped before the policy began
    or after it ended is not one the policy insures: 422, naming it, its shipment date and the
    policy's start or end."""
    ctx = context(request, session, caller, peers)
    # Underwriting is told before the answer goes (the stop-shipment is in force for a bank's
    # check made once the policyholder has its 201); if it cannot be reached, the outbox sends
    # it again until it is.
    return await cmd.run(
        lambda: notifications.notify_overdue(ctx, body), status_code=201,
        location=lambda n: f"/v1/overdue-notifications/{n.id}",
        after_commit=lambda n: uc.deliver_for(ctx, n),
        on_replay=lambda stored: uc.redeliver(ctx, stored),
    )  # fmt: skip


@router.get("/overdue-notifications/{notification_id}", response_model=NotificationRead,
            responses=READ)  # fmt: skip
async def get_notification(
    notification_id: IdPath, request: Request, session: SessionDep, caller: HolderOrHandler
) -> NotificationRead:
    return await notifications.get_notification(context(request, session, caller), notification_id)


# ---------------------------------------------------------------- claims


@router.post("/claims", status_code=201, response_model=ClaimRead, responses=CREATE)
async def file_claim(
    body: ClaimCreate, request: Request, session: SessionDep, caller: Policyholder,
    peers: PeersDep, cmd: CommandDep,
) -> Response:  # fmt: skip
    """A claim within its filing window (else 422 `claim-time-barred` / `claim-too-early`)."""
    ctx = context(request, session, caller, peers)
    # What the filing tells underwriting (a protracted default is a payment delay) is sent before
    # the answer goes, as a notification's stop-shipment is.
    return await cmd.run(
        lambda: uc.file_claim(ctx, body), status_code=201, location=lambda c: f"/v1/claims/{c.id}",
        after_commit=lambda c: uc.deliver_for(ctx, c),
        on_replay=lambda stored: uc.redeliver(ctx, stored), replay_recovers=uc.replay_recovers,
    )  # fmt: skip


@router.get("/claims", response_model=ClaimList, responses=READ)
async def list_claims(
    request: Request, session: SessionDep, caller: HolderOrHandler, page: PageDep,
    status: Annotated[ClaimStatus | None, Query()] = None,
    policy_id: Annotated[str | None, Query(max_length=64)] = None,
) -> ClaimList:  # fmt: skip
    """A policyholder's own claims, or every claim for a claims handler; oldest first."""
    ctx = context(request, session, caller)
    return await uc.list_claims(ctx, page, status=status, policy_id=policy_id)


@router.get("/claims/{claim_id}", response_model=ClaimRead, responses=READ)
async def get_claim(
    claim_id: IdPath, request: Request, session: SessionDep, caller: HolderOrHandler
) -> ClaimRead:
    return await uc.get_claim(context(request, session, caller), claim_id)


DOCUMENT_PARTS = ("kind", "file")


async def one_document_per_upload(request: Request) -> None:
    """A document upload names one kind and carries one file: a part given twice is 422 naming
    it, never one of them taken silently."""
    form = await request.form()  # read once: the route's own fields come from the same form
    for part in DOCUMENT_PARTS:
        if len(form.getlist(part)) > 1:
            raise invalid(["body", part], f"'{part}' is given more than once: one document "
                                          "per upload, with one kind")  # fmt: skip


@router.post("/claims/{claim_id}/documents", status_code=201, response_model=DocumentUploadRead,
             responses={**problem_responses(401, 403, 404, 409, 413, 415, 422),
                        **created_responses()})  # fmt: skip
async def add_document(
    claim_id: IdPath, request: Request, session: SessionDep, caller: Policyholder,
    cmd: CommandDep, _: Annotated[None, Depends(one_document_per_upload)],
    kind: Annotated[DocumentKind, Form()], file: Annotated[UploadFile, File()],
) -> Response:  # fmt: skip
    """Attach a document (multipart `kind` + `file`); the last missing one moves the claim to
    `under_review` with its decision date."""
    ctx = context(request, session, caller)
    content_type = (file.content_type or "").split(";")[0].strip().lower()
    # Read one byte more than a document may have, so that the use case can tell it is too large.
    content = await file.read(ctx.settings.max_document_bytes + 1)
    return await cmd.run(
        lambda: uc.add_document(ctx, claim_id, kind, file.filename or "document", content_type,
                                content),
        status_code=201, location=lambda d: f"/v1/claims/{claim_id}/documents/{d.id}",
    )  # fmt: skip


# A document answers in the type it was uploaded with: one of the accepted types (the defaults of
# `TCI_CLAIMS_DOCUMENT_TYPES` are declared; a deployment that accepts more serves those too).
_BINARY = {"schema": {"type": "string", "format": "binary"}}
DOCUMENT: dict[str, Any] = {
    "description": "the document as uploaded",
    # `application/octet-stream` first: a generated client reads the first type it knows.
    "content": {
        "application/octet-stream": _BINARY,
        **dict.fromkeys(sorted(ClaimsSettings.model_fields["document_types"].default), _BINARY),
    },
    "headers": {
        "ETag": {"description": "the content's SHA-256", "schema": {"type": "string"}},
        "Content-Disposition": {"description": "an attachment", "schema": {"type": "string"}},
    },
}


@router.get("/claims/{claim_id}/documents/{document_id}", response_class=Response,
            responses={200: DOCUMENT, **READ})  # fmt: skip
async def download_document(
    claim_id: IdPath, document_id: IdPath, request: Request, session: SessionDep,
    caller: HolderOrHandler,
) -> Response:  # fmt: skip
    """The document as it was uploaded (its SHA-256 in `ETag`)."""
    found = await uc.document(context(request, session, caller), claim_id, document_id)
    # Never rendered by a browser: an attachment, not sniffed (nosniff and a `default-src
    # 'none'` policy come from the middleware), cached by the caller alone.
    return Response(found.content, media_type=found.content_type, headers={
        "ETag": f'"{found.sha256}"', "Cache-Control": "private",
        "Content-Disposition": attachment(found.filename)})  # fmt: skip


def attachment(filename: str) -> str:
    """`Content-Disposition` of a download (RFC 6266): the name as uploaded in `filename*`
    (UTF-8, percent-encoded: a Chinese name survives), and an ASCII fallback in `filename` for
    clients that know no better; nothing that could end the header or the parameter."""
    ascii_name = "".join(
        ch if ch.isascii() and (ch.isalnum() or ch in "._- ") else "_" for ch in filename
    )[:200]
    return (
        f'attachment; filename="{ascii_name or "document"}"; '
        f"filename*=UTF-8''{quote(filename[:200], safe='')}"
    )


@router.get("/claims/{claim_id}/disputes/{dispute_id}", response_model=DisputeRead,
            responses=READ)  # fmt: skip
async def get_dispute(
    claim_id: IdPath, dispute_id: IdPath, request: Request, session: SessionDep,
    caller: HolderOrHandler,
) -> DisputeRead:  # fmt: skip
    return await uc.dispute(context(request, session, caller), claim_id, dispute_id)


@router.post("/claims/{claim_id}/disputes", status_code=201, response_model=DisputeRead,
             responses=CREATE)  # fmt: skip
async def raise_dispute(
    claim_id: IdPath, body: DisputeCreate, request: Request, session: SessionDep,
    caller: HolderOrHandler, cmd: CommandDep,
) -> Response:  # fmt: skip
    """The buyer disputes invoices: the claim holds (`on_hold`) until each dispute is settled."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: uc.raise_dispute(ctx, claim_id, body), status_code=201,
                         location=lambda d: f"/v1/claims/{claim_id}/disputes/{d.id}")  # fmt: skip


@router.post("/claims/{claim_id}/disputes/{dispute_id}/resolution", response_model=DisputeRead,
             responses=WRITE)  # fmt: skip
async def resolve_dispute(
    claim_id: IdPath, dispute_id: IdPath, body: DisputeResolve, request: Request,
    session: SessionDep, caller: Handler, cmd: CommandDep,
) -> Response:  # fmt: skip
    """Settled for the policyholder (the invoices count) or the buyer (they are excluded); the
    claim resumes once no dispute is open."""
    ctx = context(request, session, caller)
    return await cmd.run(lambda: uc.resolve_dispute(ctx, claim_id, dispute_id, body))


@router.post("/claims/{claim_id}/assessment", response_model=ClaimRead, responses=WRITE)
async def assess(
    claim_id: IdPath, request: Request, session: SessionDep, caller: Handler, peers: PeersDep,
    cmd: CommandDep,
) -> Response:  # fmt: skip
    """Coverage of each invoice on its shipment date, the exclusions, and the indemnity with
    each step of the sum."""
    ctx = context(request, session, caller, peers)
    return await cmd.run(lambda: uc.assess(ctx, claim_id))


@router.post("/claims/{claim_id}/decision", response_model=ClaimRead, responses=WRITE)
async def decide(
    claim_id: IdPath, body: DecisionCreate, request: Request, session: SessionDep,
    caller: Handler, peers: PeersDep, cmd: CommandDep,
) -> Response:  # fmt: skip
    """Approve (an assessed claim on which something can be paid: 422 `buyer-sanctioned` or
    `nil-indemnity` otherwise, the claim left assessed) or reject; deciding twice is 409
    `already-decided`. An approved insolvency claim tells underwriting of the insolvency before
    the answer goes: the buyer is graded 10 and its limits withdrawn."""
    ctx = context(request, session, caller, peers)
    return await cmd.run(lambda: uc.decide(ctx, claim_id, body),
                         after_commit=lambda c: uc.deliver_for(ctx, c),
                         on_replay=lambda stored: uc.redeliver(ctx, stored),
                         replay_recovers=uc.replay_recovers)  # fmt: skip


@router.post("/claims/{claim_id}/payment", response_model=ClaimRead, responses=WRITE)
async def pay(
    claim_id: IdPath, request: Request, session: SessionDep, caller: Handler, peers: PeersDep,
    cmd: CommandDep,
) -> Response:  # fmt: skip
    """Pay the approved indemnity once (409 `already-paid`); the debt passes to collections."""
    ctx = context(request, session, caller, peers)
    # The answer names the subrogation case when collections opened it at once.
    return await cmd.run(lambda: uc.pay(ctx, claim_id),
                         after_commit=lambda c: uc.deliver_for(ctx, c),
                         on_replay=lambda stored: uc.redeliver(ctx, stored),
                         replay_recovers=uc.replay_recovers)  # fmt: skip
