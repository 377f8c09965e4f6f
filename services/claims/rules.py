"""Claims rules as pure functions: notification deadlines, the filing window, the documents a claim
needs, exclusions, and the indemnity sum with each of its steps. No I/O, no framework."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from shared.calendar import Corrections, add_working_days, days_after, in_time
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


# ---------------------------------------------------------------- overdue notifications


def notification_deadline(due_date: dt.date, notification_days: int) -> dt.date:
    """The last day an overdue invoice may be notified: its due date + the notification period."""
    return days_after(due_date, notification_days)


def notified_late(due_date: dt.date, notified_on: dt.date, notification_days: int) -> bool:
    return not in_time(notified_on, notification_deadline(due_date, notification_days))


def extension_allowed(due_date: dt.date, new_due_date: dt.date, max_extension_days: int) -> bool:
    """The policyholder may move a due date on its own only within the maximum extension."""
    return due_date < new_due_date <= days_after(due_date, max_extension_days)


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
    if facts.notified_late:
        found.append("notified_late")
    if facts.dispute == "open":
        found.append("disputed")
    elif facts.dispute == "buyer":
        found.append("dispute_settled_for_buyer")
    return found


@dataclass(frozen=True)
class IndemnityTerms:
    indemnity_pct: Decimal
    deductible: Decimal
    claim_threshold: Decimal
    single_buyer_cap_left: Decimal | None  # None: no cap
    max_liability_left: Decimal


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
    reduction: Decimal
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


def indemnity(
    facts: Sequence[InvoiceFacts], *, reductions: Decimal, terms: IndemnityTerms, currency: str
) -> Indemnity:
    """domain.md's sum, each step recorded:
    1. credit notes, set-offs and recoveries before payment reduce the unpaid invoices, oldest first;
    2. eligible invoices in shipment order, each covered up to the limit in force on its shipment
       date less what earlier eligible invoices of the claim already use: the insured loss;
    3. × the indemnity percentage;
    4. − the deductible, not below zero; nothing if the insured loss is at or below the threshold;
    5. capped by what is left of the single-buyer cap and of the maximum liability;
    6. rounded once, half-up, to the currency's minor unit."""
    left = reductions
    reduced: dict[str, Decimal] = {}
    for f in sorted(facts, key=lambda f: _oldest_first(f.invoice)):
        taken = min(left, f.invoice.amount)
        reduced[f.invoice.number] = taken
        left -= taken
    unpaid_total = sum((f.invoice.amount - reduced[f.invoice.number] for f in facts), ZERO)
    steps = [Step(1, "reductions", reductions - left,
                  f"credit notes, set-offs and recoveries of {reductions} applied oldest first; "
                  f"unpaid {unpaid_total}")]  # fmt: skip

    lines: list[InvoiceLine] = []
    used = ZERO
    for f in sorted(facts, key=lambda f: _shipment_order(f.invoice)):
        unpaid = f.invoice.amount - reduced[f.invoice.number]
        excluded = tuple(exclusions_of(f))
        covered = ZERO
        if not excluded and unpaid > 0:
            covered = min(unpaid, max(ZERO, f.limit_in_force - used))
            used += covered
        lines.append(InvoiceLine(f.invoice.number, f.invoice.amount, reduced[f.invoice.number],
                                 unpaid, excluded, f.limit_in_force, covered))  # fmt: skip
    insured_loss = sum((line.covered for line in lines), ZERO)
    steps.append(Step(2, "insured_loss", insured_loss,
                      "eligible invoices in shipment order, each up to the limit in force on its "
                      "shipment date less what earlier ones use"))  # fmt: skip

    amount = insured_loss * terms.indemnity_pct / Decimal(100)
    steps.append(Step(3, "indemnity_percentage", amount, f"× {terms.indemnity_pct}%"))

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
            notes.append(f"capped by the {name} ({cap})")
    steps.append(Step(5, "caps", amount, "; ".join(notes) or "within the caps"))

    rounded = Money(amount, currency).rounded()
    steps.append(Step(6, "rounding", rounded.amount, "rounded once, half-up"))
    return Indemnity(currency=currency, lines=tuple(lines), steps=tuple(steps),
                     insured_loss=insured_loss, amount=rounded,
                     unpaid_total=unpaid_total)  # fmt: skip


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
