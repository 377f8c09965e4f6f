"""Claims rules as pure functions: a claim's lifecycle (its statuses and which act moves which status
where), notification deadlines and the signals they send, the filing window, the documents a claim
needs, lapse, exclusions, the indemnity sum with each of its steps, the caps re-checked at approval
and payment, and what payment hands to collections. No I/O, no framework."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from shared.calendar import Corrections, add_working_days, days_after, in_period, in_time
from shared.money import Money

ZERO = Decimal(0)
CAUSES = ("insolvency", "protracted_default", "political")
BASE_DOCUMENTS = (
    "trade_contract", "proof_of_delivery", "invoice", "ageing_report", "statement_of_account",
)  # fmt: skip
CAUSE_DOCUMENTS = {
    "insolvency": ("insolvency_proof",),
    "protracted_default": ("collection_evidence",),
    "political": (),
}
DOCUMENT_KINDS = frozenset(BASE_DOCUMENTS) | {"insolvency_proof", "collection_evidence"}


# ---------------------------------------------------------------- the claim's lifecycle


class ClaimStatus(StrEnum):
    DOCUMENTS_PENDING = "documents_pending"
    UNDER_REVIEW = "under_review"
    ON_HOLD = "on_hold"
    ASSESSED = "assessed"
    APPROVED = "approved"
    REJECTED = "rejected"
    PAID = "paid"
    LAPSED = "lapsed"


S = ClaimStatus
# Decided: no document, dispute or assessment changes the claim any more.
DECIDED = frozenset({S.APPROVED, S.REJECTED, S.PAID})
# Live: the claim holds its invoices (a rejected or lapsed claim frees them for another claim).
LIVE = frozenset(S) - {S.REJECTED, S.LAPSED}
# Counts against the caps: the indemnities of approved and paid claims use the policy year's
# maximum liability and the single-buyer cap.
COUNTS_AGAINST_CAPS = frozenset({S.APPROVED, S.PAID})
# Uses the buyer's credit limit: what the assessments of these claims covered is taken from the
# limit an invoice of another claim on the same policy and buyer is covered up to (a limit is one
# promise up to an amount, however the invoices are split into claims). A claim on hold, rejected
# or lapsed holds none of it (a dispute sets its assessment aside; a rejection frees it).
HOLDS_LIMIT = frozenset({S.ASSESSED, S.APPROVED, S.PAID})
# A claim whose file is complete and whose decision is still to come: its `decision_due` stands.
AWAITING_DECISION = LIVE - DECIDED - {S.DOCUMENTS_PENDING}


class Act(StrEnum):
    """What is done to a claim."""

    ADD_DOCUMENT = "add_document"
    COMPLETE_FILE = "complete_file"  # the last missing document arrives
    RAISE_DISPUTE = "raise_dispute"
    SETTLE_DISPUTES = "settle_disputes"  # the last open dispute is settled
    ASSESS = "assess"
    APPROVE = "approve"
    REJECT = "reject"
    # An approved claim on which nothing can be paid (`Unpayable`) is rejected: it is not paid,
    # so it no longer holds its share of the caps.
    REJECT_UNPAYABLE = "reject_unpayable"
    PAY = "pay"
    LAPSE = "lapse"


class Refusal(StrEnum):
    """Why an act is refused, named as the problem type the API answers."""

    ALREADY_DECIDED = "already-decided"
    ALREADY_PAID = "already-paid"
    CLAIM_LAPSED = "claim-lapsed"
    CLAIM_ON_HOLD = "claim-on-hold"
    DOCUMENTS_MISSING = "documents-missing"
    NOT_ASSESSED = "not-assessed"
    NOT_APPROVED = "not-approved"
    ASSESSMENT_OUTDATED = "assessment-outdated"
    CAPS_EXCEEDED = "caps-exceeded"


class Unpayable(StrEnum):
    """Why nothing can be paid on a claim (domain.md: no indemnity on a sanctioned buyer; a nil
    indemnity owes nothing)."""

    SANCTIONED_BUYER = "sanctioned_buyer"
    NIL_INDEMNITY = "nil_indemnity"


# Which act moves which status where. While a claim is on hold, the status it holds (`held`)
# moves instead for the acts that complete its file; a settlement returns the claim to it.
TRANSITIONS: Mapping[Act, Mapping[ClaimStatus, ClaimStatus]] = {
    Act.COMPLETE_FILE: {S.DOCUMENTS_PENDING: S.UNDER_REVIEW},
    Act.RAISE_DISPUTE: {s: S.ON_HOLD for s in (S.DOCUMENTS_PENDING, S.UNDER_REVIEW, S.ASSESSED)},
    Act.ASSESS: {S.UNDER_REVIEW: S.ASSESSED, S.ASSESSED: S.ASSESSED},
    Act.APPROVE: {S.ASSESSED: S.APPROVED},
    Act.REJECT: {s: S.REJECTED for s in (S.DOCUMENTS_PENDING, S.UNDER_REVIEW, S.ON_HOLD,
                                         S.ASSESSED)},
    Act.REJECT_UNPAYABLE: {S.APPROVED: S.REJECTED},
    Act.PAY: {S.APPROVED: S.PAID},
    Act.LAPSE: {S.DOCUMENTS_PENDING: S.LAPSED},
}  # fmt: skip

# The refusals of each act, the first whose statuses hold the claim's status answering.
_OTHERS_THAN_ASSESSED = frozenset(S) - DECIDED - {S.LAPSED, S.ASSESSED}
REFUSALS: Mapping[Act, tuple[tuple[frozenset[ClaimStatus], Refusal], ...]] = {
    Act.ADD_DOCUMENT: ((frozenset({S.LAPSED}), Refusal.CLAIM_LAPSED),
                       (DECIDED, Refusal.ALREADY_DECIDED)),
    Act.RAISE_DISPUTE: ((DECIDED | {S.LAPSED}, Refusal.ALREADY_DECIDED),),
    Act.ASSESS: ((DECIDED, Refusal.ALREADY_DECIDED), (frozenset({S.ON_HOLD}), Refusal.CLAIM_ON_HOLD),
                 (frozenset({S.LAPSED}), Refusal.CLAIM_LAPSED),
                 (frozenset({S.DOCUMENTS_PENDING}), Refusal.DOCUMENTS_MISSING)),
    Act.APPROVE: ((DECIDED, Refusal.ALREADY_DECIDED), (frozenset({S.LAPSED}), Refusal.CLAIM_LAPSED),
                  (frozenset({S.ON_HOLD}), Refusal.CLAIM_ON_HOLD),
                  (_OTHERS_THAN_ASSESSED, Refusal.NOT_ASSESSED)),
    Act.REJECT: ((DECIDED, Refusal.ALREADY_DECIDED), (frozenset({S.LAPSED}), Refusal.CLAIM_LAPSED)),
    Act.REJECT_UNPAYABLE: ((frozenset({S.PAID, S.REJECTED}), Refusal.ALREADY_DECIDED),
                           (frozenset({S.LAPSED}), Refusal.CLAIM_LAPSED),
                           (frozenset(S) - DECIDED - {S.LAPSED}, Refusal.NOT_APPROVED)),
    Act.PAY: ((frozenset({S.PAID}), Refusal.ALREADY_PAID),
              (frozenset(S) - {S.PAID, S.APPROVED}, Refusal.NOT_APPROVED)),
}  # fmt: skip


class Refused(Exception):
    """An act the claim's status does not allow, with the refusal's name."""

    def __init__(self, refusal: Refusal, status: ClaimStatus) -> None:
        super().__init__(f"{refusal}: the claim is {status}")
        self.refusal, self.status = refusal, status


@dataclass(frozen=True)
class ClaimState:
    """A claim's status, and the status it holds while it is on hold."""

    status: ClaimStatus
    held: ClaimStatus | None = None

    def awaits_documents(self) -> bool:
        """Documents pending, or on hold with documents pending."""
        return S.DOCUMENTS_PENDING in (self.status, self.held if self.status == S.ON_HOLD else None)


def refusal_of(act: Act, status: ClaimStatus) -> Refusal | None:
    """The refusal the claim's status gives the act, or None when the act is allowed."""
    for statuses, refusal in REFUSALS.get(act, ()):
        if status in statuses:
            return refusal
    return None


def after(state: ClaimState, act: Act) -> ClaimState:
    """Where an act leaves a claim (`Refused` if its status refuses the act). An act a status
    neither moves nor refuses leaves the claim where it is (a document added under review).
    - a dispute puts the claim on hold, holding its status (an assessment made before the
      dispute no longer stands: an assessed claim holds `under_review`);
    - settling the last open dispute returns the claim to the status it held;
    - the last missing document moves the status the claim holds when it is on hold;
    - a claim awaiting documents lapses, on hold or not."""
    refusal = refusal_of(act, state.status)
    if refusal is not None:
        raise Refused(refusal, state.status)
    moves = TRANSITIONS.get(act, {})
    if act is Act.RAISE_DISPUTE and state.status in moves:
        held = S.UNDER_REVIEW if state.status == S.ASSESSED else state.status
        return ClaimState(S.ON_HOLD, held)
    if act is Act.SETTLE_DISPUTES and state.status == S.ON_HOLD:
        return ClaimState(state.held or S.UNDER_REVIEW, None)
    if act is Act.LAPSE and state.awaits_documents():
        return ClaimState(S.LAPSED, None)
    if act is Act.COMPLETE_FILE and state.status == S.ON_HOLD:
        pending = state.held
        if pending is None or pending not in moves:
            return state
        return ClaimState(S.ON_HOLD, moves[pending])
    if state.status in moves:
        return ClaimState(moves[state.status], state.held)
    return state


def unpayable(indemnity: Decimal | None, *, sanctioned: bool) -> Unpayable | None:
    """Nothing is paid on a claim whose buyer, or the buyer's country, is sanctioned today, nor
    on one whose indemnity is nil: there is nothing owed (None: the claim can be paid). A claim
    that could not be paid is not approved either (it is rejected instead)."""
    if sanctioned:
        return Unpayable.SANCTIONED_BUYER
    if indemnity is not None and indemnity <= 0:
        return Unpayable.NIL_INDEMNITY
    return None


def rejection(status: ClaimStatus, unpayable: Unpayable | None) -> Act:
    """A decided claim takes no other decision, except that an approved claim on which nothing
    can be paid is rejected (an approval that can never be paid would hold the caps forever)."""
    return Act.REJECT_UNPAYABLE if status == S.APPROVED and unpayable is not None else Act.REJECT


def unpayable_reason(unpayable: Unpayable, *, buyer_id: str, why_nil: str, given: str) -> str:
    """The reason recorded when an approved claim is rejected because nothing can be paid on
    it: the exclusion or the nil indemnity first, then what the claims handler said."""
    if unpayable is Unpayable.SANCTIONED_BUYER:
        said = (f"excluded: sanctioned buyer (buyer {buyer_id} or its country is on the "
                "sanctions list: no indemnity is paid on it)")  # fmt: skip
    else:
        said = f"nothing payable: the indemnity is nil ({why_nil})"
    return f"{said}; {given}"


def frees_invoices(status: ClaimStatus) -> bool:
    """A claim no longer live (rejected or lapsed) frees its invoices for another claim."""
    return status not in LIVE


# ---------------------------------------------------------------- overdue notifications


def original_due_date(due_date: dt.date, notified_due_date: dt.date | None) -> dt.date:
    """The due date the clocks run from: the earliest an invoice was notified with (before any
    extension), or the one it is quoted with if that is earlier or it was never notified."""
    return due_date if notified_due_date is None else min(due_date, notified_due_date)


def notification_deadline(due_date: dt.date, notification_days: int) -> dt.date:
    """The last day an overdue invoice may be notified: its due date + the notification period."""
    return days_after(due_date, notification_days)


def notified_late(due_date: dt.date, notified_on: dt.date, notification_days: int) -> bool:
    return not in_time(notified_on, notification_deadline(due_date, notification_days))


def insured_by_policy(shipment_date: dt.date, start_date: dt.date, end_date: dt.date) -> bool:
    """An invoice is a receivable a policy insures only if it was shipped while the policy was
    active (domain.md: `start_date ≤ shipment date ≤ end_date`); one shipped before the policy
    began or after it ended is no overdue of that policy: it stops no shipment under it and
    tells underwriting nothing."""
    return in_period(shipment_date, start_date, end_date)


SIGNAL_OVERDUE = "overdue_notified"
SIGNAL_ARREARS_CLEARED = "arrears_cleared"
# What a claim says of its buyer to underwriting, and when. A protracted default is a payment delay
# the insurer observes when the claim is filed. An insolvency is the policyholder's statement until
# a handler approves the claim on its proof: only then does it grade the buyer 10 and withdraw every
# limit on it, under every policy (domain.md: what a policyholder states moves a grade only once
# confirmed). A political loss says nothing of the buyer.
FILING_SIGNALS: Mapping[str, str] = {"protracted_default": "payment_delay"}
APPROVAL_SIGNALS: Mapping[str, str] = {"insolvency": "insolvency_filing"}


def notification_signal(
    kind: str, due_dates: Sequence[dt.date], today: dt.date, *, arrears_left: bool = False
) -> str | None:
    """What underwriting hears of a notification: arrears paid end the stop-shipment, unless
    other notified invoices are still in arrears (`arrears_left`); anything past due starts it;
    an extension of a due date not yet reached says nothing."""
    if kind == "arrears_cleared":
        return None if arrears_left else SIGNAL_ARREARS_CLEARED
    return SIGNAL_OVERDUE if any(due < today for due in due_dates) else None


def arrears_outstanding(notified: Iterable[tuple[str, str, dt.date, dt.date]]) -> set[str]:
    """The invoices still in arrears after notifications (each invoice's `(kind, number,
    due_date, notified_on)`, in the order made): an invoice is in arrears once a notification
    names it past due, until arrears cleared name it."""
    outstanding: set[str] = set()
    for kind, number, due_date, notified_on in notified:
        if kind == "arrears_cleared":
            outstanding.discard(number)
        elif due_date < notified_on:
            outstanding.add(number)
    return outstanding


def filing_signal(
    cause: str, filed_on: dt.date, *, political: bool = False
) -> tuple[str, dt.date] | None:
    """The signal a claim sends about its buyer when it is filed, observed that day; None for a
    cause that says nothing of the buyer until the claim is approved (`approval_signal`), and
    for a political loss (`political_loss`: a war under political cover too), whose default is
    the war's, not the buyer's payment behaviour."""
    kind = None if political else FILING_SIGNALS.get(cause)
    return None if kind is None else (kind, filed_on)


def approval_signal(
    cause: str, event_date: dt.date | None, approved_on: dt.date
) -> tuple[str, dt.date] | None:
    """The signal an approved claim sends about its buyer, and the day it was observed: for an
    insolvency the day it became known (else the approval's); None for another cause."""
    kind = APPROVAL_SIGNALS.get(cause)
    if kind is None:
        return None
    return kind, approved_on if event_date is None else event_date


def counts_as_late(
    first_notified_late: bool | None, filed_on: dt.date, due_date: dt.date, notification_days: int
) -> bool:
    """An invoice of a claim was notified late if its first overdue notification was late; one
    never notified before the claim is late unless the claim came within its notification
    period."""
    if first_notified_late is not None:
        return first_notified_late
    return not (filed_on <= notification_deadline(due_date, notification_days))


class NotifiedRow(NamedTuple):
    """One invoice as an overdue notification named it (`kind`: the notification's)."""

    kind: str
    amount: Decimal
    shipment_date: dt.date
    due_date: dt.date
    notified_on: dt.date
    notification_deadline: dt.date
    late: bool = False  # as recorded when it was notified


class Notified(NamedTuple):
    """What the notifications of a (policy, buyer) said of one invoice: the shipment date it was
    first notified with, its original due date (the earliest notified, before any extension) and
    the amount notified in time (the most any notification named by its deadline; the part of
    an amount only a late notification named was notified late)."""

    shipment_date: dt.date
    original_due_date: dt.date
    amount: Decimal


def notified_facts(rows: Sequence[NotifiedRow]) -> Notified | None:
    """An invoice's notified facts from the notifications naming it, in the order made; None when
    only arrears cleared named it (no notification said what is owed on it)."""
    said = [r for r in rows if r.kind != "arrears_cleared"]
    if not said:
        return None
    timely = [r for r in said if in_time(r.notified_on, r.notification_deadline)] or said
    return Notified(said[0].shipment_date, min(r.due_date for r in rows),
                    max(r.amount for r in timely))  # fmt: skip


def notified_of(rows: Mapping[str, Sequence[NotifiedRow]]) -> dict[str, Notified]:
    """`notified_facts` of each invoice notifications said what is owed on."""
    facts = {number: notified_facts(named) for number, named in rows.items()}
    return {number: fact for number, fact in facts.items() if fact is not None}


def earliest_due_dates(rows: Mapping[str, Sequence[NotifiedRow]]) -> dict[str, dt.date]:
    """The earliest due date each invoice was notified with (before any extension)."""
    return {number: min(r.due_date for r in named) for number, named in rows.items() if named}


def first_overdue_late(rows: Mapping[str, Sequence[NotifiedRow]]) -> dict[str, bool]:
    """Whether each invoice's first overdue notification was late: the first that named it past
    due (not an arrears cleared, nor an extension asked ahead of the due date)."""
    late: dict[str, bool] = {}
    for number, named in rows.items():
        for row in named:
            if row.kind != "arrears_cleared" and row.due_date < row.notified_on:
                late[number] = row.late
                break
    return late


def differs_from_notification(invoice: ClaimInvoice, notified: Notified) -> tuple[str, ...]:
    """What a claimed invoice says otherwise than its notifications (the fields, empty when it
    agrees): a shipment date other than the notified one, a due date before the original one
    notified (a later one is an extension: the clocks still run from the original), an amount
    above the one notified in time."""
    fields = []
    if invoice.shipment_date != notified.shipment_date:
        fields.append("shipment_date")
    if invoice.due_date < notified.original_due_date:
        fields.append("due_date")
    if invoice.amount > notified.amount:
        fields.append("amount")
    return tuple(fields)


def extension_allowed(
    due_date: dt.date, new_due_date: dt.date, max_extension_days: int,
    original_due_date: dt.date | None = None,
) -> bool:  # fmt: skip
    """The policyholder may move a due date on its own only within the maximum extension, counted
    from the original due date (an invoice extended before is extended again no further)."""
    latest = latest_extension(original_due_date or due_date, max_extension_days)
    return due_date < new_due_date <= latest


def latest_extension(original_due_date: dt.date, max_extension_days: int) -> dt.date:
    """The latest due date the policyholder may move an invoice to on its own."""
    return days_after(original_due_date, max_extension_days)


# ---------------------------------------------------------------- the filing window


@dataclass(frozen=True)
class FilingWindow:
    opens: dt.date
    closes: dt.date

    def verdict(self, filed_on: dt.date) -> str:
        """`open`, `too_early` or `time_barred` for a claim filed on `filed_on`."""
        if filed_on < self.opens:
            return "too_early"
        if not in_time(filed_on, self.closes):
            return "time_barred"
        return "open"


def filing_window(
    cause: str,
    *,
    event_date: dt.date | None,
    oldest_due_date: dt.date,
    filing_days: int,
    protracted_wait_days: int,
) -> FilingWindow:
    """Insolvency and political loss: from the date the event became known to that date + the
    filing period. Protracted default: opens when the waiting period after the oldest due date
    has run, and closes the filing period later."""
    if cause == "protracted_default":
        opens = days_after(oldest_due_date, protracted_wait_days)
    else:
        if event_date is None:
            raise ValueError(f"a {cause} claim needs the date the event became known")
        opens = event_date
    return FilingWindow(opens=opens, closes=days_after(opens, filing_days))


def loss_date(cause: str, window: FilingWindow, event_date: dt.date | None) -> dt.date:
    """The date of loss: for a protracted default the day its waiting period has run (the window
    opens), else the date the event became known."""
    if cause == "protracted_default" or event_date is None:
        return window.opens
    return event_date


def required_documents(cause: str) -> tuple[str, ...]:
    return BASE_DOCUMENTS + CAUSE_DOCUMENTS[cause]


def missing_documents(cause: str, received: Iterable[str]) -> list[str]:
    have = set(received)
    return [kind for kind in required_documents(cause) if kind not in have]


def documents_due(filed_on: dt.date, grace_days: int) -> dt.date:
    return days_after(filed_on, grace_days)


def lapsed(documents_due_on: dt.date, today: dt.date, missing: Sequence[str]) -> bool:
    """Documents still missing once the grace period has ended: the claim lapses."""
    return bool(missing) and not in_time(today, documents_due_on)


def lapsed_now(
    state: ClaimState, documents_due_on: dt.date, today: dt.date, cause: str,
    received: Iterable[str],
) -> bool:  # fmt: skip
    """A claim awaiting documents (on hold or not) whose grace period has ended with documents
    still missing has lapsed."""
    return state.awaits_documents() and lapsed(
        documents_due_on, today, missing_documents(cause, received)
    )


def decision_due(
    complete_on: dt.date, working_days: int, country: str,
    corrections: Corrections | None = None,
) -> dt.date:  # fmt: skip
    """The decision is due within N working days of the file being complete, on the country's
    calendar as staff corrected it."""
    return add_working_days(complete_on, working_days, country, corrections)


# ---------------------------------------------------------------- exclusions and indemnity


class ClaimInvoice(NamedTuple):
    number: str
    amount: Decimal
    shipment_date: dt.date
    due_date: dt.date


@dataclass(frozen=True)
class InvoiceFacts:
    """What the claim knows of one invoice when it is assessed."""

    invoice: ClaimInvoice
    covered_on_shipment: bool  # every coverage condition but headroom held on its shipment date
    not_covered_reasons: tuple[str, ...]
    limit_in_force: Decimal  # on its shipment date (credit limit or discretionary)
    sanctioned: bool
    notified_late: bool
    dispute: str | None  # None, "open", "policyholder" (settled for it) or "buyer"
    currency_matches: bool = True
    # What the notifications said of the invoice (None: never notified, or only cleared).
    notified: Notified | None = None

    def dates_differ(self) -> bool:
        """Claimed with a shipment or due date its notifications do not bear out (a claim filed
        before filing compared them): its cover and clocks are not the notified invoice's."""
        if self.notified is None:
            return False
        return bool({"shipment_date", "due_date"}
                    & set(differs_from_notification(self.invoice, self.notified)))  # fmt: skip


def exclusions_of(facts: InvoiceFacts) -> list[str]:
    """The exclusions that apply to one invoice (domain.md, Exclusions), in a fixed order."""
    found: list[str] = []
    if not facts.currency_matches:
        found.append("exchange_rate_loss")
    if facts.sanctioned:
        found.append("sanctioned_buyer")
    if "buyer_not_insurable" in facts.not_covered_reasons:
        found.append("buyer_not_insurable")
    if not facts.covered_on_shipment:
        found.append("not_covered_on_shipment_date")
    if facts.dates_differ():
        found.append("differs_from_notification")
    if facts.notified_late:
        found.append("notified_late")
    if facts.dispute == "open":
        found.append("disputed")
    elif facts.dispute == "buyer":
        found.append("dispute_settled_for_buyer")
    return found


def claim_exclusions(
    *, nuclear_related: bool, war_related: bool, political_risk_cover: bool
) -> list[str]:
    """The exclusions of a whole claim: nuclear risk, and war without political risk cover
    (either excludes every invoice, whatever its cover on its shipment date)."""
    found = []
    if nuclear_related:
        found.append("nuclear_risk")
    if war_related and not political_risk_cover:
        found.append("war_without_political_cover")
    return found


# A coverage check's condition and reasons that say nothing of cover on the shipment date: the
# headroom left today, and being covered for only part of the amount.
_HEADROOM_CONDITION = "headroom_available"
_TODAYS_REASONS = frozenset({"headroom_exhausted", "partially_covered"})


def covered_on_shipment(conditions: Mapping[str, bool]) -> bool:
    """Every coverage condition but today's headroom held on the invoice's shipment date."""
    return all(held for name, held in conditions.items() if name != _HEADROOM_CONDITION)


def shipment_reasons(reasons: Sequence[str]) -> tuple[str, ...]:
    """The reasons a coverage check gives that concern the shipment date (not today's
    headroom)."""
    return tuple(r for r in reasons if r not in _TODAYS_REASONS)


# What an invoice's disputes say together: any open one holds it; any settled for the buyer
# excludes it; it counts only if every dispute on it was settled in the policyholder's favour.
_DISPUTE_PRECEDENCE = {"open": 2, "buyer": 1, "policyholder": 0}


def dispute_outcomes(disputes: Iterable[tuple[Sequence[str], str | None]]) -> dict[str, str]:
    """Per disputed invoice (each dispute its invoice numbers and outcome, None while open):
    `open` while any dispute naming it is, else `buyer` if any was settled for the buyer, else
    `policyholder` (domain.md: the invoice counts only if settled in the policyholder's
    favour, which two disputes on it must both be)."""
    outcome: dict[str, str] = {}
    for numbers, settled_for in disputes:
        said = settled_for or "open"
        for number in numbers:
            was = outcome.get(number)
            if was is None or _DISPUTE_PRECEDENCE[said] > _DISPUTE_PRECEDENCE[was]:
                outcome[number] = said
    return outcome


def political_loss(cause: str, *, war_related: bool, political_risk_cover: bool) -> bool:
    """A loss the political-risk cover pays: a political cause, or a war under that cover
    (domain.md: the cover's risks are FX transfer restrictions, war, import bans; war is
    excluded only without it)."""
    return cause == "political" or (war_related and political_risk_cover)


def indemnity_pct_for(
    cause: str, indemnity_pct: Decimal, political_pct: Decimal, *, war_related: bool = False,
    political_risk_cover: bool = False,
) -> Decimal:  # fmt: skip
    """A political loss (`political_loss`) is indemnified at the political percentage, any
    other at the policy's."""
    political = political_loss(cause, war_related=war_related,
                               political_risk_cover=political_risk_cover)  # fmt: skip
    return political_pct if political else indemnity_pct


@dataclass(frozen=True)
class IndemnityTerms:
    indemnity_pct: Decimal  # the political percentage for a political loss
    deductible: Decimal
    claim_threshold: Decimal
    single_buyer_cap_left: Decimal | None  # None: no cap
    max_liability_left: Decimal
    political: bool = False  # a political loss: `indemnity_pct` is the political percentage


@dataclass(frozen=True)
class Step:
    step: int
    name: str
    amount: Decimal
    note: str


@dataclass(frozen=True)
class InvoiceLine:
    number: str
    amount: Decimal
    reduction: Decimal  # all of it, what collections recovered on the invoice included
    recovered_in_collections: Decimal
    unpaid: Decimal
    exclusions: tuple[str, ...]
    limit_in_force: Decimal
    covered: Decimal


@dataclass(frozen=True)
class Indemnity:
    currency: str
    lines: tuple[InvoiceLine, ...]
    steps: tuple[Step, ...]
    insured_loss: Decimal
    amount: Money
    unpaid_total: Decimal
    warnings: tuple[str, ...] = field(default=())


def _oldest_first(invoice: ClaimInvoice) -> tuple[dt.date, dt.date, str]:
    return (invoice.due_date, invoice.shipment_date, invoice.number)


def _shipment_order(invoice: ClaimInvoice) -> tuple[dt.date, dt.date, str]:
    return (invoice.shipment_date, invoice.due_date, invoice.number)


def _reduced_oldest_first(
    facts: Sequence[InvoiceFacts], recorded: Mapping[str, Decimal], reductions: Decimal
) -> dict[str, Decimal]:
    """Amounts recovered before payment reduce the unpaid invoices: first what collection cases
    recorded on each invoice, then the credit notes, set-offs and recoveries declared, oldest
    first (what is declared beyond the invoices' total reduces nothing): what each invoice is
    reduced by."""
    reduced = {f.invoice.number: min(f.invoice.amount, recorded.get(f.invoice.number, ZERO))
               for f in facts}  # fmt: skip
    left = reductions
    for f in sorted(facts, key=lambda f: _oldest_first(f.invoice)):
        taken = min(left, f.invoice.amount - reduced[f.invoice.number])
        reduced[f.invoice.number] += taken
        left -= taken
    return reduced


def declared_beyond_recorded(
    reductions: Decimal, declared_recovered: Decimal, recorded_total: Decimal
) -> Decimal:
    """The declared reductions that are not already among the recoveries collections recorded:
    a recovery the policyholder declares and a collection case recorded is the same money, so
    the declared recoveries count only beyond what was recorded."""
    return reductions - min(declared_recovered, recorded_total)


class UsedLine(NamedTuple):
    """An eligible invoice of an assessment as the buyer's limit reads it: its place in shipment
    order (shipment date, due date, number), the limit in force on its shipment date, what of it
    is unpaid and eligible (zero when excluded), and what its assessment covered."""

    shipment_date: dt.date
    due_date: dt.date
    number: str
    limit_in_force: Decimal
    unpaid: Decimal
    covered: Decimal = ZERO


class LimitUse(NamedTuple):
    """What another live claim on the same policy and buyer covered of the buyer's limit (its
    insured loss as assessed), its eligible invoices (`lines`), and whether it is approved or
    paid (`committed`: what it covers is promised, whatever was shipped before it)."""

    claim_id: str
    covered: Decimal
    lines: tuple[UsedLine, ...] = ()
    committed: bool = False


def _walk(lines: Sequence[UsedLine]) -> list[Decimal]:
    """Each line covered up to the limit in force on its shipment date less what the lines
    before it use (`lines` in shipment order): one claim's step 2."""
    used, covered = ZERO, []
    for line in lines:
        taken = min(line.unpaid, max(ZERO, line.limit_in_force - used)) if line.unpaid > 0 else ZERO
        covered.append(taken)
        used += taken
    return covered


def _in_shipment_order(line: UsedLine) -> tuple[dt.date, dt.date, str]:
    return (line.shipment_date, line.due_date, line.number)


def limit_entitlement(own: Sequence[UsedLine], others: Sequence[LimitUse]) -> Decimal:
    """What a claim's eligible invoices (`own`) may cover of the buyer's limit when other live
    claims on the policy and buyer (`others`) use it too: a limit is one promise, however the
    invoices are split into claims. All their invoices taken together in shipment order cover
    what one claim of them all would (`_walk`). Of that, the claims approved or paid keep what
    they were promised; the rest goes to the claims not yet approved, this one among them: all
    the invoices walked in shipment order again, a promised one using what its claim's
    assessment covered, any other covered up to the limit in force on its shipment date less
    what the invoices before it use (the earlier shipments first, whichever claim they are in
    and in whatever order the claims were assessed), the latest of them cut first when the
    promises leave less. This claim has what its invoices get there, never more than they
    cover on their own."""
    ordered = sorted(own, key=_in_shipment_order)
    alone = sum(_walk(ordered), ZERO)
    if not others:
        return alone
    everyone = sorted([*own, *(line for use in others for line in use.lines)],
                      key=_in_shipment_order)  # fmt: skip
    left = sum(_walk(everyone), ZERO) - sum((u.covered for u in others if u.committed), ZERO)
    lines = sorted([*((line, "own") for line in own),
                    *((line, "promised" if u.committed else "other")
                      for u in others for line in u.lines)],
                   key=lambda entry: _in_shipment_order(entry[0]))  # fmt: skip
    used, mine = ZERO, ZERO
    for line, whose in lines:
        if whose == "promised":
            used += line.covered
            continue
        taken = min(line.unpaid, max(ZERO, line.limit_in_force - used), max(ZERO, left))
        used += taken
        left -= taken
        mine += taken if whose == "own" else ZERO
    return min(alone, mine)


def _limit_used_note(used: Sequence[LimitUse], cut: Decimal, currency: str) -> str:
    """Which claims already use the limit, how much of it (approved or paid, or as assessed), and
    what that takes off this one."""
    taken = [u for u in used if u.covered > 0]
    if not taken:
        return ""
    total = Money(sum((u.covered for u in taken), ZERO), currency).rounded_text()
    each = ", ".join(f"claim {u.claim_id} {Money(u.covered, currency).rounded_text()}"
                     + ("" if u.committed else " as assessed") for u in taken)  # fmt: skip
    note = f"; {total} of the limit already used by other claims on the policy and buyer ({each})"
    if cut > 0:
        note += (f": {Money(cut, currency).rounded_text()} less for this claim, the latest "
                 "shipments first")  # fmt: skip
    else:
        note += ": the earlier shipments are covered first, so nothing less for this claim"
    return note


def indemnity(
    facts: Sequence[InvoiceFacts], *, reductions: Decimal, terms: IndemnityTerms, currency: str,
    claim_exclusions: Sequence[str] = (), recorded: Mapping[str, Decimal] | None = None,
    declared_recovered: Decimal = ZERO, limit_used: Sequence[LimitUse] = (),
) -> Indemnity:  # fmt: skip
    """domain.md's sum, each step recorded:
    0. each invoice counts for no more than the amount notified in time (`notified`; the note of
       step 1 names those claimed above it);
    1. credit notes, set-offs and recoveries before payment reduce the unpaid invoices: what
       collection cases recorded on each invoice (`recorded`), then the reductions declared
       (`reductions`, of which `declared_recovered` recoveries, counted only beyond what was
       recorded), oldest first;
    2. eligible invoices (none under an exclusion of their own or of the whole claim) in shipment
       order, each covered up to the limit in force on its shipment date less what other live
       eligible invoices of the claim use; of which other live claims on the policy and buyer
       may take part (`limit_used`, `limit_entitlement`: a limit is one promise, however the
       invoices are split into claims), the latest shipments first: the insured loss;
    3. × the indemnity percentage;
    4. − the deductible, not below zero; nothing if the insured loss is at or below the threshold;
    5. capped by what is left of the single-buyer cap and of the maximum liability;
    6. rounded once, half-up, to the currency's minor unit."""
    over = _above_notified(facts, currency)
    facts = [_at_notified_amount(f) for f in facts]
    numbers = {f.invoice.number for f in facts}
    recorded = {n: amount for n, amount in (recorded or {}).items() if n in numbers and amount > 0}
    recorded_total = sum(recorded.values(), ZERO)
    declared = declared_beyond_recorded(reductions, declared_recovered, recorded_total)
    reduced = _reduced_oldest_first(facts, recorded, declared)
    unpaid_total = sum((f.invoice.amount - reduced[f.invoice.number] for f in facts), ZERO)
    steps = [Step(1, "reductions", sum(reduced.values(), ZERO),
                  "; ".join([*over, _reductions_note(recorded_total, reductions, declared,
                                                     unpaid_total, currency)]))]  # fmt: skip

    ordered = sorted(facts, key=lambda f: _shipment_order(f.invoice))
    excluded = {f.invoice.number: (*exclusions_of(f), *claim_exclusions) for f in ordered}
    unpaid = {f.invoice.number: f.invoice.amount - reduced[f.invoice.number] for f in ordered}
    own = [UsedLine(f.invoice.shipment_date, f.invoice.due_date, f.invoice.number,
                    f.limit_in_force,
                    ZERO if excluded[f.invoice.number] else unpaid[f.invoice.number])
           for f in ordered]  # fmt: skip
    covered = _walk(own)
    # What other claims use of the limit takes off this one's, the latest shipments first.
    cut = sum(covered, ZERO) - limit_entitlement(own, limit_used)
    left_to_cut = cut
    for index in reversed(range(len(covered))):
        taken = min(covered[index], left_to_cut)
        covered[index] -= taken
        left_to_cut -= taken
    lines = [
        InvoiceLine(f.invoice.number, f.invoice.amount, reduced[f.invoice.number],
                    min(f.invoice.amount, recorded.get(f.invoice.number, ZERO)),
                    unpaid[f.invoice.number], excluded[f.invoice.number], f.limit_in_force,
                    line_covered)
        for f, line_covered in zip(ordered, covered, strict=True)
    ]  # fmt: skip
    insured_loss = sum((line.covered for line in lines), ZERO)
    steps.append(Step(2, "insured_loss", insured_loss,
                      "eligible invoices in shipment order, each up to the limit in force on its "
                      "shipment date less what earlier ones use"
                      + _limit_used_note(limit_used, cut, currency)))  # fmt: skip

    amount = insured_loss * terms.indemnity_pct / Decimal(100)
    which = " (the political percentage: a political loss)" if terms.political else ""
    steps.append(Step(3, "indemnity_percentage", amount, f"× {terms.indemnity_pct}%{which}"))

    if insured_loss <= terms.claim_threshold:
        amount = ZERO
        note = f"the insured loss is at or below the claim threshold of {terms.claim_threshold}"
    else:
        amount = max(ZERO, amount - terms.deductible)
        note = f"− deductible {terms.deductible}"
    steps.append(Step(4, "deductible_and_threshold", amount, note))

    caps = [("maximum liability left for the policy year", terms.max_liability_left)]
    if terms.single_buyer_cap_left is not None:
        caps.append(("single-buyer cap left", terms.single_buyer_cap_left))
    notes = []
    for name, cap in caps:
        if amount > max(ZERO, cap):
            amount = max(ZERO, cap)
            notes.append(f"capped by the {name} ({Money(amount, currency).rounded_text()})")
    steps.append(Step(5, "caps", amount, "; ".join(notes) or "within the caps"))

    rounded = Money(amount, currency).rounded()
    steps.append(Step(6, "rounding", rounded.amount, "rounded once, half-up"))
    return Indemnity(currency=currency, lines=tuple(lines), steps=tuple(steps),
                     insured_loss=insured_loss, amount=rounded,
                     unpaid_total=unpaid_total)  # fmt: skip


def _at_notified_amount(facts: InvoiceFacts) -> InvoiceFacts:
    """An invoice counts for no more than the amount notified in time (domain.md: invoices
    notified late are excluded, and what no notification named was not notified)."""
    if facts.notified is None or facts.invoice.amount <= facts.notified.amount:
        return facts
    return replace(facts, invoice=facts.invoice._replace(amount=facts.notified.amount))


def _above_notified(facts: Sequence[InvoiceFacts], currency: str) -> list[str]:
    """The note of each invoice claimed above the amount notified in time."""
    return [f"invoice {f.invoice.number} counted at the {Money(f.notified.amount, currency).rounded_text()} "
            f"notified in time, not the {Money(f.invoice.amount, currency).rounded_text()} claimed "
            "(the rest was not notified in time: excluded)"
            for f in facts if f.notified is not None and f.invoice.amount > f.notified.amount]  # fmt: skip


def _reductions_note(
    recorded_total: Decimal, reductions: Decimal, declared: Decimal, unpaid_total: Decimal,
    currency: str,
) -> str:  # fmt: skip
    def text(amount: Decimal) -> str:
        return Money(amount, currency).rounded_text()

    parts = []
    if recorded_total > 0:
        parts.append(f"recoveries of {text(recorded_total)} recorded by collection cases before "
                     f"the claim, each on its invoice")  # fmt: skip
    declared_word = " declared" if recorded_total > 0 else ""
    said = f"credit notes, set-offs and recoveries{declared_word} of {text(reductions)}"
    if declared != reductions:
        said += (f" ({text(reductions - declared)} of the recoveries declared already recorded by "
                 f"collections: counted once)")  # fmt: skip
    parts.append(said + " applied oldest first")
    return "; ".join(parts) + f"; unpaid {text(unpaid_total)}"


class AssessedLine(NamedTuple):
    """One invoice of an assessment, as the reasons for a nil indemnity read it."""

    number: str
    unpaid: Decimal
    exclusions: tuple[str, ...]


@dataclass(frozen=True)
class AssessedSum:
    """The amounts of an assessment's steps (domain.md's sum) and the terms they applied."""

    lines: tuple[AssessedLine, ...]
    claim_exclusions: tuple[str, ...]
    insured_loss: Decimal
    after_percentage: Decimal
    after_deductible: Decimal
    after_caps: Decimal
    claim_threshold: Decimal
    deductible: Decimal
    currency: str


def why_nil(assessed: AssessedSum) -> str:
    """Why an assessment's indemnity is nil, at the first step of the sum that leaves nothing:
    the reductions leave nothing unpaid; the invoices left unpaid are excluded (or the whole
    claim is) or no limit covers them; the insured loss is at or below the claim threshold; the
    deductible takes it all; the caps are used up; what is left rounds to nothing."""

    def text(amount: Decimal) -> str:
        return Money(amount, assessed.currency).rounded_text()

    unpaid = [line for line in assessed.lines if line.unpaid > 0]
    if not unpaid:
        return "credit notes, set-offs and recoveries leave nothing unpaid on its invoices"
    if assessed.insured_loss <= 0:
        if assessed.claim_exclusions:
            return "the whole claim is excluded: " + ", ".join(assessed.claim_exclusions)
        return "; ".join(
            f"invoice {line.number} is excluded: {', '.join(line.exclusions)}"
            if line.exclusions
            else f"invoice {line.number} has none of the limit in force on its shipment date "
            "left to cover it (there is none, or earlier invoices or other claims on the policy "
            "and buyer use it all)"
            for line in unpaid
        )
    if assessed.insured_loss <= assessed.claim_threshold:
        return (f"the insured loss of {text(assessed.insured_loss)} is at or below the claim "
                f"threshold of {text(assessed.claim_threshold)}")  # fmt: skip
    if assessed.after_deductible <= 0:
        return (f"the deductible of {text(assessed.deductible)} takes all of the "
                f"{text(assessed.after_percentage)} the indemnity percentage leaves")  # fmt: skip
    if assessed.after_caps <= 0:
        return ("claims approved or paid on the policy use up its caps for the policy year of "
                "the loss")  # fmt: skip
    return f"{assessed.after_caps} rounds to nothing"


def recovered_since(
    at_assessment: Mapping[str, Decimal], now: Mapping[str, Decimal]
) -> dict[str, Decimal]:
    """Per invoice of the claim, what collection cases recovered since the assessment read them
    (empty: nothing new, the assessment stands)."""
    return {n: now.get(n, ZERO) - was for n, was in at_assessment.items()
            if now.get(n, ZERO) != was}  # fmt: skip


def policy_year(start_date: dt.date, day: dt.date) -> tuple[dt.date, dt.date]:
    """The policy year containing `day`: [start + k years, start + k + 1 years)."""
    years = day.year - start_date.year
    begin = _add_years(start_date, years)
    if begin > day:
        years -= 1
        begin = _add_years(start_date, years)
    return begin, _add_years(start_date, years + 1)


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February into a common year
        return day.replace(year=day.year + years, day=28)


def caps_left(
    *,
    max_liability: Decimal,
    single_buyer_cap: Decimal | None,
    used_on_policy: Decimal,
    used_on_buyer: Decimal,
) -> Decimal:
    """What the caps still leave for one more claim: the maximum liability for the policy year
    less what approved and paid claims of that year carry, and no more than the single-buyer cap
    (if any) less what the buyer's approved and paid claims carry; never below zero."""
    left = max_liability - used_on_policy
    if single_buyer_cap is not None:
        left = min(left, single_buyer_cap - used_on_buyer)
    return max(ZERO, left)


def caps_refusal(indemnity: Decimal | None, left: Decimal, *, paying: bool) -> Refusal | None:
    """Claims approved or paid since this one was assessed use the same caps: if what is left of
    them no longer covers the assessed indemnity, the claim is not approved (its assessment is
    outdated: assess it again) nor paid (the caps are exceeded)."""
    if indemnity is None or indemnity <= left:
        return None
    return Refusal.CAPS_EXCEEDED if paying else Refusal.ASSESSMENT_OUTDATED


# The exclusions that say the buyer does not owe the invoice: a dispute settled in its favour
# (domain.md: the invoice counts only if settled in the policyholder's favour). Every other
# exclusion leaves the debt owed: the insurer did not cover it (notified late, not covered on its
# shipment date, a currency or a claim the policy does not insure), but the buyer still has to
# pay it, and what is recovered on it is shared as the indemnity bore the whole debt.
NOT_OWED_BY_BUYER = frozenset({"dispute_settled_for_buyer"})


def owed_by_buyer(exclusions: Iterable[str]) -> bool:
    """Whether the buyer still owes an invoice under these exclusions."""
    return NOT_OWED_BY_BUYER.isdisjoint(exclusions)


class SubrogatedInvoice(NamedTuple):
    number: str
    unpaid: Decimal
    due_date: dt.date


def subrogated_invoices(
    unpaid: Mapping[str, Decimal], due_dates: Mapping[str, dt.date],
    not_owed: Collection[str] = (),
) -> list[SubrogatedInvoice]:  # fmt: skip
    """What payment hands to collections: each invoice of the claim still unpaid after the
    reductions (in the assessment's order), with its due date; invoices paid in full stay, and
    so do those the buyer does not owe (`not_owed`: a dispute settled for it)."""
    return [SubrogatedInvoice(number, amount, due_dates[number])
            for number, amount in unpaid.items()
            if amount > 0 and number not in not_owed]  # fmt: skip


def settled_invoices(unpaid: Mapping[str, Decimal], not_owed: Collection[str] = ()) -> list[str]:
    """The claim's invoices the buyer owes nothing on, in the assessment's order: those its
    reductions (credit notes, set-offs, recoveries) left nothing unpaid on, and those it does not
    owe (`not_owed`); a mandate the claim takes over owes nothing on them."""
    return [number for number, amount in unpaid.items() if amount <= 0 or number in not_owed]


# What a document's first bytes must be for the type it is declared as (an upload is refused when
# its content does not match its declared type, so an executable cannot pass as a PDF).
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/tiff": (b"II*\x00", b"MM\x00*"),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": (b"PK\x03\x04",),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (b"PK\x03\x04",),
    "application/vnd.ms-excel": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",),
    "application/msword": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",),
}
_TEXT_TYPES = frozenset({"text/plain", "text/csv"})


def content_matches_type(content: bytes, content_type: str) -> bool:
    """Whether a document's bytes are what its declared type says: the type's signature, or for
    text, UTF-8 without NUL bytes."""
    if content_type in _TEXT_TYPES:
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return b"\x00" not in content
    signatures = _SIGNATURES.get(content_type)
    return signatures is not None and content.startswith(signatures)
