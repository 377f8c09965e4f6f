"""Collections use cases: cases on an escalation ladder, activities, payments credited oldest first
and shared between insurer and policyholder, and the daily escalation run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError

from services.collections import messages, rules, views
from services.collections import repository as repo
from services.collections.config import CollectionsSettings
from services.collections.events import (
    CaseClosed,
    CasePaymentRecorded,
    CaseStageChanged,
    ClosedReason,
    RecoveryShares,
)
from services.collections.models import (
    Activity,
    Case,
    CaseInvoice,
    CaseRow,
    Payment,
    events,
    outbox,
)
from services.collections.rules import CaseStatus
from services.collections.schemas import (
    ActivityCreate,
    ActivityRead,
    CaseCreate,
    CaseMove,
    CaseRead,
    EscalationResult,
    LadderList,
    PaymentCreate,
    PaymentRead,
)
from shared.auth import Caller
from shared.contracts import BuyerSignal, MoneyModel, Recoveries
from shared.db import Reader, new_id, utcnow
from shared.events import Party, announce, bank, policyholder
from shared.money import Money
from shared.outbox import deliver, enqueue
from shared.pagination import PageRequest
from shared.peers import fetch_buyer
from shared.problems import (
    ALREADY_DECIDED,
    CASE_CLOSED,
    CASE_EXISTS,
    CURRENCY_MISMATCH,
    NO_OPEN_DISPUTE,
    NOT_OVERDUE,
    OVERPAYMENT,
    PROMISE_EXCEEDS_OUTSTANDING,
    conflict,
    invalid,
    not_found,
    unprocessable,
)
from shared.usecase import Context as BaseContext
from shared.usecase import amount_in, money_read, positive_amount_in

Context = BaseContext[CollectionsSettings]
ZERO = rules.ZERO


async def ladders(ctx: Context) -> LadderList:
    """The escalation ladders a policy or a case can climb."""
    return views.ladder_list(await repo.ladders(ctx.session))


async def _ladder(ctx: Context, name: str) -> list[rules.Rung]:
    rungs = await _rungs_of(ctx, name)
    if not rungs:
        raise invalid(["body", "ladder"], f"there is no ladder {name!r} (GET /v1/ladders)")
    return rungs


_RUNGS = "tci.collections.rungs"


async def _rungs_of(ctx: Context, name: str) -> list[rules.Rung]:
    """A ladder's rungs, lowest first (none: no such ladder), read once per session: a change
    reads its case's ladder to climb it and again to answer with the case's stage (ladders are
    data of the migrations, never written by a request)."""
    read: dict[str, list[rules.Rung]] = ctx.session.info.setdefault(_RUNGS, {})
    if name not in read:
        read[name] = await repo.ladder(ctx.session, name) or []
    return read[name]


async def open_case(ctx: Context, opening: CaseCreate) -> CaseRead:
    """A mandate from a policyholder (as creditor), on a debt past due (else 422 `not-overdue`),
    or, from the claims service, the recovery of a paid claim (one case per claim: a second is
    409 `case-exists` naming the first)."""
    if ctx.caller.role == "policyholder" and opening.creditor_id != ctx.caller.party_id:
        raise invalid(["body", "creditor_id"], "a policyholder opens cases as its own creditor")
    if opening.claim_id is not None and ctx.caller.role == "policyholder":
        raise invalid(["body", "claim_id"], "a subrogation case is opened by the claims service")
    ladder = await _ladder(ctx, opening.ladder)
    buyer = await fetch_buyer(ctx.peers, opening.buyer_id)  # a buyer the insurer knows, else 404
    if opening.debtor_country != buyer.country:
        raise invalid(["body", "debtor_country"],
                      f"the buyer {opening.buyer_id} is registered in {buyer.country}")  # fmt: skip
    currency = opening.invoices[0].amount.currency
    if opening.currency is not None and opening.currency != currency:
        raise unprocessable(CURRENCY_MISMATCH, f"the case's invoices are in {currency}, not "
                            f"{opening.currency}", loc=["body", "currency"],
                            expected_currency=currency)  # fmt: skip
    for index, invoice in enumerate(opening.invoices):
        positive_amount_in(invoice.amount, currency, ["body", "invoices", index, "amount"],
                           whose="the case's first invoice")  # fmt: skip
    share = _share_given(opening, currency)  # given only with a claim (the schema checks)
    oldest = min(i.due_date for i in opening.invoices)
    days = rules.days_past_due(oldest, ctx.today)
    if opening.claim_id is None:
        _refuse_if_not_past_due(ctx, opening, oldest)
    # One live case collects a debt: the creditor's cases on the buyer are opened and taken
    # over one at a time, each seeing those before it.
    await repo.serialise_cases_of(ctx.session, opening.creditor_id, opening.buyer_id)
    if opening.claim_id is None:
        await _refuse_if_collected(ctx, opening)
    else:
        existing = await repo.case_of_claim(ctx.session, opening.claim_id)
        if existing is not None:
            raise conflict(CASE_EXISTS, f"claim {opening.claim_id} already has case {existing}",
                           case_id=existing)  # fmt: skip
        claimed = _claimed(opening, currency)
        mandate = await _mandate_for(ctx, opening, claimed)
        if mandate is not None:
            return await _take_over(ctx, mandate, opening, share, claimed)
    case = Case(
        id=new_id("case"), created_at=utcnow(), creditor_id=opening.creditor_id,
        buyer_id=opening.buyer_id, debtor_country=opening.debtor_country, currency=currency,
        ladder=opening.ladder, stage=rules.stage_on(ladder, days),
        status=CaseStatus.OPEN, claim_id=opening.claim_id,
        loss_payee_ids=list(opening.loss_payee_ids),
        insurer_share_numerator=None if share is None else str(share.paid),
        insurer_share_denominator=None if share is None else str(share.of),
        fee_pct=ctx.settings.fee_pct, opened_on=ctx.today, closed_on=None,
        created_by=ctx.caller.subject,
    )  # fmt: skip
    try:
        ctx.session.add(case)
        await ctx.session.flush()
        _add_invoices(ctx, case, opening, have=set(), claimed=opening.claim_id is not None)
        await ctx.session.flush()
    except IntegrityError:  # a concurrent twin opened the claim's case first
        raise conflict(CASE_EXISTS, f"claim {opening.claim_id} already has a case") from None
    await _announce_stage(ctx, case, previous=None, days_past_due=days, reason="case opened")
    await _signal_opening(ctx, case, days)
    if case.stage in ctx.settings.legal_stage_names():  # opened already on a legal rung
        await _signal_underwriting(ctx, case.id, case.buyer_id, messages.legal_rung_signal(
            case.id, case.creditor_id, case.stage, ctx.today), f"collections:legal:{case.id}")  # fmt: skip
    return await read_case(ctx, case)


def _refuse_if_not_past_due(ctx: Context, opening: CaseCreate, oldest: dt.date) -> None:
    """A mandate collects a debt the buyer is late on (`rules.mandate_refused`): one none of
    whose invoices is past due yet is 422 `not-overdue`, naming its oldest due date (there is
    nothing to collect, and no payment delay to tell underwriting of)."""
    if not rules.mandate_refused(oldest, ctx.today):
        return
    index = next(n for n, i in enumerate(opening.invoices) if i.due_date == oldest)
    raise unprocessable(NOT_OVERDUE, f"no invoice of the mandate is past due: the oldest is due "
                        f"{oldest.isoformat()}, not before today ({ctx.today.isoformat()}); a "
                        "mandate collects a debt once it is overdue",
                        loc=["body", "invoices", index, "due_date"],
                        oldest_due_date=oldest.isoformat())  # fmt: skip


async def _refuse_if_collected(ctx: Context, opening: CaseCreate) -> None:
    """A mandate for a debt a live case of the creditor already collects (a mandate, or a paid
    claim's recovery) is 409 `case-exists` naming that case: two cases would recover one invoice
    twice, and on a mandate beside a paid claim's case for the policyholder alone. So is one for
    an invoice (its number and due date) a case of the creditor already recovered in full: the
    buyer owes nothing on it (a paid claim would otherwise take the new case over and collect it
    a second time). A number used again for another invoice (another due date) is a new debt."""
    numbers = [i.number for i in opening.invoices]
    held = await repo.live_case_collecting(ctx.session, opening.creditor_id, opening.buyer_id,
                                           numbers)  # fmt: skip
    if held is not None:
        case_id, number = held
        raise conflict(CASE_EXISTS, f"invoice {number} is collected by case {case_id}",
                       case_id=case_id)  # fmt: skip
    owed = {(i.number, i.due_date) for i in opening.invoices}
    for case_id, number, due in await repo.recovered_in_full(
        ctx.session, opening.creditor_id, opening.buyer_id, numbers
    ):
        if (number, due) in owed:
            raise conflict(CASE_EXISTS, f"invoice {number} (due {due.isoformat()}) was recovered "
                           f"in full by case {case_id}: the buyer owes nothing on it",
                           case_id=case_id)  # fmt: skip


def _parties(case: Case) -> list[Party]:
    """Who hears of a case's events: its creditor (a policyholder: the role that reads its own
    cases) and, for a subrogation case, the banks of the claim's policy."""
    return [policyholder(case.creditor_id), *(bank(b) for b in case.loss_payee_ids or [])]


async def _announce_stage(
    ctx: Context, case: Case, *, previous: tuple[str, CaseStatus] | None,
    days_past_due: int | None, reason: str,
) -> None:  # fmt: skip
    """The case's creditor hears that its stage or status changed (`case.stage_changed`);
    `previous` is the (stage, status) it left, None for a case just opened."""
    await announce(ctx.session, events, CaseStageChanged(
        case_id=case.id, claim_id=case.claim_id, creditor_id=case.creditor_id,
        buyer_id=case.buyer_id, ladder=case.ladder,
        previous_stage=None if previous is None else previous[0], stage=case.stage,
        previous_status=None if previous is None else previous[1],
        status=CaseStatus(case.status), days_past_due=days_past_due, changed_on=ctx.today,
        reason=reason,
    ), subject_id=case.id, parties=_parties(case))  # fmt: skip


def _add_invoices(
    ctx: Context, case: Case, opening: CaseCreate, *, have: set[str], claimed: bool
) -> None:  # fmt: skip
    """The opening's invoices the case does not have yet, nothing paid on them; `claimed`: they
    are a paid claim's (what is recovered on them is shared with the insurer)."""
    for invoice in opening.invoices:
        if invoice.number not in have:
            ctx.session.add(CaseInvoice(id=new_id("cinv"), case_id=case.id,
                                        number=invoice.number, amount=invoice.amount.amount,
                                        due_date=invoice.due_date, paid=ZERO,
                                        claimed=claimed))  # fmt: skip


async def _signal_opening(ctx: Context, case: Case, days_past_due: int) -> None:
    """Tell underwriting what the new case says of the buyer (a mandate on a debt past due: a
    payment delay)."""
    if rules.signal_on_opening(case.claim_id, days_past_due=days_past_due) is None:
        return
    signal = messages.mandate_signal(case.id, case.creditor_id, ctx.today)
    await _signal_underwriting(ctx, case.id, case.buyer_id, signal,
                               f"collections:mandate:{case.id}")  # fmt: skip


async def _signal_underwriting(
    ctx: Context, case_id: str, buyer_id: str, signal: BuyerSignal, key: str
) -> None:
    """Tell underwriting of the case's buyer through the outbox, in the change's transaction; the
    key (one per case and kind of signal) makes underwriting record it once however often it is
    sent."""
    await enqueue(
        ctx.session, outbox, aggregate_id=case_id, target="underwriting",
        path=messages.SIGNALS_PATH.format(buyer_id=buyer_id),
        body=signal.model_dump(mode="json", exclude_none=True), idempotency_key=key,
    )  # fmt: skip


async def redeliver(ctx: Context, stored: dict[str, Any]) -> None:
    """Before a replayed opening answers: what the first request put in the outbox for the case
    and has not delivered yet (its process died after the commit) is sent now, leases taken
    over."""
    ident = stored.get("id")
    if isinstance(ident, str):
        lease = dt.timedelta(seconds=ctx.settings.outbox_lease_seconds)
        await deliver(ctx.session, outbox, ctx.peers, aggregate_id=ident, lease=lease,
                      take_over=True,
                      within_seconds=ctx.settings.outbox_answer_wait_seconds)  # fmt: skip


async def deliver_for(ctx: Context, aggregate_id: str) -> None:
    """After a commit: send what the change put in the outbox, waiting no longer than
    `TCI_OUTBOX_ANSWER_WAIT_SECONDS` (the background loop retries what does not go through
    now)."""
    lease = dt.timedelta(seconds=ctx.settings.outbox_lease_seconds)
    await deliver(ctx.session, outbox, ctx.peers, aggregate_id=aggregate_id, lease=lease,
                  within_seconds=ctx.settings.outbox_answer_wait_seconds)  # fmt: skip


def _share_given(opening: CaseCreate, currency: str) -> rules.InsurerShare | None:
    """The insurer's share a paid claim hands over, exactly: the indemnity paid over the total of
    the claim's unpaid invoices, or the percentage given (none given: no share)."""
    if opening.insurer_share_pct is not None:
        return rules.InsurerShare.from_pct(opening.insurer_share_pct)
    if opening.indemnity_paid is None:
        return None
    paid = amount_in(opening.indemnity_paid, currency, ["body", "indemnity_paid"],
                     whose="the case's invoices")  # fmt: skip
    total = sum((i.amount.amount for i in opening.invoices), ZERO)
    share = rules.indemnity_share(paid, total)
    if share is None:
        raise invalid(["body", "indemnity_paid", "amount"],
                      f"must be between 0 and the invoices' total of {total}")  # fmt: skip
    return share


def _claimed(opening: CaseCreate, currency: str) -> dict[str, rules.ClaimedInvoice]:
    """What the paid claim says of each of its invoices: unpaid (nothing on one it settled) and
    what its indemnity deducted as recovered in collections, in the case's currency."""
    listed: list[tuple[str, int, str, Decimal, MoneyModel | None]] = [
        *(("invoices", index, i.number, i.amount.amount, i.recovered_in_collections)
          for index, i in enumerate(opening.invoices)),
        *(("settled_invoices", index, i.number, ZERO, i.recovered_in_collections)
          for index, i in enumerate(opening.settled_invoices)),
    ]  # fmt: skip
    said: dict[str, rules.ClaimedInvoice] = {}
    for where, index, number, unpaid, recovered in listed:
        counted = None
        if recovered is not None:
            counted = amount_in(recovered, currency, ["body", where, index,
                                                      "recovered_in_collections"],
                                whose="the case's invoices")  # fmt: skip
        said[number] = rules.ClaimedInvoice(unpaid=unpaid, counted=counted)
    return said


def _booked(invoices: Sequence[CaseInvoice]) -> list[rules.BookedInvoice]:
    return [rules.BookedInvoice(i.number, i.due_date, i.amount, i.paid) for i in invoices]


async def _mandate_for(
    ctx: Context, opening: CaseCreate, claimed: dict[str, rules.ClaimedInvoice]
) -> Case | None:
    """The mandate collecting the same debt (same creditor and buyer, an invoice in common)
    that a paid claim takes over, if any (`rules.mandate_to_take_over`)."""
    mandates = await repo.mandates_sharing(ctx.session, opening.creditor_id, opening.buyer_id,
                                           list(claimed))  # fmt: skip
    if not mandates:
        return None
    invoices = await repo.invoices_of(ctx.session, [m.id for m in mandates])
    chosen = rules.mandate_to_take_over([rules.Mandate(
        m.id, m.status, bool(rules.take_over(_booked(invoices.get(m.id, [])), claimed).uncounted),
    ) for m in mandates])  # fmt: skip
    return next((m for m in mandates if m.id == chosen), None)


async def _take_over(
    ctx: Context, case: Case, opening: CaseCreate, share: rules.InsurerShare | None,
    claimed: dict[str, rules.ClaimedInvoice],
) -> CaseRead:  # fmt: skip
    """The claim is paid: the mandate becomes the subrogation case and owes what the claim left
    unpaid (`rules.take_over`); what it recovered that the claim's indemnity did not deduct is
    shared again as a recovery after the claim, and what it recovers from now on on the claim's
    invoices is shared (on its other invoices: the policyholder's, after the fee). Invoices of
    the claim it did not have are added."""
    currency = opening.invoices[0].amount.currency
    if currency != case.currency:
        raise unprocessable(CURRENCY_MISMATCH, f"the mandate {case.id} is in {case.currency}")
    case.claim_id = opening.claim_id
    case.loss_payee_ids = list(opening.loss_payee_ids)
    case.insurer_share_numerator = None if share is None else str(share.paid)
    case.insurer_share_denominator = None if share is None else str(share.of)
    invoices = await _invoices(ctx, case.id)
    await _climb_before_change(ctx, case, views.open_invoices(invoices))
    takeover = rules.take_over(_booked(invoices), claimed)
    credited_before = {i.number: i.paid for i in invoices}
    for invoice in invoices:
        invoice.amount = takeover.amounts[invoice.number]
        invoice.paid = takeover.paid[invoice.number]
        invoice.claimed = invoice.number in claimed  # only the claim's are the insurer's to share
    _add_invoices(ctx, case, opening, have={i.number for i in invoices}, claimed=True)
    _subrogation_activity(ctx, case, _takeover_note(case, opening, share, takeover,
                                                    credited_before),
                          {"claim_id": opening.claim_id})  # fmt: skip
    reshared = await _share_recovered_after_claim(ctx, case, takeover)
    await _hand_over_from_other_mandates(ctx, case, list(claimed))
    try:
        await ctx.session.flush()
    except IntegrityError:
        raise conflict(CASE_EXISTS, f"claim {opening.claim_id} already has a case") from None
    await _announce_reshared(ctx, case, reshared)
    await _settle_status_after_takeover(ctx, case)
    return await read_case(ctx, case)


async def _announce_reshared(
    ctx: Context, case: Case, reshared: Sequence[tuple[Payment, tuple[Decimal, Decimal]]]
) -> None:
    """The parties of the case taken over (its loss payees now among them) hear of each payment
    shared again after the claim (`case.payment_recorded`, `reshared_after_claim`): a partner
    reconciling from events sees the split it now has."""
    if not reshared:
        return
    c = case.currency
    left = rules.outstanding(views.open_invoices(await _invoices(ctx, case.id)))
    for payment, (insurer_was, policyholder_was) in reshared:
        was = _shares(c, payment.fee, insurer_was, policyholder_was)
        await announce(ctx.session, events, _payment_recorded(
            case, payment, left, reshared_after_claim=True, previous_allocation=was,
        ), subject_id=case.id, parties=_parties(case))  # fmt: skip


def _shares(currency: str, fee: Decimal, insurer: Decimal, policyholder: Decimal) -> RecoveryShares:
    return RecoveryShares(fee=money_read(fee, currency), insurer=money_read(insurer, currency),
                          policyholder=money_read(policyholder, currency))  # fmt: skip


def _payment_recorded(
    case: Case, payment: Payment, left: Decimal, **extra: Any
) -> CasePaymentRecorded:
    """`case.payment_recorded` of a payment as it is now shared, the case owing `left`."""
    c = case.currency
    return CasePaymentRecorded(
        case_id=case.id, claim_id=case.claim_id, creditor_id=case.creditor_id,
        payment_id=payment.id, amount=money_read(payment.amount, c),
        received_on=payment.received_on,
        allocation=_shares(c, payment.fee, payment.insurer, payment.policyholder),
        outstanding_after=money_read(left, c), **extra,
    )  # fmt: skip


async def _hand_over_from_other_mandates(ctx: Context, case: Case, numbers: list[str]) -> None:
    """The claim's invoices that other live mandates of the creditor on the buyer collect (a
    mandate opened per invoice, say) are collected by the case taken over from now on, as the
    claim left them unpaid: each such mandate stops collecting them (what it recovered on them
    stays recorded, its invoice owing nothing more), saying so, and one left owing nothing
    closes, handing its open disputes over with its debt; its creditor hears of it. Two live
    cases never collect one debt."""
    others = [m for m in await repo.mandates_sharing(ctx.session, case.creditor_id, case.buyer_id,
                                                     numbers)
              if m.id != case.id and CaseStatus(m.status) in rules.LIVE]  # fmt: skip
    if not others:
        return
    lines = await repo.invoices_of(ctx.session, [m.id for m in others])
    claimed = set(numbers)
    for mandate in others:
        handed = []
        unpaid_before = views.open_invoices(lines.get(mandate.id, []))
        for line in lines.get(mandate.id, []):
            if line.number in claimed and line.amount > line.paid:
                handed.append(f"{line.number} "
                              f"({Money(line.amount - line.paid, mandate.currency).rounded_text()}"
                              f" outstanding)")  # fmt: skip
                line.amount = line.paid
        if not handed:
            continue
        await _climb_before_change(ctx, mandate, unpaid_before)
        _subrogation_activity(ctx, mandate, (
            f"claim {case.claim_id} paid: " + ", ".join(handed) + f" collected by case "
            f"{case.id} from now on"), {"claim_id": case.claim_id, "case_id": case.id})  # fmt: skip
        unpaid = views.open_invoices(lines.get(mandate.id, []))
        if rules.outstanding(unpaid) > 0:
            continue
        before = (mandate.stage, CaseStatus(mandate.status))
        await _carry_disputes_over(ctx, mandate, case)
        mandate.status, mandate.closed_on = CaseStatus.CLOSED, ctx.today
        await _announce_stage(ctx, mandate, previous=before, days_past_due=None,
                              reason=f"claim {case.claim_id} paid: its invoices are collected by "
                              f"case {case.id}")  # fmt: skip
        await _announce_closed(ctx, mandate, "collected_by_another_case",
                               recovered=await _recovered(ctx, mandate))  # fmt: skip


async def _settle_status_after_takeover(ctx: Context, case: Case) -> None:
    """The mandate taken over owes what the claim left unpaid less what it recovered since
    (`rules.status_after_takeover`): owing nothing it closes (its disputes moot), owing something
    it collects, held while a dispute raised on it is open. Its parties (the claim's loss payees
    now among them) hear that it is the claim's recovery (`case.stage_changed` with the claim,
    its status changed or not), as they hear of a paid claim's case opened."""
    unpaid = views.open_invoices(await _invoices(ctx, case.id))
    still_open = rules.open_disputes(views.logged(await _activities(ctx, case.id)))
    before = (case.stage, CaseStatus(case.status))
    case.status = rules.status_after_takeover(rules.outstanding(unpaid), len(still_open))
    if case.status == CaseStatus.CLOSED:
        await _moot_open_disputes(ctx, case, ctx.today, f"claim {case.claim_id} paid: the case "
                                  "owes nothing once taken over")  # fmt: skip
    closes = case.status != before[1] and case.status == CaseStatus.CLOSED
    if case.status != before[1]:
        case.closed_on = ctx.today if closes else None
    days = rules.days_past_due(rules.oldest_unpaid_due(unpaid), ctx.today)
    reason = (f"claim {case.claim_id} paid: taken over owing nothing" if closes
              else f"claim {case.claim_id} paid: taken over, owing what the claim left unpaid")  # fmt: skip
    await _announce_stage(ctx, case, previous=before, days_past_due=days, reason=reason)
    if closes:
        await _announce_closed(ctx, case, "settled_by_claim", recovered=await _recovered(ctx, case))
    await ctx.session.flush()


def _subrogation_activity(
    ctx: Context, case: Case, note: str, details: dict[str, object]
) -> None:  # fmt: skip
    ctx.session.add(Activity(
        id=new_id("act"), created_at=utcnow(), case_id=case.id, kind="subrogation",
        occurred_on=ctx.today, note=note, promised_amount=None, promised_on=None,
        details=details, recorded_by=ctx.caller.subject))  # fmt: skip


async def _recovered(ctx: Context, case: Case) -> Decimal:
    """What the case's payments came to."""
    payments = (await repo.payments_of(ctx.session, [case.id])).get(case.id, [])
    return sum((p.amount for p in payments), ZERO)


async def _activities(ctx: Context, case_id: str) -> list[Activity]:
    return (await repo.activities_of(ctx.session, [case_id])).get(case_id, [])


def _dispute_activity(
    ctx: Context, case: Case, kind: str, on: dt.date, note: str, details: dict[str, object]
) -> Activity:  # fmt: skip
    """A dispute raised or resolved by the service itself (not a collector's act)."""
    activity = Activity(
        id=new_id("act"), created_at=utcnow(), case_id=case.id, kind=kind, occurred_on=on,
        note=note, promised_amount=None, promised_on=None, details=details,
        recorded_by=ctx.caller.subject)  # fmt: skip
    ctx.session.add(activity)
    return activity


async def _moot_open_disputes(ctx: Context, case: Case, closed_on: dt.date, why: str) -> None:
    """A case that closes owing nothing leaves no dispute open (`rules.disputes_mooted`): each
    one still open is resolved as moot, saying why."""
    mooted = rules.disputes_mooted(views.logged(await _activities(ctx, case.id)), closed_on)
    for dispute_id, on in mooted:
        _dispute_activity(ctx, case, rules.DISPUTE_RESOLVED, on, f"dispute {dispute_id} moot: "
                          f"{why}", {"dispute_id": dispute_id, "outcome": rules.MOOT})  # fmt: skip


async def _carry_disputes_over(ctx: Context, mandate: Case, case: Case) -> None:
    """A mandate that closes because the case a paid claim took over collects its debt from now
    on hands over the disputes still open on it: the buyer still disputes that debt, so each is
    raised again on the case (which holds) and resolved on the mandate as carried over."""
    logged = await _activities(ctx, mandate.id)
    notes = {a.id: a.note for a in logged}
    for dispute in rules.open_disputes(views.logged(logged)):
        said = notes.get(dispute.activity_id)
        carried = _dispute_activity(
            ctx, case, rules.DISPUTE_RAISED, ctx.today,
            f"dispute {dispute.activity_id} raised on case {mandate.id} on "
            f"{dispute.occurred_on.isoformat()}, carried over with its debt"
            + (f": {said}" if said else ""),
            {"carried_from": {"case_id": mandate.id, "dispute_id": dispute.activity_id}})  # fmt: skip
        _dispute_activity(
            ctx, mandate, rules.DISPUTE_RESOLVED, ctx.today,
            f"dispute {dispute.activity_id} carried over to case {case.id} as {carried.id}",
            {"dispute_id": dispute.activity_id, "outcome": rules.CARRIED_OVER,
             "case_id": case.id, "carried_to": carried.id})  # fmt: skip


def _takeover_note(
    case: Case, opening: CaseCreate, share: rules.InsurerShare | None, takeover: rules.Takeover,
    credited_before: dict[str, Decimal],
) -> str:  # fmt: skip
    """What the takeover did, said on the case: the share, the claim's reductions, and the
    recoveries credited again where the reductions moved them."""

    def text(amount: Decimal) -> str:
        return Money(amount, case.currency).rounded_text()

    shown = ZERO if share is None else share.pct(views.SHARE_PCT_SHOWN_PLACES)
    note = (
        f"claim {opening.claim_id} paid: recoveries from now on are shared, {shown}% to the insurer"
    )
    if takeover.reduced:
        note += "; the claim's credit notes, set-offs and direct recoveries reduce " + ", ".join(
            f"{n} by {text(by)}" for n, by in takeover.reduced.items()
        )
    moved = {n: (was, takeover.paid[n]) for n, was in credited_before.items()
             if takeover.paid[n] != was}  # fmt: skip
    if moved:
        note += "; the case's recoveries credited again oldest first: " + ", ".join(
            f"{n} {text(was)} → {text(now)}" for n, (was, now) in moved.items()
        )
    if takeover.uncounted:
        note += (f"; {text(sum(takeover.uncounted.values(), ZERO))} recovered on the claim's "
                 f"invoices was not deducted from its indemnity: shared as recovered after the "
                 f"claim")  # fmt: skip
    return note


async def _share_recovered_after_claim(
    ctx: Context, case: Case, takeover: rules.Takeover
) -> list[tuple[Payment, tuple[Decimal, Decimal]]]:
    """Each payment the mandate recorded that the claim's indemnity did not deduct (recorded
    after the claim read the mandate's recoveries) is shared again as a recovery after the paid
    claim, in the order recorded, each knowing what the earlier ones were given, so that together
    they are shared as their whole recovered after the claim is, to the cent; with an activity
    saying what it was and what it is now. Each is the claim's from then on (`claim_id`, keeping
    what of it was recovered after the claim), so that what the case recovers later is shared
    with them as one amount. The payments shared again, each with its (insurer, policyholder)
    shares before."""
    if not takeover.uncounted:
        return []
    payments = sorted((await repo.payments_of(ctx.session, [case.id])).get(case.id, []),
                      key=lambda p: (p.created_at, p.id))  # fmt: skip
    booked = [rules.BookedPayment(p.id, [(c["invoice_number"], Decimal(c["amount"]))
                                         for c in p.credited]) for p in payments]  # fmt: skip
    parts = rules.recovered_after_claim(booked, takeover.counted)
    share = views.share_of(case)
    c = case.currency
    earlier = rules.Shared.nothing(c)
    reshared: list[tuple[Payment, tuple[Decimal, Decimal]]] = []
    for payment in payments:
        part = parts.get(payment.id)
        if part is None:
            continue
        was = (payment.insurer, payment.policyholder)
        again = rules.share_recovered_after_claim(
            Money(payment.amount, c), Money(payment.fee, c), part, fee_pct=case.fee_pct,
            share=share, earlier=earlier,
        )  # fmt: skip
        earlier = earlier.plus(Money(payment.amount, c), again, Money(part, c))
        payment.claim_id, payment.recovered_after_claim = case.claim_id, part
        if (again.insurer.amount, again.policyholder.amount) == was:
            continue
        payment.insurer, payment.policyholder = again.insurer.amount, again.policyholder.amount
        _subrogation_activity(ctx, case, (
            f"payment {payment.id} of {Money(payment.amount, c).rounded_text()} received on "
            f"{payment.received_on.isoformat()} ({Money(part, c).rounded_text()} of it not "
            f"deducted from claim {case.claim_id}'s indemnity) shared again as recovered after "
            f"the claim: fee {again.fee.rounded_text()}, insurer {again.insurer.rounded_text()}, "
            f"policyholder {again.policyholder.rounded_text()} (was insurer "
            f"{Money(was[0], c).rounded_text()}, policyholder {Money(was[1], c).rounded_text()})"
        ), {"claim_id": case.claim_id, "payment_id": payment.id,
            "recovered_after_claim": str(part),
            "was": {"insurer": str(was[0]), "policyholder": str(was[1])},
            "now": {"insurer": str(again.insurer.amount),
                    "policyholder": str(again.policyholder.amount)}})  # fmt: skip
        reshared.append((payment, was))
    return reshared


async def recoveries(ctx: Context, creditor_id: str, buyer_id: str, currency: str) -> Recoveries:
    """What the creditor's mandates recovered from the buyer before any claim, per invoice. A
    creditor is known by its cases; a policyholder reads its own only (another is not found,
    as one with no case)."""
    if ctx.caller.role == "policyholder" and creditor_id != ctx.caller.party_id:
        raise not_found("creditor", creditor_id)
    rows = await repo.mandate_recoveries(ctx.session, creditor_id, buyer_id, currency)
    if not rows and not await repo.has_cases(ctx.session, creditor_id):
        raise not_found("creditor", creditor_id)
    return views.recoveries(creditor_id, buyer_id, currency, rows)


def _hidden_from(caller: Caller, case: views.ACase) -> bool:
    """A policyholder sees its own cases only (as their creditor): another's is not found."""
    return caller.role == "policyholder" and case.creditor_id != caller.party_id


async def case_of(ctx: Context, case_id: str, *, lock: bool = False) -> Case:
    case = await repo.case(ctx.session, case_id, lock=lock)
    if case is None or _hidden_from(ctx.caller, case):
        raise not_found("case", case_id)
    return case


async def _payments(ctx: Context, case_id: str) -> list[Payment]:
    return (await repo.payments_of(ctx.session, [case_id])).get(case_id, [])


async def _invoices(ctx: Context, case_id: str) -> list[CaseInvoice]:
    return (await repo.invoices_of(ctx.session, [case_id])).get(case_id, [])


async def get_case(reader: Reader, caller: Caller, today: dt.date, case_id: str) -> dict[str, Any]:
    """A case the caller may see, as plain JSON data (`CaseRead`): the case, then its lines, in
    two statements on one connection, outside any transaction."""
    async with reader.one_connection() as reads:
        case = await repo.case_row(reads, case_id)
        if case is None or _hidden_from(caller, case):
            raise not_found("case", case_id)
        lines = await repo.lines_of(reads, [case.id])
    return _case_answer(case, lines, today)


async def list_cases(
    reader: Reader, caller: Caller, today: dt.date, page: PageRequest, *, status: str | None,
    claim_id: str | None,
) -> dict[str, Any]:  # fmt: skip
    """A page of the cases the caller may see (a policyholder: its own, as creditor), as plain
    JSON data (`CaseList`): the page, then all its cases' lines, in two statements on one
    connection, outside any transaction."""
    creditor_id = caller.party_id if caller.role == "policyholder" else None
    async with reader.one_connection() as reads:
        rows, cursor = await repo.cases_page(reads, page, creditor_id=creditor_id,
                                             status=status, claim_id=claim_id)  # fmt: skip
        lines = await repo.lines_of(reads, [row.id for row in rows]) if rows else None
    items = [] if lines is None else [_case_answer(row, lines, today) for row in rows]
    return {"items": items, "next_cursor": cursor}


def _case_answer(case: CaseRow, lines: repo.CaseLines, today: dt.date) -> dict[str, Any]:
    return views.case_answer(case, lines.invoices.get(case.id, []),
                             lines.activities.get(case.id, []), lines.payments.get(case.id, []),
                             lines.rungs.get(case.id, []), today)  # fmt: skip


async def read_case(ctx: Context, case: Case) -> CaseRead:
    """A case a change answers with, its invoices, activities and payments read in the change's
    session (what it flushed included)."""
    ids = [case.id]
    invoices = await repo.invoices_of(ctx.session, ids)
    activities = await repo.activities_of(ctx.session, ids)
    payments = await repo.payments_of(ctx.session, ids)
    return views.case_read(case, invoices.get(case.id, []), activities.get(case.id, []),
                           payments.get(case.id, []), await _rungs_of(ctx, case.ladder),
                           ctx.today)  # fmt: skip


def _refuse_if_closed(case: Case) -> None:
    if not rules.takes_acts(case.status):
        raise conflict(CASE_CLOSED, f"case {case.id} was closed on {case.closed_on}")


def _status_after(case: Case, act: rules.CaseAct) -> CaseStatus:
    """The case's status after the act, or the refusal the transition table names."""
    try:
        return rules.status_after(case.status, act)
    except rules.ActRefused as refused:
        if refused.problem == rules.CASE_CLOSED:
            detail = f"case {case.id} was closed on {case.closed_on}"
            raise conflict(CASE_CLOSED, detail) from None
        raise unprocessable(NO_OPEN_DISPUTE, "the case is not on hold") from None


async def add_activity(ctx: Context, case_id: str, done: ActivityCreate) -> ActivityRead:
    """Log what was done; a dispute holds the case (it climbs no further) until every dispute
    raised on it is resolved, each resolution naming its dispute. A promise to pay is for at
    most what the case still owes (422 `promise-exceeds-outstanding`)."""
    case = await case_of(ctx, case_id, lock=True)
    _refuse_if_closed(case)
    if done.occurred_on > ctx.today:
        raise invalid(["body", "occurred_on"], f"what was done happened by today ({ctx.today}), "
                      "not after")  # fmt: skip
    if done.occurred_on < case.opened_on:
        raise invalid(["body", "occurred_on"], f"the case was opened on {case.opened_on}: what "
                      "it records was done on that day or after")  # fmt: skip
    if done.promised_on is not None:
        _refuse_promise_outside_window(ctx, done.occurred_on, done.promised_on)
    promised = None
    if done.promised_amount is not None:
        promised = positive_amount_in(done.promised_amount, case.currency,
                                      ["body", "promised_amount"], whose="the case")  # fmt: skip
        await _refuse_promise_over_outstanding(ctx, case, promised)
    details: dict[str, object] | None = None
    left_open = 0
    if done.kind == rules.DISPUTE_RESOLVED:
        resolved, left_open = await _dispute_to_resolve(ctx, case, done)
        details = {"dispute_id": resolved}
    act = rules.act_of_activity(done.kind, disputes_left_open=left_open)
    if case.status in rules.CLIMBING and _status_after(case, act) not in rules.CLIMBING:
        unpaid = views.open_invoices(await _invoices(ctx, case.id))
        await _climb_before_change(ctx, case, unpaid)
    before = (case.stage, CaseStatus(case.status))
    case.status = _status_after(case, act)
    if case.status != before[1]:
        await _announce_stage(ctx, case, previous=before, days_past_due=None,
                              reason=f"{done.kind.replace('_', ' ')} logged")  # fmt: skip
    activity = Activity(
        id=new_id("act"), created_at=utcnow(), case_id=case.id, kind=done.kind,
        occurred_on=done.occurred_on, note=done.note, promised_amount=promised,
        promised_on=done.promised_on, details=details, recorded_by=ctx.caller.subject,
    )  # fmt: skip
    await _signal_legal_step(ctx, case, done)
    ctx.session.add(activity)
    await ctx.session.flush()
    return views.activity_read(activity, case)


def _refuse_promise_outside_window(ctx: Context, made_on: dt.date, due_on: dt.date) -> None:
    """A promise to pay falls due on or after the day it is made (`occurred_on`) and at most the
    promise horizon after it (`rules.promise_window`); else 422 on `promised_on`, naming the
    bound."""
    horizon = ctx.settings.promise_horizon_days
    earliest, latest = rules.promise_window(made_on, horizon)
    if due_on < earliest:
        raise invalid(["body", "promised_on"], f"a promise made on {earliest} (occurred_on) "
                      f"falls due on that day or after, not {due_on}")  # fmt: skip
    if due_on > latest:
        raise invalid(["body", "promised_on"], f"a promise made on {earliest} falls due at most "
                      f"{horizon} days after it, by {latest}, not {due_on}")  # fmt: skip


async def _refuse_promise_over_outstanding(ctx: Context, case: Case, promised: Decimal) -> None:
    """A promise that, with the promises still open (not yet due, not yet kept), is for more
    than the case still owes is 422 `promise-exceeds-outstanding`, naming what is outstanding,
    what the open promises still await, and what may still be promised. The case is locked:
    promises fired at once are weighed one after the other."""
    owed = rules.outstanding(views.open_invoices(await _invoices(ctx, case.id)))
    payments = (await repo.payments_of(ctx.session, [case.id])).get(case.id, [])
    still_open = rules.open_promises(views.promise_book(await _activities(ctx, case.id),
                                                        payments), ctx.today)  # fmt: skip
    if rules.may_promise(promised, owed, still_open):
        return
    c = case.currency

    def text(amount: Decimal) -> str:
        return f"{Money(amount, c).rounded_text()} {c}"

    awaited = sum((p.unkept for p in still_open), ZERO)
    left = rules.promisable(owed, still_open)
    detail = f"a promise of {text(promised)} exceeds the outstanding {text(owed)}"
    if still_open:
        listed = ", ".join(f"{p.activity_id} due {p.due_on.isoformat()}" for p in still_open)
        detail = (f"a promise of {text(promised)}, with {text(awaited)} promised and not yet "
                  f"paid by the open promises ({listed}), exceeds the outstanding {text(owed)}: "
                  f"at most {text(left)} more may be promised")  # fmt: skip
    raise unprocessable(
        PROMISE_EXCEEDS_OUTSTANDING,
        detail,
        outstanding=money_read(owed, c).model_dump(mode="json"),
        promised_open=money_read(awaited, c).model_dump(mode="json"),
        promisable=money_read(left, c).model_dump(mode="json"),
        open_promises=[p.activity_id for p in still_open],
    )


async def _dispute_to_resolve(
    ctx: Context, case: Case, done: ActivityCreate
) -> tuple[str, int]:  # fmt: skip
    """The dispute a resolution resolves (`rules.dispute_resolved`) and how many stay open after
    it. Refused: none open (422 `no-open-dispute`), several open and none named, or one named
    that is an activity of the case but no dispute (422 on `dispute_id`), one resolved already (409
    `already-decided`), a resolution dated before its dispute (422 on `occurred_on`). An id that
    is no activity of the case (none at all, or another case's) is 404, as its read would be."""
    logged = views.logged((await repo.activities_of(ctx.session, [case.id])).get(case.id, []))
    if done.dispute_id is not None and all(a.activity_id != done.dispute_id for a in logged):
        raise not_found("activity", done.dispute_id)
    try:
        dispute = rules.dispute_resolved(logged, done.dispute_id)
    except rules.ResolutionRefused as refused:
        still_open = ", ".join(refused.open_ids) or "none"
        if refused.problem == rules.NO_OPEN_DISPUTE:
            raise unprocessable(NO_OPEN_DISPUTE, f"case {case.id} has no open dispute") from None
        if refused.problem == rules.DISPUTE_ALREADY_RESOLVED:
            raise conflict(ALREADY_DECIDED, f"dispute {refused.named} of case {case.id} is "
                           f"resolved already (open: {still_open})",
                           open_disputes=refused.open_ids) from None  # fmt: skip
        if refused.problem == rules.DISPUTE_NOT_NAMED:
            raise invalid(["body", "dispute_id"], f"case {case.id} has {len(refused.open_ids)} "
                          f"open disputes ({still_open}): name the one resolved") from None  # fmt: skip
        raise invalid(["body", "dispute_id"], f"no dispute {refused.named} was raised on case "
                      f"{case.id} (open: {still_open})") from None  # fmt: skip
    if done.occurred_on < dispute.occurred_on:
        raise invalid(["body", "occurred_on"], f"dispute {dispute.activity_id} was raised on "
                      f"{dispute.occurred_on}: it is resolved on that day or after")  # fmt: skip
    return dispute.activity_id, len(rules.open_disputes(logged)) - 1


async def _signal_legal_step(ctx: Context, case: Case, done: ActivityCreate) -> None:
    """The case's first legal step tells underwriting the buyer would not pay amicably."""
    if done.kind != messages.LEGAL_ACTIVITY or case.stage in ctx.settings.legal_stage_names():
        return  # not a legal step, or the case went to law on its ladder already (said then)
    earlier = (await repo.activities_of(ctx.session, [case.id])).get(case.id, [])
    signal = messages.legal_step_signal(case.id, case.creditor_id, done.kind,
                                        [a.kind for a in earlier], done.occurred_on)  # fmt: skip
    if signal is not None:
        await _signal_underwriting(ctx, case.id, case.buyer_id, signal,
                                   f"collections:legal:{case.id}")  # fmt: skip


async def record_payment(ctx: Context, case_id: str, received: PaymentCreate) -> PaymentRead:
    """Credit the oldest unpaid invoice first; the fee, then the insurer's and the policyholder's
    shares; more than is outstanding is 422 `overpayment`. Paid in full closes the case. The
    creditor's cases on the buyer take turns (as they open and are taken over), so that of two
    of its last cases paid at once, the second sees the first closed."""
    parties = await repo.creditor_and_buyer_of(ctx.session, case_id)
    if parties is not None:
        await repo.serialise_cases_of(ctx.session, *parties)
    case = await case_of(ctx, case_id, lock=True)
    _refuse_if_closed(case)
    amount = positive_amount_in(received.amount, case.currency, ["body", "amount"],
                                whose="the case")  # fmt: skip
    if received.received_on > ctx.today:
        raise invalid(["body", "received_on"], f"a payment is recorded once received: by today "
                      f"({ctx.today}), not ahead")  # fmt: skip
    if received.received_on < case.opened_on:
        raise invalid(["body", "received_on"], f"the case was opened on {case.opened_on}: what "
                      "it recovers is received on that day or after")  # fmt: skip
    invoices = await _invoices(ctx, case.id)
    try:
        credits = rules.book_payment(views.open_invoices(invoices), amount)
    except rules.Overpayment as over:
        raise unprocessable(
            OVERPAYMENT,
            f"{Money(amount, case.currency).rounded_text()} exceeds the outstanding "
            f"{Money(over.outstanding, case.currency).rounded_text()} {case.currency}",
            outstanding=money_read(over.outstanding, case.currency).model_dump(mode="json"),
        ) from None
    await _climb_before_change(ctx, case, views.open_invoices(invoices))
    by_number = {i.number: i for i in invoices}
    for credit in credits:
        by_number[credit.invoice_number].paid += credit.amount
    left = credits[-1].outstanding_after  # a payment above zero credits at least one invoice
    *summed, deducted = await repo.shared_so_far(ctx.session, case.id, case.claim_id)
    so_far, fee_so_far, insurer_so_far = (Money(x, case.currency) for x in summed)
    on_claim, claimed_before = await _recovered_on_claim(ctx, case, invoices, credits,
                                                         so_far=so_far, deducted=deducted)  # fmt: skip
    share = rules.share_recovery(
        Money(amount, case.currency), fee_pct=case.fee_pct, share=views.share_of(case),
        earlier=rules.Shared(so_far, fee_so_far, insurer_so_far, claimed_before),
        claimed=on_claim,
    )  # fmt: skip
    payment = Payment(
        id=new_id("pay"), created_at=utcnow(), case_id=case.id, amount=amount,
        received_on=received.received_on, fee=share.fee.amount, insurer=share.insurer.amount,
        policyholder=share.policyholder.amount, recorded_by=ctx.caller.subject,
        claim_id=case.claim_id,
        credited=[{"invoice_number": c.invoice_number, "amount": str(c.amount),
                   "outstanding_after": str(c.outstanding_after)} for c in credits],
    )  # fmt: skip
    ctx.session.add(payment)
    case.status = _status_after(case, rules.act_of_payment(left))
    if case.status == CaseStatus.CLOSED:
        # Paid in full when the last of its money came in (payments may be recorded late, in
        # any order): never before a payment it recovered was received.
        received_on = [p.received_on for p in await _payments(ctx, case.id)]
        case.closed_on = max([received.received_on, *received_on])
        await _moot_open_disputes(ctx, case, case.closed_on,
                                  f"the case was paid in full by payment {payment.id}")  # fmt: skip
    await ctx.session.flush()
    await _announce_payment(
        ctx, case, payment, left, recovered=sum((i.paid for i in invoices), ZERO)
    )
    closed = case.status == CaseStatus.CLOSED
    others_live = closed and await repo.other_live_case(ctx.session, case)
    paid_in_full = messages.paid_in_full_signal(case.id, case.creditor_id, closed,
                                                case.closed_on or received.received_on,
                                                others_live=others_live)  # fmt: skip
    if paid_in_full is not None:  # a case closes once: one signal
        await _signal_underwriting(ctx, case.id, case.buyer_id, paid_in_full,
                                   f"collections:paid:{case.id}")  # fmt: skip
    return views.payment_read(payment, case, left)


async def _recovered_on_claim(
    ctx: Context, case: Case, invoices: Sequence[CaseInvoice], credits: Sequence[rules.Credit],
    *, so_far: Money, deducted: Decimal,
) -> tuple[Money | None, Money | None]:  # fmt: skip
    """What of a payment, and of the case's earlier payments under its claim's share (`so_far`,
    of which its indemnity `deducted` from the mandate's payments shared again), the claim's
    share splits: what was credited to the claim's invoices (`rules.claimed_part`), of a payment
    shared again what was recovered after the claim; (None, None): all of it, as on a case whose
    invoices are all the claim's and recoveries all after it (or a mandate's, no claim: nothing
    is shared)."""
    numbers = {i.number for i in invoices if i.claimed}
    if case.claim_id is None:
        return None, None
    c = case.currency
    if len(numbers) == len(invoices):
        return None, (None if deducted == 0 else Money(so_far.amount - deducted, c))
    earlier = ZERO
    for p in await _payments(ctx, case.id):
        if p.claim_id != case.claim_id:
            continue
        earlier += (p.recovered_after_claim if p.recovered_after_claim is not None else
                    rules.claimed_part([(str(x["invoice_number"]), Decimal(x["amount"]))
                                        for x in p.credited], numbers))  # fmt: skip
    now = [(x.invoice_number, x.amount) for x in credits]
    return Money(rules.claimed_part(now, numbers), c), Money(earlier, c)


async def _announce_payment(
    ctx: Context, case: Case, payment: Payment, left: Decimal, *, recovered: Decimal
) -> None:
    """The case's creditor hears of the payment (`case.payment_recorded`) and, when it paid the
    case in full, that the case is closed (`case.closed`)."""
    await announce(ctx.session, events, _payment_recorded(case, payment, left),
                   subject_id=case.id, parties=_parties(case))  # fmt: skip
    if case.closed_on is not None and case.status == CaseStatus.CLOSED:
        await _announce_closed(ctx, case, "paid_in_full", recovered=recovered)


async def _announce_closed(
    ctx: Context, case: Case, reason: ClosedReason, *, recovered: Decimal
) -> None:  # fmt: skip
    """The case's creditor hears that it is closed, why, and what it recovered (`case.closed`)."""
    await announce(ctx.session, events, CaseClosed(
        case_id=case.id, claim_id=case.claim_id, creditor_id=case.creditor_id,
        closed_on=case.closed_on or ctx.today, reason=reason,
        recovered=money_read(recovered, case.currency),
    ), subject_id=case.id, parties=_parties(case))  # fmt: skip


async def run_escalations(ctx: Context, as_of: dt.date) -> EscalationResult:
    """Move every open case up to the highest rung its days past due reach on `as_of` (never
    down; a case on hold stays where it is); each move is logged on the case. Set-based: one read
    of the ladders, one of every open case with its oldest unpaid due date, one update and one
    insert of the moves. A run dated after today is refused (422 `validation` on `as_of`)."""
    if not rules.may_run_as_of(as_of, ctx.today):
        ahead = f"the ladder is run as of today ({ctx.today}) or a day gone by, not {as_of}"
        raise invalid(["body", "as_of"], ahead)
    ladders = await repo.ladders(ctx.session)
    climbing = await repo.climbing_cases(ctx.session)
    moves = rules.escalations(climbing, ladders, as_of)
    await _record_moves(ctx, moves, as_of)
    moved = [CaseMove.model_construct(case_id=m.case_id, from_stage=m.from_stage,
                                      to_stage=m.to_stage, days_past_due=m.days_past_due)
             for m in moves]  # fmt: skip
    # The cases another transaction held were skipped: said, so that an empty `moved` is not
    # read as "nothing to move" while a run beside this one is still moving them.
    held = max(0, await repo.climbing_count(ctx.session) - len(climbing))
    return EscalationResult(as_of=as_of, moved=moved, held_elsewhere=held)


async def _record_moves(ctx: Context, moves: Sequence[rules.Move], as_of: dt.date) -> None:
    """The moves up the ladder as of a day, recorded: each case's stage, an `escalation`
    activity logged on it, and its creditor told (`case.stage_changed`)."""
    if not moves:
        return
    now = utcnow()
    await repo.move_stages(ctx.session, [(m.case_id, m.to_stage) for m in moves], [
        {"id": new_id("act"), "created_at": now, "case_id": m.case_id, "kind": "escalation",
         "occurred_on": as_of, "recorded_by": ctx.caller.subject,
         "note": f"{m.from_stage} → {m.to_stage} at {m.days_past_due} days past due",
         "details": {"from": m.from_stage, "to": m.to_stage, "days_past_due": m.days_past_due}}
        for m in moves])  # fmt: skip
    await _announce_moves(ctx, moves, as_of)
    await _signal_gone_to_law(ctx, moves, as_of)


async def _signal_gone_to_law(ctx: Context, moves: Sequence[rules.Move], as_of: dt.date) -> None:
    """A case its ladder puts on a legal rung has gone to law: underwriting hears of it once per
    case (`collection_legal`), unless a collector's legal filing on it said so already."""
    legal = ctx.settings.legal_stage_names()
    reached = [m for m in moves if m.to_stage in legal and m.from_stage not in legal]
    if not reached:
        return
    ids = [m.case_id for m in reached]
    cases = await repo.cases_heard_of(ctx.session, ids)
    filed = await repo.cases_with_activity(ctx.session, ids, messages.LEGAL_ACTIVITY)
    for move in reached:
        if move.case_id in filed:
            continue
        case = cases[move.case_id]
        signal = messages.legal_rung_signal(case.id, case.creditor_id, move.to_stage, as_of)
        await _signal_underwriting(ctx, case.id, case.buyer_id, signal,
                                   f"collections:legal:{case.id}")  # fmt: skip


async def _climb_before_change(
    ctx: Context, case: Case, unpaid: Sequence[rules.OpenInvoice]
) -> None:  # fmt: skip
    """An open case about to stop climbing (held by a dispute, closed) or whose debt is about to
    change (a payment, a paid claim's takeover) first stands on the rung its days past due reach
    today, as reads have shown it since that rung's day: a case never climbs down, and one held
    or closed stays where it stood. The move the daily run has not recorded yet is recorded now,
    as the run records it (once: the run finds it there). `unpaid`: its invoices as they stood
    before the change."""
    if CaseStatus(case.status) not in rules.CLIMBING:
        return
    oldest = rules.oldest_unpaid_due(unpaid)
    ladder = await _rungs_of(ctx, case.ladder)
    moves = rules.escalations([rules.StandingCase(case.id, case.ladder, case.stage, oldest)],
                              {case.ladder: ladder}, ctx.today)  # fmt: skip
    await _record_moves(ctx, moves, ctx.today)
    for move in moves:
        case.stage = move.to_stage


async def _announce_moves(ctx: Context, moves: Sequence[rules.Move], as_of: dt.date) -> None:
    """Each moved case's creditor hears of its new rung (`case.stage_changed`). The payloads are
    built from the books as they are (the whole book may move at once: no validation)."""
    cases = await repo.cases_heard_of(ctx.session, [m.case_id for m in moves])
    for m in moves:
        case = cases[m.case_id]
        status = CaseStatus(case.status)
        await announce(ctx.session, events, CaseStageChanged.model_construct(
            case_id=m.case_id, claim_id=case.claim_id, creditor_id=case.creditor_id,
            buyer_id=case.buyer_id, ladder=case.ladder, previous_stage=m.from_stage,
            stage=m.to_stage, previous_status=status, status=status,
            days_past_due=m.days_past_due, changed_on=as_of,
            reason=f"{m.days_past_due} days past due: escalated to {m.to_stage}",
        ), subject_id=m.case_id, parties=_parties(case))  # fmt: skip


async def activity(ctx: Context, case_id: str, activity_id: str) -> ActivityRead:
    case = await case_of(ctx, case_id)
    found = await repo.by_id(ctx.session, Activity, activity_id)
    if found is None or found.case_id != case.id:
        raise not_found("activity", activity_id)
    return views.activity_read(found, case)


async def payment(ctx: Context, case_id: str, payment_id: str) -> PaymentRead:
    case = await case_of(ctx, case_id)
    found = await repo.by_id(ctx.session, Payment, payment_id)
    if found is None or found.case_id != case.id:
        raise not_found("payment", payment_id)
    return views.payment_read(found, case)
