"""Claims use cases: overdue notifications, claims and their filing window, documents, disputes,
assessment with underwriting's coverage, decision and payment with the subrogation case. Each reads,
asks `rules` and writes; `views` shows the rows, `messages` writes what other services are told."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple, Protocol, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.claims import messages, rules, views
from services.claims import repository as repo
from services.claims.config import ClaimsSettings
from services.claims.events import ClaimPaid, ClaimStatusChanged
from services.claims.models import Claim, ClaimDocument, ClaimInvoice, Dispute, events, outbox
from services.claims.schemas import (
    AssessmentRead,
    BuyerSignalSent,
    ClaimCreate,
    ClaimList,
    ClaimRead,
    DecisionCreate,
    DisputeCreate,
    DisputeRead,
    DisputeResolve,
    DocumentUploadRead,
    InvoiceIn,
)
from shared import problems
from shared.contracts import BuyerFacts, BuyerSignal, CoverageReply, PolicyTerms, Recoveries
from shared.db import new_id, utcnow
from shared.events import Party, announce, bank, policyholder
from shared.outbox import deliver, enqueue
from shared.pagination import PageRequest, fetch_page
from shared.peers import (
    fetch_buyer,
    fetch_policy,
    fetch_policy_and_buyer,
    short_problem,
    upstream_problem,
)
from shared.problems import Problem, conflict, invalid, not_found, unprocessable
from shared.usecase import Context as UseCaseContext
from shared.usecase import money_read, non_negative_amount_in, positive_amount_in

log = logging.getLogger("tci.claims")
ZERO = Decimal(0)
Context = UseCaseContext[ClaimsSettings]
Act = rules.Act
Status = rules.ClaimStatus


def invoice_amounts(invoices: Sequence[InvoiceIn], currency: str) -> Decimal:
    """Each invoice's amount in the policy's currency and above zero; their total."""
    return sum((positive_amount_in(invoice.amount, currency, ["body", "invoices", index, "amount"])
                for index, invoice in enumerate(invoices)), ZERO)  # fmt: skip


async def own_policy(ctx: Context, policy_id: str) -> PolicyTerms:
    return _own(ctx, await fetch_policy(ctx.peers, policy_id))


async def own_policy_and_buyer(
    ctx: Context, policy_id: str, buyer_id: str
) -> tuple[PolicyTerms, BuyerFacts]:
    """The caller's policy and the buyer, read from underwriting at once (404 for either)."""
    return await fetch_policy_and_buyer(
        ctx.peers, policy_id, buyer_id, lambda policy: _own(ctx, policy)
    )


def _own(ctx: Context, policy: PolicyTerms) -> PolicyTerms:
    """The policy, when the caller may see it (a policyholder its own); else 404."""
    if ctx.caller.role == "policyholder" and ctx.caller.party_id != policy.policyholder_id:
        raise not_found("policy", policy.id)
    return policy


async def signal_underwriting(
    ctx: Context, aggregate_id: str, buyer_id: str, signal: BuyerSignal, key: str
) -> BuyerSignalSent:
    """Tell underwriting of a buyer (through the outbox, after the commit): what the answer says
    of it, pending until the delivery after the commit says otherwise (`deliver_for`)."""
    await enqueue(ctx.session, outbox, aggregate_id=aggregate_id, target="underwriting",
                  path=messages.SIGNALS_PATH.format(buyer_id=buyer_id),
                  body=signal.model_dump(mode="json", exclude_none=True),
                  idempotency_key=key)  # fmt: skip
    return BuyerSignalSent(kind=signal.kind, observed_on=signal.observed_on, delivery="pending")


# ---------------------------------------------------------------- claims


async def _filing_window(
    ctx: Context, filing: ClaimCreate, policy: PolicyTerms, original: Mapping[str, dt.date]
) -> rules.FilingWindow:
    """The claim's filing window, refused when the claim comes too early or too late. The clocks
    run from the original due dates (`original`, by number): an invoice notified earlier with an
    earlier due date (before an extension) keeps that date."""
    if filing.event_date is not None and filing.event_date > ctx.today:
        raise invalid(
            ["body", "event_date"], "the date the event became known must not be in the future"
        )
    for index, invoice in enumerate(filing.invoices):
        if invoice.shipment_date > ctx.today:
            raise invalid(["body", "invoices", index, "shipment_date"],
                          "a claimed invoice was shipped, so not after today")  # fmt: skip
    if filing.cause == "political" and not policy.political_risk_cover:
        raise unprocessable(problems.POLITICAL_RISK_NOT_COVERED,
                            "the policy does not cover political risk")  # fmt: skip
    oldest_due = min(rules.original_due_date(i.due_date, original.get(i.number))
                     for i in filing.invoices)  # fmt: skip
    window = rules.filing_window(
        filing.cause, event_date=filing.event_date, oldest_due_date=oldest_due,
        filing_days=policy.claim_filing_days,
        protracted_wait_days=policy.protracted_default_wait_days,
    )  # fmt: skip
    verdict = window.verdict(ctx.today)
    if verdict == "too_early":
        raise unprocessable(
            problems.CLAIM_TOO_EARLY,
            f"a {filing.cause} claim may be filed from {window.opens.isoformat()}",
            first_filing_date=window.opens.isoformat(),
            filing_deadline=window.closes.isoformat(),
        )
    if verdict == "time_barred":
        raise unprocessable(
            problems.CLAIM_TIME_BARRED,
            f"the filing window closed on {window.closes.isoformat()}",
            filing_deadline=window.closes.isoformat(),
        )
    return window


async def _check_as_notified(
    ctx: Context, filing: ClaimCreate, policy: PolicyTerms
) -> dict[str, dt.date]:
    """An invoice notified overdue under the policy and buyer is claimed as it was notified: its
    shipment date, its original due date (or a later one, an extension), no more than the amount
    notified in time (`rules.differs_from_notification`); else 422 naming what was notified. An
    invoice never notified is judged at assessment (late unless claimed in its notification
    period). Returns the earliest due date each invoice was notified with (`_filing_window`)."""
    rows = await repo.notified_rows(
        ctx.session, policy.id, filing.buyer_id, [i.number for i in filing.invoices]
    )
    notified = rules.notified_of(rows)
    differing: dict[str, dict[str, Any]] = {}
    for invoice in filing.invoices:
        said = notified.get(invoice.number)
        if said is None:
            continue
        claimed = rules.ClaimInvoice(invoice.number, invoice.amount.amount,
                                     invoice.shipment_date, invoice.due_date)  # fmt: skip
        fields = rules.differs_from_notification(claimed, said)
        if fields:
            differing[invoice.number] = {
                "shipment_date": said.shipment_date.isoformat(),
                "due_date": said.original_due_date.isoformat(),
                "amount": money_read(said.amount, policy.currency).model_dump(mode="json"),
                "differs": list(fields),
            }
    if differing:
        raise unprocessable(
            problems.INVOICE_DIFFERS_FROM_NOTIFICATION,
            "claimed otherwise than notified: " + "; ".join(
                f"{n} ({', '.join(d['differs'])}: notified as shipped {d['shipment_date']}, due "
                f"{d['due_date']}, {d['amount']['amount']} {d['amount']['currency']})"
                for n, d in differing.items()),
            invoice_numbers=list(differing), notified=differing,
        )  # fmt: skip
    return rules.earliest_due_dates(rows)


async def _hold_invoices(ctx: Context, claim: Claim, numbers: Sequence[str]) -> None:
    """The database holds each invoice for one live claim: of concurrent filings, one gets it. A
    claim that has lapsed without the lapse being recorded yet still holds its invoices: when
    the hold finds invoices held, their holders' lapses are recorded, which frees those of a
    lapsed claim, and the hold is tried again on them. (An invoice no claim holds, the usual
    filing, is held in one statement.)"""
    held = await repo.hold_invoices(ctx.session, claim, numbers)
    missing = [n for n in numbers if n not in held]
    if not missing:
        return
    holders = await repo.holders_of(ctx.session, claim.policy_id, claim.buyer_id, missing)
    for holder_id in sorted({claim_id for _, claim_id in holders}):
        holder = await repo.claim(ctx.session, holder_id, lock=True)
        if holder is not None:
            await _refresh_lapse(ctx, holder)
    if holders:
        held = await repo.hold_invoices(ctx.session, claim, missing)
        missing = [n for n in missing if n not in held]
    if missing:
        claimed = await repo.holders_of(ctx.session, claim.policy_id, claim.buyer_id, missing)
        raise conflict(
            problems.INVOICE_ALREADY_CLAIMED,
            "already claimed: " + ", ".join(f"{n} (claim {c})" for n, c in claimed),
            claims={n: c for n, c in claimed},
        )


async def file_claim(ctx: Context, filing: ClaimCreate) -> ClaimRead:
    """A claim within its filing window; documents pending until the file is complete."""
    policy, _ = await own_policy_and_buyer(ctx, filing.policy_id, filing.buyer_id)
    invoice_amounts(filing.invoices, policy.currency)
    declared = {name: non_negative_amount_in(getattr(filing, name), policy.currency, ["body", name])
                for name in ("credit_notes", "set_offs", "recovered")}  # fmt: skip
    reductions = sum(declared.values(), ZERO)
    original = await _check_as_notified(ctx, filing, policy)
    window = await _filing_window(ctx, filing, policy, original)
    claim = Claim(
        id=new_id("clm"), created_at=utcnow(), policy_id=policy.id, buyer_id=filing.buyer_id,
        policyholder_id=policy.policyholder_id, currency=policy.currency, cause=filing.cause,
        event_date=filing.event_date,
        loss_date=rules.loss_date(filing.cause, window, filing.event_date),
        filed_on=ctx.today, filing_opens=window.opens, filing_deadline=window.closes,
        status=Status.DOCUMENTS_PENDING, held_status=None,
        documents_due=rules.documents_due(ctx.today, policy.documents_grace_days),
        reductions=reductions, declared_recovered=declared["recovered"],
        war_related=filing.war_related,
        nuclear_related=filing.nuclear_related, terms=policy.model_dump(mode="json"),
        created_by=ctx.caller.subject, version=1,
    )  # fmt: skip
    ctx.session.add(claim)
    await ctx.session.flush()
    await _hold_invoices(ctx, claim, [i.number for i in filing.invoices])
    invoices = [ClaimInvoice(
        id=new_id("cin"), claim_id=claim.id, number=invoice.number,
        amount=invoice.amount.amount, shipment_date=invoice.shipment_date,
        due_date=invoice.due_date) for invoice in filing.invoices]  # fmt: skip
    ctx.session.add_all(invoices)
    await _announce_status(ctx, claim, None, parties=_parties_of(claim, policy.assigned_bank_ids))
    political = rules.political_loss(filing.cause, war_related=filing.war_related,
                                     political_risk_cover=policy.political_risk_cover)  # fmt: skip
    said = rules.filing_signal(filing.cause, ctx.today, political=political)
    sent = None
    if said is not None:
        # Under its policy: the claims of one default (one per invoice, or one for them all) are
        # one delay to the grade until the policy's arrears are cleared.
        sent = await _signal_of_claim(ctx, claim, said, "claim-signal")
    await ctx.session.flush()
    return _telling(await _new_claim_read(ctx, claim, invoices), sent)


async def _signal_of_claim(
    ctx: Context, claim: Claim, said: tuple[str, dt.date], step: str
) -> BuyerSignalSent:
    """Tell underwriting what the claim says of its buyer (`rules.filing_signal`,
    `rules.approval_signal`), once per claim and step."""
    kind, observed = said
    details = f"{claim.cause} claim {claim.id} under policy {claim.policy_id}"
    return await signal_underwriting(ctx, claim.id, claim.buyer_id,
                                     messages.signal(kind, observed, details, claim.policy_id),
                                     f"claims:{step}:{claim.id}")  # fmt: skip


def _telling(read: ClaimRead, sent: BuyerSignalSent | None) -> ClaimRead:
    """The answer of an act on a claim, with what it told underwriting of the buyer, if anything
    (a read tells nothing)."""
    return read if sent is None else read.model_copy(update={"buyer_signal": sent})


async def _new_claim_read(ctx: Context, claim: Claim, invoices: list[ClaimInvoice]) -> ClaimRead:
    """A claim just filed as a read shows it, from what was written: no documents or disputes
    yet, its invoices in the order of `repo.invoices_of`. When two invoices share both dates the
    database's collation orders their numbers, so they are read back in that order."""
    dates = {(i.shipment_date, i.due_date) for i in invoices}
    if len(dates) < len(invoices):
        return await read_claim(ctx, claim)
    in_order = sorted(invoices, key=lambda i: (i.shipment_date, i.due_date))
    return views.claim_read(claim, [], in_order, [], ctx.today)


async def _claim(ctx: Context, claim_id: str, *, lock: bool = False) -> Claim:
    return _seen(ctx, await repo.claim(ctx.session, claim_id, lock=lock), claim_id)


def _seen(ctx: Context, claim: Claim | None, claim_id: str) -> Claim:
    """The claim, when the caller may see it (a policyholder its own); else 404."""
    if claim is None or (
        ctx.caller.role == "policyholder" and claim.policyholder_id != ctx.caller.party_id
    ):
        raise not_found("claim", claim_id)
    return claim


async def _kinds(session: AsyncSession, claim_id: str) -> list[str]:
    """The kinds of document a claim has received."""
    return [d.kind for d in (await repo.documents_of(session, [claim_id])).get(claim_id, [])]


# ---------------------------------------------------------------- the lifecycle


async def _next(ctx: Context, claim: Claim, act: rules.Act) -> rules.ClaimState:
    """Where the act leaves the claim (the problem its status answers, if it refuses it)."""
    try:
        return rules.after(views.state_of(claim), act)
    except rules.Refused as refused:
        missing: list[str] = []
        if refused.refusal is rules.Refusal.DOCUMENTS_MISSING:
            missing = rules.missing_documents(claim.cause, await _kinds(ctx.session, claim.id))
        raise views.refusal_problem(refused, claim, missing) from None


class Changing(Protocol):
    """Where a claim changes: a use case's context, or the lapse sweep's."""

    @property
    def session(self) -> AsyncSession: ...
    @property
    def today(self) -> dt.date: ...


@dataclass(frozen=True)
class Sweep:
    session: AsyncSession
    today: dt.date


def _parties_of(claim: Claim, bank_ids: Sequence[str]) -> list[Party]:
    return [policyholder(claim.policyholder_id), *(bank(b) for b in bank_ids)]


def _parties(claim: Claim) -> list[Party]:
    """Who hears of a claim's events: its policyholder and the banks assigned to its policy when
    the claim was filed (kept with its terms: a change of status never waits on underwriting)."""
    return _parties_of(claim, claim.terms.get("assigned_bank_ids") or [])


async def _announce_status(
    where: Changing, claim: Claim, previous: rules.ClaimStatus | None, *,
    reason: str | None = None, parties: Sequence[Party] | None = None,
) -> None:  # fmt: skip
    """The claim's parties hear that its status changed (`claim.status_changed`)."""
    changed = ClaimStatusChanged(
        claim_id=claim.id, policy_id=claim.policy_id, buyer_id=claim.buyer_id, cause=claim.cause,
        previous_status=previous, status=Status(claim.status),
        held_status=None if claim.held_status is None else Status(claim.held_status),
        changed_on=where.today, reason=reason,
        indemnity=None if claim.indemnity is None else money_read(claim.indemnity, claim.currency),
        decision_due=claim.decision_due, documents_due=claim.documents_due,
    )  # fmt: skip
    await announce(where.session, events, changed, subject_id=claim.id,
                   parties=parties if parties is not None else _parties(claim))  # fmt: skip


async def _enter(
    where: Changing, claim: Claim, state: rules.ClaimState, *, reason: str | None = None,
    parties: Sequence[Party] | None = None,
) -> None:  # fmt: skip
    """Write the claim's new place in its lifecycle; a claim no longer live frees its invoices.
    A new status is announced to the claim's parties (`parties`, when the caller knows them)."""
    previous = Status(claim.status)
    was_live = not rules.frees_invoices(previous)
    claim.status, claim.held_status = state.status, state.held
    if was_live and rules.frees_invoices(state.status):
        await repo.release_invoices(where.session, claim.id)
    if state.status != previous:
        await _announce_status(where, claim, previous, reason=reason, parties=parties)


def _lapse_reason(claim: Claim) -> str:
    return f"documents still missing when the grace period ended on {claim.documents_due}"


async def _refresh_lapse(ctx: Context, claim: Claim, kinds: Sequence[str] | None = None) -> None:
    """Before a change: a claim that has lapsed is recorded as lapsed, and frees its invoices
    (`kinds`: the documents it has received, when the caller has read them)."""
    if kinds is None:
        kinds = await _kinds(ctx.session, claim.id)
    if rules.lapsed_now(views.state_of(claim), claim.documents_due, ctx.today, claim.cause,
                        kinds):  # fmt: skip
        await _enter(ctx, claim, rules.after(views.state_of(claim), Act.LAPSE),
                     reason=_lapse_reason(claim))  # fmt: skip


async def lapse_overdue(session: AsyncSession, today: dt.date) -> list[str]:
    """The sweep: every claim whose documents grace period has ended with documents still
    missing lapses (reads already show it; this records it). Returns the lapsed claims' ids."""
    where = Sweep(session, today)
    waiting = await repo.waiting_for_documents(session, today)
    documents = await repo.documents_of(session, [claim.id for claim in waiting])
    lapsed = []
    for claim in waiting:
        kinds = [d.kind for d in documents.get(claim.id, [])]
        state = views.state_of(claim)
        if rules.lapsed_now(state, claim.documents_due, today, claim.cause, kinds):
            await _enter(where, claim, rules.after(state, Act.LAPSE), reason=_lapse_reason(claim))
            lapsed.append(claim.id)
    await session.flush()
    return lapsed


# ---------------------------------------------------------------- reads


async def get_claim(ctx: Context, claim_id: str) -> ClaimRead:
    return await read_claim(ctx, await _claim(ctx, claim_id))


async def list_claims(
    ctx: Context, page: PageRequest, *, status: str | None, policy_id: str | None
) -> ClaimList:
    """A policyholder's own claims, or every claim for a claims handler; oldest first."""
    statement = repo.claims_listed(
        policyholder_id=ctx.caller.party_id if ctx.caller.role == "policyholder" else None,
        status=status, policy_id=policy_id, today=ctx.today,
    )  # fmt: skip
    rows, cursor = await fetch_page(ctx.session, statement, page, created_at=Claim.created_at,
                                    ident=Claim.id)  # fmt: skip
    return ClaimList(items=await read_claims(ctx, list(rows)), next_cursor=cursor)


async def read_claim(ctx: Context, claim: Claim) -> ClaimRead:
    return (await read_claims(ctx, [claim]))[0]


async def read_claims(ctx: Context, claims: Sequence[Claim]) -> list[ClaimRead]:
    """Claims as the API shows them, their documents, invoices and disputes read in three
    queries for the whole page."""
    ids = [claim.id for claim in claims]
    documents = await repo.documents_of(ctx.session, ids)
    invoices = await repo.invoices_of(ctx.session, ids)
    disputes = await repo.disputes_of(ctx.session, ids)
    return [views.claim_read(claim, documents.get(claim.id, []), invoices.get(claim.id, []),
                             disputes.get(claim.id, []), ctx.today) for claim in claims]  # fmt: skip


async def document(ctx: Context, claim_id: str, document_id: str) -> ClaimDocument:
    claim = await _claim(ctx, claim_id)
    found = await repo.by_id(ctx.session, ClaimDocument, document_id)
    if found is None or found.claim_id != claim.id:
        raise not_found("document", document_id)
    return found


async def dispute(ctx: Context, claim_id: str, dispute_id: str) -> DisputeRead:
    claim = await _claim(ctx, claim_id)
    found = await repo.by_id(ctx.session, Dispute, dispute_id)
    if found is None or found.claim_id != claim.id:
        raise not_found("dispute", dispute_id)
    shown = views.status_shown(claim, await _kinds(ctx.session, claim.id), ctx.today)
    return views.dispute_read(found, shown)


# ---------------------------------------------------------------- documents


def _check_upload(settings: ClaimsSettings, content_type: str, content: bytes) -> None:
    """A document of an accepted type, within the size allowed, not empty, and whose bytes are
    what its type says."""
    if content_type not in settings.document_types:
        raise Problem(problems.UNSUPPORTED_MEDIA_TYPE,
                      f"{content_type or 'no type'} is not accepted; send one of "
                      f"{', '.join(sorted(settings.document_types))}")  # fmt: skip
    if len(content) > settings.max_document_bytes:
        raise Problem(problems.PAYLOAD_TOO_LARGE,
                      f"a document may be at most {settings.max_document_bytes} bytes")  # fmt: skip
    if not content:
        raise Problem(problems.VALIDATION, "the file is empty",
                      errors=[{"loc": ["body", "file"], "msg": "the file is empty"}])  # fmt: skip
    if not rules.content_matches_type(content, content_type):
        raise Problem(problems.UNSUPPORTED_MEDIA_TYPE,
                      f"the file's content is not {content_type}")  # fmt: skip


async def add_document(
    ctx: Context, claim_id: str, kind: str, filename: str, content_type: str, content: bytes
) -> DocumentUploadRead:
    """Attach a document; the last missing one completes the file: under review, with the
    decision due within the working days of the claims calendar."""
    _check_upload(ctx.settings, content_type, content)
    # The claim locked and the kinds it has received, read once (the lock keeps them so).
    found = await repo.claim_and_document_kinds(ctx.session, claim_id)
    claim = _seen(ctx, None if found is None else found[0], claim_id)
    received = [] if found is None else found[1]
    await _refresh_lapse(ctx, claim, received)
    await _next(ctx, claim, Act.ADD_DOCUMENT)
    if kind not in rules.DOCUMENT_KINDS:
        raise invalid(["body", "kind"], f"kind must be one of {sorted(rules.DOCUMENT_KINDS)}")
    document = ClaimDocument(
        id=new_id("doc"), created_at=utcnow(), claim_id=claim.id, kind=kind,
        filename=filename[:255] or "document", content_type=content_type, size=len(content),
        sha256=hashlib.sha256(content).hexdigest(), content=content,
        uploaded_by=ctx.caller.subject,
    )  # fmt: skip
    ctx.session.add(document)
    missing = rules.missing_documents(claim.cause, [*received, kind])
    if views.state_of(claim).awaits_documents() and not missing:
        claim.complete_on = ctx.today
        country = claim.terms["claims_calendar_country"]
        claim.decision_due = rules.decision_due(
            ctx.today, ctx.settings.decision_working_days, country,
            await repo.calendar_corrections(ctx.session, country, ctx.today),
        )  # fmt: skip
        await _enter(ctx, claim, await _next(ctx, claim, Act.COMPLETE_FILE))
    await ctx.session.flush()
    return views.document_upload_read(document, claim, missing)


# ---------------------------------------------------------------- disputes


async def raise_dispute(ctx: Context, claim_id: str, raised: DisputeCreate) -> DisputeRead:
    """The buyer disputes invoices: the claim holds until every dispute is settled."""
    if raised.raised_on > ctx.today:
        raise invalid(["body", "raised_on"], "a dispute is raised on a day that has come")
    claim = await _claim(ctx, claim_id, lock=True)
    await _refresh_lapse(ctx, claim)
    held = await _next(ctx, claim, Act.RAISE_DISPUTE)
    shipped = {
        i.number: i.shipment_date
        for i in (await repo.invoices_of(ctx.session, [claim.id])).get(claim.id, [])
    }
    unknown = [n for n in raised.invoice_numbers if n not in shipped]
    if unknown:
        raise unprocessable(problems.UNKNOWN_INVOICE, f"not in this claim: {', '.join(unknown)}",
                            invoice_numbers=unknown)  # fmt: skip
    first = min(shipped[n] for n in raised.invoice_numbers)
    if raised.raised_on < first:
        raise invalid(["body", "raised_on"], "a buyer disputes goods shipped: not before the "
                      f"first shipment it names ({first.isoformat()})")  # fmt: skip
    dispute = Dispute(
        id=new_id("dsp"), created_at=utcnow(), claim_id=claim.id, raised_on=raised.raised_on,
        description=raised.description, invoice_numbers=list(dict.fromkeys(raised.invoice_numbers)),
        outcome=None, resolved_on=None, raised_by=ctx.caller.subject,
    )  # fmt: skip
    ctx.session.add(dispute)
    await _enter(ctx, claim, held, reason=f"dispute {dispute.id} raised")
    await ctx.session.flush()
    return views.dispute_read(dispute, claim.status)


async def resolve_dispute(
    ctx: Context, claim_id: str, dispute_id: str, settlement: DisputeResolve
) -> DisputeRead:
    """Settle a dispute; once none is open the claim resumes, and is assessed again."""
    claim = await _claim(ctx, claim_id, lock=True)
    dispute = await repo.by_id(ctx.session, Dispute, dispute_id)
    if dispute is None or dispute.claim_id != claim.id:
        raise not_found("dispute", dispute_id)
    await _refresh_lapse(ctx, claim)
    if dispute.outcome is not None:
        raise conflict(
            problems.ALREADY_DECIDED, f"the dispute was settled for the {dispute.outcome}"
        )
    resolved_on = settlement.resolved_on or ctx.today
    if resolved_on > ctx.today:
        raise invalid(["body", "resolved_on"], "a dispute is settled on a day that has come")
    if resolved_on < dispute.raised_on:
        raise invalid(["body", "resolved_on"],
                      f"before the dispute was raised ({dispute.raised_on.isoformat()})")  # fmt: skip
    dispute.outcome = settlement.outcome
    dispute.resolved_on = resolved_on
    dispute.resolution_note = settlement.note
    dispute.resolved_by = ctx.caller.subject
    await ctx.session.flush()
    still_open = await repo.open_disputes(ctx.session, claim.id)
    if not still_open and claim.status == Status.ON_HOLD:
        resumed = await _next(ctx, claim, Act.SETTLE_DISPUTES)
        claim.assessment, claim.indemnity = None, None
        await _enter(ctx, claim, resumed, reason="every dispute settled")
    await ctx.session.flush()
    return views.dispute_read(dispute, claim.status)


# ---------------------------------------------------------------- assessment


async def _invoice_facts(
    ctx: Context, claim: Claim, terms: PolicyTerms, invoices: Sequence[ClaimInvoice],
    coverage: Coverage,
) -> list[rules.InvoiceFacts]:  # fmt: skip
    """What the claim knows of each invoice: its cover on its shipment date (as underwriting
    answered it, from its original due date), whether it was notified late, its dispute, and
    what its notifications said of it (a claim filed before filing compared them is assessed on
    the notified facts: no more than the amount notified in time, excluded when its dates
    differ)."""
    rows = await repo.notified_rows(ctx.session, claim.policy_id, claim.buyer_id,
                                    [i.number for i in invoices])  # fmt: skip
    said, first_late = rules.notified_of(rows), rules.first_overdue_late(rows)
    original = coverage.original_due_dates
    own = [(d.invoice_numbers, d.outcome)
           for d in (await repo.disputes_of(ctx.session, [claim.id])).get(claim.id, [])]  # fmt: skip
    # A dispute settled under an earlier claim on the same invoice still says who was right.
    numbers = {i.number for i in invoices}
    earlier = [(list(n), outcome) for n, outcome in
               await repo.settled_disputes_of_other_claims(ctx.session, claim)
               if numbers.intersection(n)]  # fmt: skip
    disputes = rules.dispute_outcomes([*earlier, *own])
    facts = []
    for invoice in invoices:
        answer = coverage.answers[invoice.number]
        facts.append(rules.InvoiceFacts(
            invoice=rules.ClaimInvoice(invoice.number, invoice.amount, invoice.shipment_date,
                                       invoice.due_date),
            covered_on_shipment=rules.covered_on_shipment(
                {c["condition"]: bool(c["held"]) for c in answer.conditions}),
            not_covered_reasons=rules.shipment_reasons(answer.reasons),
            limit_in_force=answer.limit_in_force.amount if answer.limit_in_force else ZERO,
            sanctioned="sanctioned" in answer.reasons,
            notified_late=rules.counts_as_late(first_late.get(invoice.number),
                                               claim.filed_on, original[invoice.number],
                                               terms.overdue_notification_days),
            dispute=disputes.get(invoice.number), notified=said.get(invoice.number),
        ))  # fmt: skip
    return facts


async def _original_due_dates(
    ctx: Context, claim: Claim, invoices: Sequence[ClaimInvoice]
) -> dict[str, dt.date]:
    """The due date each invoice's clocks and cover run from: the earliest it was notified with
    (before an extension), else the one it is claimed with. A notified due date before the
    claimed shipment date cannot be that shipment's and is not taken."""
    notified = await repo.original_due_dates(
        ctx.session, claim.policy_id, claim.buyer_id, [i.number for i in invoices]
    )
    original = {}
    for invoice in invoices:
        due = notified.get(invoice.number)
        if due is not None and due < invoice.shipment_date:
            due = None
        original[invoice.number] = rules.original_due_date(invoice.due_date, due)
    return original


async def assess(ctx: Context, claim_id: str) -> ClaimRead:
    """Per invoice: coverage on its shipment date (asked of underwriting) and the exclusions that
    apply; the recoveries the policyholder's collection cases recorded (asked of collections);
    then the indemnity with each step of domain.md's sum."""
    claim = await _claim(ctx, claim_id, lock=True)
    await _refresh_lapse(ctx, claim)
    assessed = await _next(ctx, claim, Act.ASSESS)
    previous, was = Status(claim.status), claim.indemnity
    invoices = (await repo.invoices_of(ctx.session, [claim.id])).get(claim.id, [])
    coverage = await _coverage(ctx, claim, invoices)
    await _write_assessment(ctx, claim, invoices, coverage, await _recorded_recoveries(ctx, claim))
    await _enter(ctx, claim, assessed)
    now = claim.indemnity
    if previous == assessed.status and was is not None and now is not None and now != was:
        # Assessed again for another sum: the parties hear the indemnity they now count on.
        c = claim.currency
        await _announce_status(ctx, claim, previous, reason=(
            f"assessed again: the indemnity is {money_read(now, c).amount} {c}, "
            f"was {money_read(was, c).amount} {c}"))  # fmt: skip
    await ctx.session.flush()
    return await read_claim(ctx, claim)


async def _write_assessment(
    ctx: Context, claim: Claim, invoices: Sequence[ClaimInvoice],
    coverage: Coverage, recorded: Mapping[str, Decimal],
) -> None:  # fmt: skip
    """The indemnity of domain.md's sum from what is known now, each step kept on the claim."""
    terms = PolicyTerms.model_validate(claim.terms)
    facts = await _invoice_facts(ctx, claim, terms, invoices, coverage)
    claim_exclusions = rules.claim_exclusions(
        nuclear_related=claim.nuclear_related, war_related=claim.war_related,
        political_risk_cover=terms.political_risk_cover,
    )  # fmt: skip
    limit_used = await _limit_used(ctx, claim)
    year_start, year_end = rules.policy_year(terms.start_date, claim.loss_date)
    paid_policy, paid_buyer = await repo.indemnities_in_year(
        ctx.session, claim, year_start, year_end
    )
    result = rules.indemnity(
        facts, reductions=claim.reductions, currency=claim.currency,
        claim_exclusions=claim_exclusions, recorded=recorded,
        declared_recovered=claim.declared_recovered, limit_used=limit_used,
        terms=rules.IndemnityTerms(
            indemnity_pct=rules.indemnity_pct_for(
                claim.cause, terms.indemnity_pct, terms.political_indemnity_pct,
                war_related=claim.war_related, political_risk_cover=terms.political_risk_cover),
            political=rules.political_loss(claim.cause, war_related=claim.war_related,
                                           political_risk_cover=terms.political_risk_cover),
            deductible=terms.deductible.amount,
            claim_threshold=terms.claim_threshold.amount,
            single_buyer_cap_left=None if terms.single_buyer_cap is None
            else terms.single_buyer_cap.amount - paid_buyer,
            max_liability_left=terms.max_liability.amount - paid_policy,
        ),
    )  # fmt: skip
    assessment = views.assessment_read(result, facts, claim_exclusions, ctx.today)
    claim.assessment = views.stored_assessment_json(assessment)
    claim.indemnity = result.amount.amount
    claim.assessed_by, claim.assessed_at = ctx.caller.subject, utcnow()


async def _limit_used(ctx: Context, claim: Claim) -> list[rules.LimitUse]:
    """What the other live claims on the claim's policy and buyer (assessed, approved or paid)
    covered of the buyer's limit (each assessment's insured loss), with their eligible invoices
    and whether it is promised to them (approved or paid)."""
    others = [(other, views.stored_assessment(other)) for other in
              await repo.claims_using_limit(ctx.session, claim, rules.HOLDS_LIMIT)]  # fmt: skip
    assessed = [(other, assessment) for other, assessment in others if assessment is not None]
    if not assessed:
        return []
    invoices = await repo.invoices_of(ctx.session, [other.id for other, _ in assessed])
    return [rules.LimitUse(other.id, assessment.insured_loss.amount,
                           _used_lines(assessment, invoices.get(other.id, [])),
                           committed=other.status in rules.COUNTS_AGAINST_CAPS)
            for other, assessment in assessed]  # fmt: skip


def _used_lines(
    assessment: AssessmentRead, invoices: Sequence[ClaimInvoice]
) -> tuple[rules.UsedLine, ...]:
    """An assessment's invoices as the buyer's limit reads them (an excluded one unpaid for none
    of it)."""
    dated = {invoice.number: invoice for invoice in invoices}
    return tuple(
        rules.UsedLine(dated[line.number].shipment_date, dated[line.number].due_date, line.number,
                       line.limit_in_force.amount, ZERO if line.exclusions else line.unpaid.amount,
                       line.covered.amount)
        for line in assessment.invoices if line.number in dated
    )  # fmt: skip


async def _recorded_recoveries_if_reachable(
    ctx: Context, claim: Claim
) -> dict[str, Decimal] | None:
    """`_recorded_recoveries`, or None when collections cannot answer now (logged)."""
    try:
        return await _recorded_recoveries(ctx, claim)
    except Problem as problem:
        if problem.kind is not problems.SERVICE_UNAVAILABLE:
            raise
        log.warning("claim %s paid on its assessment's recoveries: %s", claim.id, problem.detail)
        return None


async def _recorded_recoveries(ctx: Context, claim: Claim) -> dict[str, Decimal]:
    """What the policyholder's collection cases (mandates, before any claim) recovered from the
    buyer, per invoice number, as collections answers it."""
    path = messages.RECOVERIES_PATH.format(creditor_id=claim.policyholder_id)
    response = await ctx.peers["collections"].request(
        "GET", path, params=messages.recoveries_query(claim)
    )
    if response.status_code == 404:  # a creditor with no collection case: nothing recovered
        return {}
    if response.status_code != 200:
        raise upstream_problem(response, "collections")
    return Recoveries.model_validate(response.json()).by_number()


class Coverage(NamedTuple):
    """Underwriting's answer for each invoice of a claim (by number), asked from the original
    due date each invoice's clocks and cover run from (kept: the assessment reads them too)."""

    answers: dict[str, CoverageReply]
    original_due_dates: dict[str, dt.date]


async def _coverage(ctx: Context, claim: Claim, invoices: Sequence[ClaimInvoice]) -> Coverage:
    if not invoices:
        return Coverage({}, {})
    original = await _original_due_dates(ctx, claim, invoices)
    checks = messages.coverage_checks(claim, invoices, original)
    items = [c.model_dump(mode="json") for c in checks]
    response = await ctx.peers["underwriting"].request(
        "POST", messages.COVERAGE_BATCH_PATH, json={"items": items}
    )
    if response.status_code != 200:
        raise upstream_problem(response, "underwriting")
    out: dict[str, CoverageReply] = {}
    for invoice, result in zip(invoices, response.json()["results"], strict=True):
        if "error" in result:
            raise Problem(problems.UPSTREAM_ERROR,
                          f"underwriting could not check invoice {invoice.number}",
                          upstream_error=short_problem(result["error"]))  # fmt: skip
        out[invoice.number] = CoverageReply.model_validate(result)
    return Coverage(out, original)


# ---------------------------------------------------------------- decision and payment


async def decide(ctx: Context, claim_id: str, verdict: DecisionCreate) -> ClaimRead:
    """Approve an assessed claim on which something can be paid, as payment judges it now
    (`_payability`: its buyer and the buyer's country not sanctioned today, its indemnity not
    nil), within the caps; or reject it. An approval refused leaves the claim assessed, for the
    handler to reject. An approved claim is rejected only when nothing can be paid on it
    (`_reject_approved`)."""
    claim = await _lock_with_policy_caps(ctx, claim_id)
    await _refresh_lapse(ctx, claim)
    reason = verdict.reason
    sent = None
    if verdict.decision == "approve":
        decided = await _next(ctx, claim, Act.APPROVE)
        unpayable = (await _payability(ctx, claim)).unpayable
        if unpayable is not None:
            raise _unpayable(claim, unpayable, "approved")
        await _check_caps_still_hold(ctx, claim, paying=False)
        await _check_limit_still_holds(ctx, claim)
        said = rules.approval_signal(claim.cause, claim.event_date, ctx.today)
        if said is not None:  # the insolvency, its proof checked, reaches the buyer's grade
            sent = await _signal_of_claim(ctx, claim, said, "claim-approved")
    elif claim.status == Status.APPROVED:
        decided, reason = await _reject_approved(ctx, claim, verdict.reason)
    else:
        decided = await _next(ctx, claim, Act.REJECT)
    await _enter(ctx, claim, decided, reason=reason)
    claim.decision = verdict.decision
    claim.decision_reason = reason
    claim.decided_by, claim.decided_at = ctx.caller.subject, utcnow()
    await ctx.session.flush()
    return _telling(await read_claim(ctx, claim), sent)


async def _reject_approved(ctx: Context, claim: Claim, given: str) -> tuple[rules.ClaimState, str]:
    """An approved claim on which nothing can be paid (its buyer or the buyer's country
    sanctioned since, or its indemnity nil, recoveries since the assessment counted) is
    rejected, the reason naming why before the handler's own: rejected, it no longer counts
    against the caps. One that can still be paid keeps its approval (409 `already-decided`).
    The caller holds the claim and the policy's caps, as a payment does: of a rejection and a
    payment at once, one comes first and the other sees its outcome."""
    payable = await _payability(ctx, claim)
    if payable.unpayable is None:
        raise conflict(problems.ALREADY_DECIDED, "the claim is already approved: an approved "
                       "claim is rejected only when nothing can be paid on it (its buyer or the "
                       "buyer's country sanctioned, or its indemnity nil)",
                       status_now=claim.status)  # fmt: skip
    decided = await _next(ctx, claim, rules.rejection(Status(claim.status), payable.unpayable))
    why_nil = _why_nil(claim) if payable.unpayable is rules.Unpayable.NIL_INDEMNITY else ""
    reason = rules.unpayable_reason(payable.unpayable, buyer_id=claim.buyer_id, why_nil=why_nil,
                                    given=given)  # fmt: skip
    return decided, reason


def _why_nil(claim: Claim) -> str:
    assessed = views.assessed_sum(claim)
    return "not assessed" if assessed is None else rules.why_nil(assessed)


def _unpayable(claim: Claim, unpayable: rules.Unpayable, refused: str) -> Problem:
    """The answer to approving or paying (`refused`: "approved", "paid") a claim on which
    nothing can be paid (`_payability`); the claim stays where it is, for the handler to
    reject."""
    if unpayable is rules.Unpayable.NIL_INDEMNITY:
        return _nil_indemnity(claim, refused)
    if claim.status == Status.APPROVED:
        then = ("It stays approved until the sanction is lifted; reject it (excluded: sanctioned "
                "buyer) to free its share of the policy's caps")  # fmt: skip
    else:
        then = (f"It stays {claim.status}: reject it (excluded: sanctioned buyer), or approve it "
                "once the sanction is lifted")  # fmt: skip
    return unprocessable(problems.BUYER_SANCTIONED,
                         f"no indemnity is paid on a sanctioned buyer: buyer {claim.buyer_id}, "
                         f"or its country, is on the sanctions list, so claim {claim.id} is not "
                         f"{refused}. {then}",
                         buyer_id=claim.buyer_id, status_now=claim.status)  # fmt: skip


def _nil_indemnity(claim: Claim, refused: str) -> Problem:
    """The answer to approving or paying a claim whose indemnity is nil."""
    return unprocessable(problems.NIL_INDEMNITY,
                         f"claim {claim.id} is not {refused}: its indemnity is nil "
                         f"({_why_nil(claim)}), so nothing is owed on it; reject it as nothing "
                         "payable", status_now=claim.status)  # fmt: skip


class Payability(NamedTuple):
    """What an approval or a payment reads of a claim now: its invoices and their coverage
    today, what collection cases recovered since the assessment (the assessment worked out
    again with it, when anything was), and why nothing can be paid on it, if so."""

    invoices: list[ClaimInvoice]
    coverage: Coverage
    reassessed: dict[str, Decimal]
    unpayable: rules.Unpayable | None


async def _payability(ctx: Context, claim: Claim) -> Payability:
    """Whether the claim can be paid now (asked at approval and at payment, and before an
    approved claim is rejected): no indemnity on a sanctioned buyer or country (domain.md), even
    on a claim assessed or approved before the listing (underwriting's coverage batch answers
    the sanctions of today); amounts recovered before payment reduce the unpaid invoices, so
    what collection cases recovered since the assessment is deducted now, the sum worked out
    again and kept (a payment does not wait on collections: when it cannot answer, the
    assessment stands); a nil indemnity owes nothing."""
    invoices = (await repo.invoices_of(ctx.session, [claim.id])).get(claim.id, [])
    coverage = await _coverage(ctx, claim, invoices)
    if any("sanctioned" in answer.reasons for answer in coverage.answers.values()):
        return Payability(invoices, coverage, {}, rules.Unpayable.SANCTIONED_BUYER)
    assessment = views.stored_assessment(claim)
    assert assessment is not None  # a claim assessed or approved was assessed
    recorded = await _recorded_recoveries_if_reachable(ctx, claim)
    reassessed = {} if recorded is None else rules.recovered_since(
        {line.number: line.recovered_in_collections.amount for line in assessment.invoices},
        recorded,
    )  # fmt: skip
    if recorded is not None and reassessed:
        await _write_assessment(ctx, claim, invoices, coverage, recorded)
    return Payability(invoices, coverage, reassessed,
                      rules.unpayable(claim.indemnity, sanctioned=False))  # fmt: skip


async def _lock_with_policy_caps(ctx: Context, claim_id: str) -> Claim:
    """The claim, locked, with its policy's caps taken for the transaction (always in that
    order): approvals and payments of one policy then run one at a time, and the claim is read
    again once they are taken (on SQLite the write lock is what serialises)."""
    claim = await _claim(ctx, claim_id, lock=True)
    await repo.lock_policy_caps(ctx.session, claim.policy_id)
    await ctx.session.refresh(claim)
    return claim


async def _check_caps_still_hold(ctx: Context, claim: Claim, *, paying: bool) -> None:
    """`rules.caps_refusal` with what approved and paid claims of the policy year use now. The
    caller holds the policy's caps (`_lock_with_policy_caps`)."""
    terms = PolicyTerms.model_validate(claim.terms)
    start, end = rules.policy_year(terms.start_date, claim.loss_date)
    used_policy, used_buyer = await repo.indemnities_in_year(ctx.session, claim, start, end)
    left = rules.caps_left(
        max_liability=terms.max_liability.amount,
        single_buyer_cap=None if terms.single_buyer_cap is None else terms.single_buyer_cap.amount,
        used_on_policy=used_policy, used_on_buyer=used_buyer,
    )  # fmt: skip
    refusal = rules.caps_refusal(claim.indemnity, left, paying=paying)
    if refusal is None:
        return
    cap_left = money_read(left, claim.currency).model_dump(mode="json")
    if refusal is rules.Refusal.CAPS_EXCEEDED:
        raise conflict(problems.CAPS_EXCEEDED, "claims approved or paid on the policy leave less of its "
                       "caps than this claim's indemnity", cap_left=cap_left)  # fmt: skip
    raise conflict(problems.ASSESSMENT_OUTDATED, "claims approved since the assessment leave less of the "
                   "policy's caps than it assessed; assess the claim again",
                   cap_left=cap_left)  # fmt: skip


async def _check_limit_still_holds(ctx: Context, claim: Claim) -> None:
    """An approval re-checks the buyer's credit limit as it re-checks the caps
    (`rules.limit_entitlement`): other live claims on the same policy and buyer may have come
    since the assessment with earlier shipments, or been approved or paid, taking part of the
    limit it counted on; or part it counted as used by other claims is free again (one rejected,
    lapsed, or assessed again for less). Either way the claim is not approved (409
    `assessment-outdated`, naming the claims that use the limit now): assessed again, it covers
    what they leave, and its steps say so. The caller holds the policy's caps
    (`_lock_with_policy_caps`), so approvals of one policy see each other."""
    assessment = views.stored_assessment(claim)
    if assessment is None:
        return
    invoices = (await repo.invoices_of(ctx.session, [claim.id])).get(claim.id, [])
    own, assessed = _used_lines(assessment, invoices), assessment.insured_loss.amount
    used = await _limit_used(ctx, claim)
    entitled = rules.limit_entitlement(own, used)
    if entitled == assessed:
        return
    why = ("which leaves less of it than this claim's assessment covers" if entitled < assessed
           else "which leaves more of it than the assessment counted on")  # fmt: skip
    c = claim.currency
    taken = [u for u in used if u.covered > 0]
    total = money_read(sum((u.covered for u in taken), ZERO), c).amount
    each = ", ".join(f"claim {u.claim_id} {money_read(u.covered, c).amount}" for u in taken)
    raise conflict(problems.ASSESSMENT_OUTDATED,
                   f"claims on the policy and buyer use {total} {c} of the buyer's credit limit"
                   + (f" ({each})" if taken else "") + f", {why}; assess the claim again",
                   limit_used_by={u.claim_id: money_read(u.covered, c).model_dump(mode="json")
                                  for u in taken})  # fmt: skip


async def pay(ctx: Context, claim_id: str) -> ClaimRead:
    """Pay an approved claim once, if something can be paid on it (`_payability`) and the caps
    still hold with it; the debt passes to collections as a subrogation case (an outbox message
    with a stable Idempotency-Key, so the case is opened exactly once) with the indemnity paid,
    from which collections shares recoveries exactly."""
    claim = await _lock_with_policy_caps(ctx, claim_id)
    paid = await _next(ctx, claim, Act.PAY)
    payable = await _payability(ctx, claim)
    if payable.unpayable is not None:
        raise _unpayable(claim, payable.unpayable, "paid")
    invoices, reassessed = payable.invoices, payable.reassessed
    assessment = views.stored_assessment(claim)
    assert claim.indemnity is not None and assessment is not None
    await _check_caps_still_hold(ctx, claim, paying=True)
    buyer = await fetch_buyer(ctx.peers, claim.buyer_id)
    claim.paid_on, claim.paid_by = ctx.today, ctx.caller.subject
    parties = _parties(claim)
    reason = None
    if reassessed:
        reason = (f"indemnity worked out again at payment: collection cases recovered "
                  f"{money_read(sum(reassessed.values(), ZERO), claim.currency).amount} "
                  f"{claim.currency} on the claim's invoices since the assessment")  # fmt: skip
    await _enter(ctx, claim, paid, parties=parties, reason=reason)
    await announce(ctx.session, events, ClaimPaid(
        claim_id=claim.id, policy_id=claim.policy_id, buyer_id=claim.buyer_id,
        amount=money_read(claim.indemnity, claim.currency), paid_on=ctx.today,
    ), subject_id=claim.id, parties=parties)  # fmt: skip
    said = messages.paid_claim_signal(claim)
    sent = None
    if said is not None:  # the closed loop: the loss reaches the buyer's grade
        sent = await signal_underwriting(ctx, claim.id, claim.buyer_id, said,
                                         f"claims:claim-paid:{claim.id}")  # fmt: skip
    case = messages.subrogation_case(claim, assessment, invoices, buyer.country)
    if case is not None:
        await enqueue(ctx.session, outbox, aggregate_id=claim.id, target="collections",
                      path=messages.CASES_PATH, body=case.model_dump(mode="json",
                                                                     exclude_none=True),
                      idempotency_key=f"claims:subrogation:{claim.id}")  # fmt: skip
    await ctx.session.flush()
    return _telling(await read_claim(ctx, claim), sent)


# ---------------------------------------------------------------- after the commit

Answer = TypeVar("Answer", bound=BaseModel)


async def deliver_for(ctx: Context, answer: Answer) -> Answer:
    """After a commit: send what the change to `answer` put in the outbox, waiting no longer
    than `TCI_OUTBOX_ANSWER_WAIT_SECONDS` (the background loop retries what does not go through
    now, a replay of the request's Idempotency-Key too); the answer with what the delivery told
    it (a paid claim's subrogation case, recorded on the claim as its message is marked
    delivered; the buyer's signal, delivered). Only the change's own messages are sent here
    (`shared.outbox.deliver`)."""
    ident = getattr(answer, "id")  # noqa: B009  # every answer delivered for names its aggregate
    delivered = await _deliver_recording(ctx, ident, take_over=False)
    if not isinstance(answer, ClaimRead):
        return answer
    news: dict[str, Any] = {}
    if delivered.case_id is not None:
        news["collection_case_id"] = delivered.case_id
    if answer.buyer_signal is not None and answer.buyer_signal.kind in delivered.signals:
        news["buyer_signal"] = answer.buyer_signal.model_copy(update={"delivery": "delivered"})
    return answer.model_copy(update=news) if news else answer


def replay_recovers(first: Answer, after: Answer) -> bool:
    """Whether all the delivery after the commit changed in an answer is its signal's delivery,
    which `redeliver` reads from the outbox before a replay answers (the answer stored first
    then stands: storing it again would cost the filing a statement)."""
    if not isinstance(first, ClaimRead) or not isinstance(after, ClaimRead):
        return False
    return first.model_copy(update={"buyer_signal": after.buyer_signal}) == after


async def redeliver(ctx: Context, stored: dict[str, Any]) -> ClaimRead | None:
    """Before a replay answers: what the first request put in the outbox for the aggregate its
    answer names and has not delivered yet (its process died after the commit) is sent now,
    leases taken over, so the replay is not ahead of its effect (a stop-shipment, a withdrawal,
    the subrogation case). A paid claim whose stored answer predates the news of its case (the
    process died before storing it again, or collections was down) is answered with the case it
    names now; an answer whose signal about the buyer was stored pending says it is delivered
    once the outbox holds it delivered (the first answer may have said so already:
    `replay_recovers`)."""
    ident = stored.get("id")
    if not isinstance(ident, str):
        return None
    await _deliver_recording(ctx, ident, take_over=True)
    news: dict[str, Any] = {}
    if "collection_case_id" in stored and stored["collection_case_id"] is None:
        claim = await repo.by_id(ctx.session, Claim, ident)
        if claim is not None and claim.collection_case_id is not None:
            news["collection_case_id"] = claim.collection_case_id
    signal = stored.get("buyer_signal")
    if isinstance(signal, dict) and signal.get("delivery") == "pending":
        still = await repo.signals_pending(ctx.session, ident)
        if signal.get("kind") not in still:  # delivered since, or just now
            news["buyer_signal"] = {**signal, "delivery": "delivered"}
    return ClaimRead.model_validate({**stored, **news}) if news else None


class Delivered(NamedTuple):
    """What a delivery after an act told its answer: the subrogation case recorded now, if any;
    the kinds of the signals underwriting took."""

    case_id: str | None
    signals: set[str]


async def _deliver_recording(ctx: Context, aggregate_id: str, *, take_over: bool) -> Delivered:
    """Deliver the aggregate's pending messages, each answer's news recorded in the transaction
    that marks its message delivered."""
    recorded: list[str] = []

    async def record(session: AsyncSession, message: dict[str, Any]) -> None:
        case_id = await _record_case(session, message)
        if case_id is not None:
            recorded.append(case_id)

    lease = dt.timedelta(seconds=ctx.settings.outbox_lease_seconds)
    sent = await deliver(ctx.session, outbox, ctx.peers, aggregate_id=aggregate_id, lease=lease,
                         take_over=take_over, on_delivered=record,
                         within_seconds=ctx.settings.outbox_answer_wait_seconds)  # fmt: skip
    await ctx.session.commit()
    return Delivered(recorded[-1] if recorded else None,
                     {str(m["body"].get("kind")) for m in sent if m["target"] == "underwriting"})  # fmt: skip


async def record_delivery(session: AsyncSession, message: dict[str, Any]) -> None:
    """What a delivered message tells the claim: the subrogation case's id."""
    await _record_case(session, message)


async def _record_case(session: AsyncSession, message: dict[str, Any]) -> str | None:
    """The subrogation case's id a delivered message names, recorded on its claim (returned when
    it is recorded now)."""
    if message["target"] != "collections":
        return None
    body = message.get("response_body") or {}
    case_id = body.get("id") or body.get("case_id")
    claim = await repo.by_id(session, Claim, message["aggregate_id"])
    if claim is not None and case_id and claim.collection_case_id is None:
        claim.collection_case_id = case_id
        await session.flush()
        return str(case_id)
    return None
