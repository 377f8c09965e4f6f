"""Collection rules: a case's status and its acts (its disputes, moot once it owes nothing), the
rung a case stands on and climbs to (never down), payments credited oldest first, promises to pay
weighed together against what is owed, and recoveries shared exactly between fee, insurer and
policyholder. The ladders themselves are data (the table `collections.ladders`)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Final, Literal, NamedTuple

from shared.money import Money, minor_units

ZERO = Decimal(0)


# ---------------------------------------------------------------- the case's status


class CaseStatus(StrEnum):
    OPEN = "open"  # climbing its ladder
    ON_HOLD = "on_hold"  # a dispute was raised: it climbs no further until it is resolved
    CLOSED = "closed"  # nothing is outstanding


# The cases still collecting (a paid claim takes over such a mandate) and the ones the daily run
# moves up their ladders.
LIVE = frozenset({CaseStatus.OPEN, CaseStatus.ON_HOLD})
CLIMBING = frozenset({CaseStatus.OPEN})


class CaseAct(StrEnum):
    LOG = "log"  # a letter, a call, a promise, a legal step, a note
    RAISE_DISPUTE = "raise_dispute"
    RESOLVE_DISPUTE = "resolve_dispute"  # another dispute raised on the case is still open
    RESOLVE_LAST_DISPUTE = "resolve_last_dispute"  # no dispute raised on the case is open after it
    CREDIT_PAYMENT = "credit_payment"  # something is still outstanding after it
    PAY_IN_FULL = "pay_in_full"  # nothing is outstanding after it


# Which act moves a case from which status to which; an act from a status not listed is refused.
TRANSITIONS: Mapping[CaseAct, Mapping[CaseStatus, CaseStatus]] = {
    CaseAct.LOG: {CaseStatus.OPEN: CaseStatus.OPEN, CaseStatus.ON_HOLD: CaseStatus.ON_HOLD},
    CaseAct.RAISE_DISPUTE: {CaseStatus.OPEN: CaseStatus.ON_HOLD,
                            CaseStatus.ON_HOLD: CaseStatus.ON_HOLD},
    CaseAct.RESOLVE_DISPUTE: {CaseStatus.ON_HOLD: CaseStatus.ON_HOLD},
    CaseAct.RESOLVE_LAST_DISPUTE: {CaseStatus.ON_HOLD: CaseStatus.OPEN},
    CaseAct.CREDIT_PAYMENT: {CaseStatus.OPEN: CaseStatus.OPEN,
                             CaseStatus.ON_HOLD: CaseStatus.ON_HOLD},
    CaseAct.PAY_IN_FULL: {CaseStatus.OPEN: CaseStatus.CLOSED, CaseStatus.ON_HOLD: CaseStatus.CLOSED},
}  # fmt: skip

# The problem types of the refusals: a closed case takes no act (409); only a held case has a
# dispute to resolve (422).
CASE_CLOSED = "case-closed"
NO_OPEN_DISPUTE = "no-open-dispute"


class ActRefused(Exception):
    """An act the case's status does not allow; `problem` names the refusal."""

    def __init__(self, problem: str, status: CaseStatus, act: CaseAct) -> None:
        super().__init__(f"{act} refused on a case {status}")
        self.problem, self.status, self.act = problem, status, act


def status_after(status: str, act: CaseAct) -> CaseStatus:
    """The status a case has after an act, by the transition table: a closed case takes no more
    activities or payments (`case-closed`); a dispute holds the case; only a held case's dispute
    is resolved (`no-open-dispute`), and the last one open opens it again; paid in full closes
    it."""
    current = CaseStatus(status)
    after = TRANSITIONS[act].get(current)
    if after is None:
        problem = CASE_CLOSED if current is CaseStatus.CLOSED else NO_OPEN_DISPUTE
        raise ActRefused(problem, current, act)
    return after


def takes_acts(status: str) -> bool:
    """A case takes activities and payments until it is closed."""
    return CaseStatus(status) is not CaseStatus.CLOSED


def act_of_activity(kind: str, *, disputes_left_open: int = 0) -> CaseAct:
    """What an activity does to the case: a dispute raised holds it, a dispute resolved opens it
    again when no other dispute raised on it is left open, anything else is only logged."""
    if kind == "dispute":
        return CaseAct.RAISE_DISPUTE
    if kind == "dispute_resolved":
        return CaseAct.RESOLVE_LAST_DISPUTE if disputes_left_open == 0 else CaseAct.RESOLVE_DISPUTE
    return CaseAct.LOG


# ---------------------------------------------------------------- disputes told apart

DISPUTE_RAISED = "dispute"
DISPUTE_RESOLVED = "dispute_resolved"


class LoggedActivity(NamedTuple):
    """An activity as a case logged it, for its disputes: its id, its kind, the day it says it
    happened and, for a resolution, the dispute it names (None: one recorded before resolutions
    named their dispute)."""

    activity_id: str
    kind: str
    occurred_on: dt.date
    resolves: str | None = None


def open_disputes(logged: Iterable[LoggedActivity]) -> list[LoggedActivity]:
    """The disputes raised on a case and not resolved yet, in the order they were raised;
    `logged` in the order the activities were recorded. A resolution resolves the dispute it
    names; one that names none (recorded before resolutions named their dispute) opened the
    case again, so it resolved every dispute open then."""
    found: list[LoggedActivity] = []
    for activity in logged:
        if activity.kind == DISPUTE_RAISED:
            found.append(activity)
        elif activity.kind == DISPUTE_RESOLVED:
            if activity.resolves is None:
                found.clear()
            else:
                found = [d for d in found if d.activity_id != activity.resolves]
    return found


# Why a resolution is refused (beside `no-open-dispute`): it names no dispute while several are
# open, names one that was not raised on the case, or one resolved already.
DISPUTE_NOT_NAMED = "dispute-not-named"
NOT_A_DISPUTE = "not-a-dispute"
DISPUTE_ALREADY_RESOLVED = "dispute-already-resolved"


class ResolutionRefused(Exception):
    """A dispute's resolution that names no open dispute of the case; `problem` says why,
    `open_ids` lists the disputes still open."""

    def __init__(self, problem: str, named: str | None, open_ids: Sequence[str]) -> None:
        super().__init__(f"{problem}: {named!r} (open: {', '.join(open_ids) or 'none'})")
        self.problem, self.named, self.open_ids = problem, named, list(open_ids)


def dispute_resolved(logged: Sequence[LoggedActivity], named: str | None) -> LoggedActivity:
    """The dispute a resolution resolves: the one it names, raised on the case and still open;
    naming none, the case's only open dispute (as clients did before disputes were told apart),
    refused when several are open or none is (`no-open-dispute`)."""
    still_open = open_disputes(logged)
    open_ids = [d.activity_id for d in still_open]
    if named is None:
        if len(still_open) != 1:
            raise ResolutionRefused(DISPUTE_NOT_NAMED if still_open else NO_OPEN_DISPUTE, None,
                                    open_ids)  # fmt: skip
        return still_open[0]
    for dispute in still_open:
        if dispute.activity_id == named:
            return dispute
    raised = any(a.activity_id == named and a.kind == DISPUTE_RAISED for a in logged)
    raise ResolutionRefused(DISPUTE_ALREADY_RESOLVED if raised else NOT_A_DISPUTE, named,
                            open_ids)  # fmt: skip


# How a dispute was resolved other than by a collector's resolution: moot, the case owing nothing
# any more (paid in full, or settled by a paid claim's takeover).
MOOT: Final = "moot"
# How a dispute left a mandate whose debt the case a paid claim took over collects from now on.
CARRIED_OVER: Final = "carried_over"


def disputes_mooted(
    logged: Sequence[LoggedActivity], closed_on: dt.date
) -> list[tuple[str, dt.date]]:
    """A case that closes owing nothing leaves no dispute open: the buyer paid (or the claim
    settled) what was disputed, so each dispute still open is resolved as moot, on the day the
    case closed (on the day it was raised, when it was raised after). (dispute id, resolved on)
    for each, oldest first; `logged` in the order the activities were recorded."""
    return [(d.activity_id, max(closed_on, d.occurred_on)) for d in open_disputes(logged)]


def act_of_payment(outstanding_after: Decimal) -> CaseAct:
    """A payment that leaves nothing outstanding pays the case in full (and closes it)."""
    return CaseAct.PAY_IN_FULL if outstanding_after == 0 else CaseAct.CREDIT_PAYMENT


# What a new mandate tells underwriting: a debt handed over for collection is a payment delay (a
# paid claim's case sends none: the claim itself sent one).
MANDATE_SIGNAL: Final = "payment_delay"


def signal_on_opening(
    claim_id: str | None, *, days_past_due: int
) -> Literal["payment_delay"] | None:  # fmt: skip
    """The buyer signal a case sends when it opens: a mandate (no claim) on a debt past due is a
    payment delay; a debt not yet due is no delay (such a mandate is refused:
    `mandate_refused`); a paid claim's recovery sends none."""
    return MANDATE_SIGNAL if claim_id is None and days_past_due > 0 else None


def mandate_refused(oldest_due: dt.date, today: dt.date) -> bool:
    """A mandate collects a debt the buyer is late on: one whose oldest invoice is not past due
    today (due today or later) has nothing to collect yet and is refused."""
    return days_past_due(oldest_due, today) == 0


# ---------------------------------------------------------------- ladders and stages

FIRST_STAGE = "new"


class Rung(NamedTuple):
    """A rung of a ladder: from this many days past the oldest due date the case is on `stage`."""

    days_past_due: int
    stage: str


# A ladder: its rungs, lowest first (as the table `collections.ladders` holds them).
Rungs = Sequence[tuple[int, str]]


def stage_on(ladder: Rungs, days_past_due: int) -> str:
    """The highest rung the days past due reach (on the rung's day the case is on it)."""
    stage = FIRST_STAGE
    for day, name in ladder:
        if days_past_due >= day:
            stage = name
    return stage


def days_past_due(oldest_due: dt.date | None, as_of: dt.date) -> int:
    """Days since the oldest unpaid due date (0 before it, or with nothing unpaid)."""
    if oldest_due is None:
        return 0
    return max(0, (as_of - oldest_due).days)


def rung_index(ladder: Rungs, stage: str) -> int:
    """The position of a stage on its ladder (0 for `new`)."""
    names = [FIRST_STAGE] + [name for _, name in ladder]
    return names.index(stage)


def climb(ladder: Rungs, stage: str, days_past_due: int) -> str | None:
    """The stage a case moves up to: the highest rung its days past due reach, if that is above
    where it stands; a case never climbs down (None: it stays)."""
    target = stage_on(ladder, days_past_due)
    return target if rung_index(ladder, target) > rung_index(ladder, stage) else None


def stage_standing(ladder: Rungs, stage: str, status: str, days_past_due: int) -> str:
    """The stage a case stands on today, as every read shows it: an open case on the highest
    rung its days past due reach (on the rung's day it is on it), or where it stood already if
    higher (never down), whether or not the daily run has recorded the move yet; a held or closed
    case climbs no further, so it stands where it stood."""
    if CaseStatus(status) not in CLIMBING:
        return stage
    return climb(ladder, stage, days_past_due) or stage


class StandingCase(NamedTuple):
    """A case the daily run looks at: its ladder, its stage and its oldest unpaid due date."""

    case_id: str
    ladder: str
    stage: str
    oldest_due: dt.date | None


class Move(NamedTuple):
    case_id: str
    from_stage: str
    to_stage: str
    days_past_due: int


def may_run_as_of(as_of: dt.date, today: dt.date) -> bool:
    """The ladder is run as of today or a day gone by, never ahead: a case never climbs down, so a
    run dated after today would leave it for good on a rung its days past due have not reached."""
    return as_of <= today


def escalations(
    cases: Iterable[StandingCase], ladders: Mapping[str, Rungs], as_of: dt.date
) -> list[Move]:
    """The daily run: every climbing case moves up to the highest rung its days past due reach on
    `as_of` (never down), on the ladder it was opened on."""
    moves: list[Move] = []
    for case_id, ladder_name, stage, oldest in cases:
        days = days_past_due(oldest, as_of)
        target = climb(ladders[ladder_name], stage, days)
        if target is not None:
            moves.append(Move(case_id, stage, target, days))
    return moves


# ---------------------------------------------------------------- payments


class OpenInvoice(NamedTuple):
    number: str
    due_date: dt.date
    outstanding: Decimal


def outstanding(invoices: Iterable[OpenInvoice]) -> Decimal:
    """What is outstanding on a case: the sum of its invoices' unpaid amounts."""
    return sum((i.outstanding for i in invoices), ZERO)


def oldest_unpaid_due(invoices: Iterable[OpenInvoice]) -> dt.date | None:
    """The due date a case's days past due count from: its oldest invoice not paid in full."""
    return min((i.due_date for i in invoices if i.outstanding > 0), default=None)


def credit_oldest_first(
    invoices: Sequence[OpenInvoice], amount: Decimal
) -> list[tuple[str, Decimal]]:
    """A payment is credited to the oldest unpaid invoice first (due date, then number)."""
    credits: list[tuple[str, Decimal]] = []
    left = amount
    for invoice in sorted(invoices, key=lambda i: (i.due_date, i.number)):
        if left <= 0:
            break
        taken = min(left, invoice.outstanding)
        if taken > 0:
            credits.append((invoice.number, taken))
            left -= taken
    return credits


class PromiseMade(NamedTuple):
    """A promise to pay as a case logged it: `amount` by `due_on`, made on `made_on`."""

    activity_id: str
    made_on: dt.date
    due_on: dt.date
    amount: Decimal


class PaymentReceived(NamedTuple):
    """A payment as a case recorded it, for the promises it keeps."""

    received_on: dt.date
    amount: Decimal


class OpenPromise(NamedTuple):
    """A promise still open and what of it the buyer has not paid yet."""

    activity_id: str
    due_on: dt.date
    unkept: Decimal


def open_promises(
    book: Iterable[PromiseMade | PaymentReceived], today: dt.date
) -> list[OpenPromise]:
    """The promises to pay still open on `today`, earliest due first: not yet due (due today or
    later) and not yet kept. `book` is the case's promises and payments in the order they were
    recorded. A payment goes towards the promises recorded before it that it falls within (made
    on or before the day it was received, due on or after it), the earliest due first: a promise
    is kept once what went towards it reaches its amount; one past its day unkept is broken, and
    no longer open either."""
    promises: list[PromiseMade] = []
    kept: dict[str, Decimal] = {}
    for entry in book:
        if isinstance(entry, PromiseMade):
            promises.append(entry)
            kept[entry.activity_id] = ZERO
            continue
        left = entry.amount
        for promise in sorted(promises, key=lambda p: p.due_on):  # stable: then recorded order
            if left <= 0:
                break
            if not promise.made_on <= entry.received_on <= promise.due_on:
                continue
            towards = min(left, promise.amount - kept[promise.activity_id])
            if towards > 0:
                kept[promise.activity_id] += towards
                left -= towards
    still = [OpenPromise(p.activity_id, p.due_on, p.amount - kept[p.activity_id])
             for p in promises if p.due_on >= today and p.amount > kept[p.activity_id]]  # fmt: skip
    return sorted(still, key=lambda p: p.due_on)


def promise_window(made_on: dt.date, horizon_days: int) -> tuple[dt.date, dt.date]:
    """The days a promise to pay may fall due on: from the day it is made to `horizon_days`
    after it (a setting), both included."""
    return made_on, made_on + dt.timedelta(days=horizon_days)


def promisable(owed: Decimal, still_open: Iterable[OpenPromise]) -> Decimal:
    """What may still be promised on a case: what it owes less what its open promises have not
    been paid yet (never below nothing)."""
    return max(ZERO, owed - sum((p.unkept for p in still_open), ZERO))


def may_promise(promised: Decimal, owed: Decimal, still_open: Iterable[OpenPromise] = ()) -> bool:
    """A promise to pay, together with the promises still open (not yet due, not yet kept), is
    for at most what the case still owes: two promises never promise the same money."""
    return promised <= promisable(owed, still_open)


class Credit(NamedTuple):
    invoice_number: str
    amount: Decimal
    outstanding_after: Decimal  # on the whole case, once this credit is made


class Overpayment(Exception):
    """More than is outstanding was paid."""

    def __init__(self, amount: Decimal, outstanding: Decimal) -> None:
        super().__init__(f"{amount} exceeds the outstanding {outstanding}")
        self.amount, self.outstanding = amount, outstanding


def book_payment(invoices: Sequence[OpenInvoice], amount: Decimal) -> list[Credit]:
    """A payment's bookkeeping: credited oldest invoice first, each credit with what the case
    still owes after it; more than is outstanding is refused (`Overpayment`)."""
    owed = outstanding(invoices)
    if amount > owed:
        raise Overpayment(amount, owed)
    credits: list[Credit] = []
    for number, part in credit_oldest_first(invoices, amount):
        owed -= part
        credits.append(Credit(number, part, owed))
    return credits


# ---------------------------------------------------------------- recoveries shared


class Allocation(NamedTuple):
    fee: Money
    insurer: Money
    policyholder: Money


@dataclass(frozen=True)
class InsurerShare:
    """The proportion of the loss the insurer bore, kept as an exact fraction: `paid` / `of`
    (the indemnity paid over the whole unpaid debt, or a percentage over 100), never rounded."""

    paid: Decimal
    of: Decimal

    @classmethod
    def from_pct(cls, pct: Decimal) -> InsurerShare:
        return cls(pct, Decimal(100))

    @classmethod
    def stored(cls, numerator: str | None, denominator: str | None) -> InsurerShare | None:
        """The share as a case keeps it (two decimal strings), or none before a claim."""
        if numerator is None or denominator is None:
            return None
        return cls(Decimal(numerator), Decimal(denominator))

    def pct(self, places: int) -> Decimal:
        """The share as a percentage rounded half-up to `places` decimals: for display only,
        a split never uses it."""
        exact = Fraction(self.paid) * 100 / Fraction(self.of)
        return _round_half_up(exact, Decimal(1).scaleb(-places))


def indemnity_share(paid: Decimal, invoices_total: Decimal) -> InsurerShare | None:
    """The insurer's share after a paid claim: the indemnity paid over the whole unpaid debt
    (the claim's invoices), exactly; none when the indemnity is not between 0 and that debt."""
    if not ZERO <= paid <= invoices_total:
        return None
    return InsurerShare(paid, invoices_total)


def _round_half_up(value: Fraction, quantum: Decimal) -> Decimal:
    """An exact value rounded once, half away from zero, to a multiple of `quantum`."""
    steps = abs(value) / Fraction(quantum)
    whole = math.floor(steps + Fraction(1, 2))
    return (Decimal(whole) * quantum * (1 if value >= 0 else -1)).quantize(quantum)


class Shared(NamedTuple):
    """What a case's earlier recoveries under the same share came to: their total and the fee
    and insurer's part they were shared as, and what of their total was credited to the paid
    claim's invoices (None: all of it)."""

    amount: Money
    fee: Money
    insurer: Money
    claimed: Money | None = None

    @classmethod
    def nothing(cls, currency: str) -> Shared:
        return cls(Money.zero(currency), Money.zero(currency), Money.zero(currency))

    def claimed_amount(self) -> Money:
        """What of the earlier recoveries was credited to the claim's invoices."""
        return self.amount if self.claimed is None else self.claimed

    def plus(self, payment: Money, part: Allocation, claimed: Money | None = None) -> Shared:
        """These recoveries and one more (`claimed` of it credited to the claim's invoices;
        None: all of it)."""
        return Shared(self.amount + payment, self.fee + part.fee, self.insurer + part.insurer,
                      self.claimed_amount() + (payment if claimed is None else claimed))  # fmt: skip


def claimed_part(credits: Iterable[tuple[str, Decimal]], claimed: Collection[str]) -> Decimal:
    """What of a payment's credits (invoice number, amount) went to the paid claim's invoices
    (`claimed`, their numbers): only that part of a recovery is the insurer's to share."""
    return sum((amount for number, amount in credits if number in claimed), ZERO)


def share_recovery(
    payment: Money, *, fee_pct: Decimal, share: InsurerShare | None, earlier: Shared | None = None,
    claimed: Money | None = None,
) -> Allocation:  # fmt: skip
    """What is recovered is shared: the collection fee first, the recoveries × fee percentage
    rounded half-up once; then, after a paid claim, the insurer's part, (recoveries − fee) × the
    exact proportion it bore the loss (indemnity paid / unpaid debt), rounded half-up once; the
    policyholder's part is the rest, so the three always add up to the payment. Before a claim
    (no share) everything after the fee is the policyholder's.

    The insurer shares only what is recovered on the claim's invoices: `claimed` of the payment
    was credited to them (None: all of it), and its part is (claimed recoveries − their fee) ×
    the proportion, the fee on them rounded half-up once as the fee is; what was credited to an
    invoice outside the claim is, after the fee, the policyholder's.

    Recoveries in sequence are shared as their total would be: each payment takes what the
    shares of the total so far (`earlier` and this payment) exceed what the `earlier` ones were
    given, never below nothing nor above the payment, so that the case's fee and parts are those
    of its whole recovery to the cent (a hundred recoveries of 0.01 carry the fee of 1.00)."""
    c = payment.currency
    quantum = Decimal(1).scaleb(-minor_units(c))
    before = earlier or Shared.nothing(c)
    total = before.amount.amount + payment.amount
    fee_total = _round_half_up(Fraction(total) * Fraction(fee_pct) / 100, quantum)
    fee = min(max(fee_total - before.fee.amount, ZERO), payment.amount).quantize(quantum)
    insurer = ZERO.quantize(quantum)
    if share is not None and share.paid > 0 and share.of > 0:
        on_claim = payment.amount if claimed is None else min(claimed.amount, payment.amount)
        claimed_total = before.claimed_amount().amount + on_claim
        claimed_fee = _round_half_up(Fraction(claimed_total) * Fraction(fee_pct) / 100, quantum)
        proportion = min(Fraction(1), Fraction(share.paid) / Fraction(share.of))
        insurer_total = _round_half_up(Fraction(claimed_total - claimed_fee) * proportion, quantum)
        insurer = min(max(insurer_total - before.insurer.amount, ZERO), payment.amount - fee,
                      on_claim)  # fmt: skip
        insurer = insurer.quantize(quantum)
    return Allocation(fee=Money(fee, c), insurer=Money(insurer, c),
                      policyholder=Money(payment.amount - fee - insurer, c))  # fmt: skip


def allocate(payment: Money, *, fee_pct: Decimal, insurer_share_pct: Decimal | None) -> Allocation:
    """`share_recovery` with the insurer's share given as a percentage (any number of
    decimals, taken exactly)."""
    share = None if insurer_share_pct is None else InsurerShare.from_pct(insurer_share_pct)
    return share_recovery(payment, fee_pct=fee_pct, share=share)


# ---------------------------------------------------------------- a mandate taken over by a paid claim


class BookedInvoice(NamedTuple):
    """An invoice as a case has booked it: its amount and what its recoveries credited to it."""

    number: str
    due_date: dt.date
    amount: Decimal
    paid: Decimal


class ClaimedInvoice(NamedTuple):
    """What a paid claim says of one of its invoices: what it left unpaid (nothing: its credit
    notes, set-offs and recoveries settled it), and what its indemnity deducted as recovered by
    the creditor's collection cases (None: not said, as by a message sent before it was)."""

    unpaid: Decimal
    counted: Decimal | None


@dataclass(frozen=True)
class Takeover:
    """A mandate's books once a paid claim takes it over, per invoice number: its amount, what
    is credited to it, by how much the claim's reductions lowered it; and, per invoice of the
    claim, what the claim's indemnity counted of the mandate's recoveries on it and what the
    mandate recovered on it beyond (recovered after the claim)."""

    amounts: dict[str, Decimal]
    paid: dict[str, Decimal]
    reduced: dict[str, Decimal]
    counted: dict[str, Decimal]
    uncounted: dict[str, Decimal]


def _oldest_first(invoice: BookedInvoice) -> tuple[dt.date, str]:
    return (invoice.due_date, invoice.number)


def take_over(booked: Sequence[BookedInvoice], claimed: Mapping[str, ClaimedInvoice]) -> Takeover:
    """A paid claim takes a mandate over: on each invoice they share, the buyer owes what the
    claim left unpaid less what the mandate recovered beyond what the claim counted. So each
    invoice's amount falls by the claim's own reductions — amount − counted − unpaid, never an
    increase (not said what was counted: all that the mandate recovered was) — and an invoice
    the claim settled owes nothing. The mandate's recoveries are then credited again oldest
    first against those amounts (what was credited to a settled invoice goes to the next one);
    recovered beyond all that is owed, the reductions give way, oldest invoice first (as the
    recoveries were credited)."""
    amounts: dict[str, Decimal] = {}
    reduced: dict[str, Decimal] = {}
    counted_of: dict[str, Decimal] = {}
    uncounted: dict[str, Decimal] = {}
    for invoice in booked:
        said = claimed.get(invoice.number)
        if said is None:
            amounts[invoice.number] = invoice.amount
            continue
        counted = invoice.paid if said.counted is None else min(said.counted, invoice.paid)
        counted_of[invoice.number] = counted
        if invoice.paid > counted:
            uncounted[invoice.number] = invoice.paid - counted
        reduced[invoice.number] = max(ZERO, invoice.amount - counted - said.unpaid)
        amounts[invoice.number] = invoice.amount - reduced[invoice.number]
    recovered = sum((i.paid for i in booked), ZERO)
    paid = {i.number: ZERO for i in booked}
    owed = [OpenInvoice(i.number, i.due_date, amounts[i.number]) for i in booked]
    for number, credit in credit_oldest_first(owed, recovered):
        paid[number] += credit
    left = recovered - sum(paid.values(), ZERO)
    for invoice in sorted(booked, key=_oldest_first):
        back = min(left, reduced.get(invoice.number, ZERO))
        reduced[invoice.number] = reduced.get(invoice.number, ZERO) - back
        amounts[invoice.number] += back
        paid[invoice.number] += back
        left -= back
    return Takeover(amounts=amounts, paid=paid,
                    reduced={n: by for n, by in reduced.items() if by > 0},
                    counted=counted_of, uncounted=uncounted)  # fmt: skip


class BookedPayment(NamedTuple):
    """A payment as a case recorded it: what it credited to which invoice."""

    payment_id: str
    credits: Sequence[tuple[str, Decimal]]


def recovered_after_claim(
    payments: Sequence[BookedPayment], counted: Mapping[str, Decimal]
) -> dict[str, Decimal]:
    """Per payment, the part of it the claim's indemnity did not deduct. `payments` in the order
    they were recorded, `counted` per invoice of the claim (`Takeover.counted`): on each, the
    claim counted the first `counted` of what was credited to it (the mandate's recoveries up
    to when the claim read them); the later credits were recovered after it. Credits to an
    invoice outside the claim are none of the insurer's."""
    credited: dict[str, Decimal] = {}
    parts: dict[str, Decimal] = {}
    for payment in payments:
        part = ZERO
        for number, amount in payment.credits:
            before = credited.get(number, ZERO)
            credited[number] = before + amount
            if number in counted:
                part += max(ZERO, credited[number] - max(counted[number], before))
        if part > 0:
            parts[payment.payment_id] = part
    return parts


def share_recovered_after_claim(
    payment: Money, fee: Money, part: Decimal, *, fee_pct: Decimal, share: InsurerShare | None,
    earlier: Shared | None = None,
) -> Allocation:  # fmt: skip
    """A recovery a mandate recorded before a paid claim took it over, shared again as a
    recovery after the claim (`part` of it the claim's indemnity did not deduct): the fee stays
    as recorded; the insurer's part is what `share_recovery` gives it of `part` after the
    `earlier` recoveries shared again (all of the payment: exactly its split as a subrogation
    case's), so that those shared again in sequence are shared as their total recovered after
    the claim is, to the cent; the policyholder's is the rest, so the three still add up to the
    payment. The next one's `earlier` is `earlier.plus(payment, this, part)`."""
    on_claim = payment if part >= payment.amount else Money(part, payment.currency)
    insurer = share_recovery(payment, fee_pct=fee_pct, share=share, earlier=earlier,
                             claimed=on_claim).insurer  # fmt: skip
    insurer = min(insurer, payment - fee)
    return Allocation(fee=fee, insurer=insurer, policyholder=payment - fee - insurer)


class Mandate(NamedTuple):
    """A mandate a paid claim may take over: its status, and whether it recovered on the claim's
    invoices beyond what the claim's indemnity deducted."""

    case_id: str
    status: str
    recovered_after_claim: bool


def mandate_to_take_over(mandates: Sequence[Mandate]) -> str | None:
    """Which mandate collecting the claim's debt (oldest first) the paid claim takes over: the
    oldest still collecting; else the oldest closed one that recovered after the claim (paid in
    full before collections heard of the claim: its recoveries are the insurer's to share too)."""
    for mandate in mandates:
        if CaseStatus(mandate.status) in LIVE:
            return mandate.case_id
    for mandate in mandates:
        if mandate.recovered_after_claim:
            return mandate.case_id
    return None


def status_after_takeover(outstanding: Decimal, disputes_open: int) -> CaseStatus:
    """A mandate taken over by a paid claim owes what the claim left unpaid less what it has
    recovered since: owing nothing, it is closed; owing something, it collects (a closed mandate,
    paid in full after the claim was paid, opens again), held while a dispute raised on it is
    still open (whatever status it had)."""
    if outstanding <= 0:
        return CaseStatus.CLOSED
    return CaseStatus.ON_HOLD if disputes_open > 0 else CaseStatus.OPEN
