"""Grade (domain.md, Underwriting: Grade): the scoring table, signals and the grade in force on a
day."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Literal, NamedTuple

ZERO = Decimal(0)


@dataclass(frozen=True)
class Band:
    """A value within `bound` scores `points` (`≤ bound` when higher is worse, `≥ bound` when
    lower is worse; strict when not `inclusive`)."""

    bound: Decimal
    points: Decimal
    inclusive: bool = True


@dataclass(frozen=True)
class Factor:
    name: str
    higher_is_worse: bool
    bands: tuple[Band, ...]
    otherwise: Decimal

    def points(self, value: Decimal) -> Decimal:
        for band in self.bands:
            if self.higher_is_worse:
                within = value <= band.bound if band.inclusive else value < band.bound
            else:
                within = value >= band.bound if band.inclusive else value > band.bound
            if within:
                return band.points
        return self.otherwise


def _d(text: str) -> Decimal:
    return Decimal(text)


@dataclass(frozen=True)
class GradingTable:
    """domain.md's default scoring: points add up, grade = min(max_grade, floor(1 + points)),
    and the insolvent grade only on insolvency."""

    factors: tuple[Factor, ...] = (
        Factor("current_ratio", False, (Band(_d("2.0"), ZERO), Band(_d("1.2"), _d("1")),
               Band(_d("0.8"), _d("2"))), _d("3")),
        Factor("dso_change", True, (Band(_d("0.10"), ZERO), Band(_d("0.20"), _d("1"))), _d("2")),
        Factor("overdue_ratio", True, (Band(_d("0.05"), ZERO), Band(_d("0.15"), _d("1")),
               Band(_d("0.30"), _d("2"))), _d("3")),
        Factor("litigation_count", True, (Band(ZERO, ZERO), Band(_d("2"), _d("1"))), _d("2")),
        Factor("management_changes_12m", True, (Band(_d("1"), ZERO),), _d("1")),
        Factor("equity", False, (Band(ZERO, ZERO, inclusive=False),), _d("2")),
        Factor("country_risk_level", True, (Band(_d("1"), ZERO), Band(_d("2"), _d("1")),
               Band(_d("3"), _d("2"))), _d("3")),
    )  # fmt: skip
    unknown_points: Decimal = Decimal("0.5")
    base_grade: int = 1
    max_grade: int = 9
    insolvent_grade: int = 10


DEFAULT_GRADING = GradingTable()

# Points a signal adds to the grade while it is recent (observed within `SIGNAL_MEMORY_DAYS`).
DEFAULT_SIGNAL_POINTS: Mapping[str, Decimal] = {
    "insolvency_filing": ZERO,
    "court_judgment": _d("1"),
    "payment_delay": _d("1"),
    "management_change": ZERO,
    "registry_change": _d("0.5"),
    "overdue_notified": _d("1"),
    "arrears_cleared": ZERO,
    # The closed loop: a loss the insurer paid on the buyer, a protracted default it paid (the
    # default confirmed: the claim survived its exclusions and disputes), a collection case that
    # had to go to law, and one the buyer paid in full (which cancels the payment delay its
    # mandate signalled: favourable signals only offset adverse ones, see `recent_signals`).
    "claim_paid": _d("2"),
    "protracted_default": _d("2"),
    "collection_legal": _d("1"),
    "collection_paid": _d("-1"),
}
SIGNAL_MEMORY_DAYS = 365
SIGNAL_KINDS = frozenset(DEFAULT_SIGNAL_POINTS)
POLICY_SIGNALS = frozenset({"overdue_notified", "arrears_cleared"})


def may_record_signal(kind: str, *, by_service: bool, underwriters_kinds: Collection[str]) -> bool:
    """An underwriter records the kinds of signal api.md lists (`underwriters_kinds`); a service
    also those only the services report (a claim paid, a protracted default paid, a collection
    case gone to law or paid in full)."""
    return by_service or kind in underwriters_kinds


class Episode(NamedTuple):
    """How the signals reporting one delay are told apart from another delay's: by the party
    they carry (`by`: the policy they were reported under, or the creditor whose debt a collection
    case collects), until a signal of the kind that ends it is reported for that party."""

    by: Literal["policy", "creditor"]
    ended_by: str


# A delay reported under a policy lasts until its arrears are cleared on that policy (domain.md,
# Stop-shipment); a creditor's delay handed to collection lasts until the buyer has paid its
# cases in full (collections says so once, when the creditor's last live case on it closes paid).
UNTIL_ARREARS_CLEARED = Episode("policy", "arrears_cleared")
UNTIL_CASES_PAID = Episode("creditor", "collection_paid")
# The kinds that report a delay, each counted once per episode while it lasts, with the episodes
# they may belong to (the first whose party the signal carries; carrying none, it counts alone).
DELAY_EPISODES: Mapping[str, tuple[Episode, ...]] = {
    "overdue_notified": (UNTIL_ARREARS_CLEARED,),
    "protracted_default": (UNTIL_ARREARS_CLEARED,),
    "payment_delay": (UNTIL_ARREARS_CLEARED, UNTIL_CASES_PAID),
    "collection_legal": (UNTIL_CASES_PAID,),
}
REPEATED_DELAY_NOTE = (
    "a delay counts once per policy until its arrears are cleared, and once per creditor until "
    "its collection cases are paid"
)


def _episode_kinds(by: str) -> frozenset[str]:
    """The kinds whose `by` party the grade reads: those that report a delay or end it by it."""
    pairs = [(kind, e) for kind, episodes in DELAY_EPISODES.items() for e in episodes if e.by == by]
    return frozenset({kind for kind, _ in pairs} | {e.ended_by for _, e in pairs})


# The kinds whose policy, and whose creditor, the grade reads (the others' are left unread).
POLICY_EPISODE_KINDS = _episode_kinds("policy")
CREDITOR_EPISODE_KINDS = _episode_kinds("creditor")


class ObservedSignal(NamedTuple):
    """A signal as the grade reads it: its kind, the day it was observed, the policy it was
    reported under and the creditor whose debt it is about (None: not said)."""

    kind: str
    observed_on: dt.date
    policy_id: str | None = None
    creditor_id: str | None = None

    def party(self, by: str) -> str | None:
        return self.policy_id if by == "policy" else self.creditor_id


# The kinds a creditor reports on its buyer through collections (a mandate's payment delay, a case
# gone to law, a creditor's cases paid in full): those whose creditor the grade reads.
CREDITOR_REPORTED_KINDS = CREDITOR_EPISODE_KINDS
NO_STAKE_REASON = "creditor_without_stake"
NO_STAKE_MESSAGE = (
    "reported for a creditor holding no credit limit on the buyer under its policies: recorded, "
    "but it weighs nothing on the buyer's grade or limits"
)


def signal_weighs(kind: str, creditor_id: str | None, *, creditor_has_stake: bool) -> bool:
    """Whether a signal weighs on the buyer's grade (and so on every insurer's limits on it): a
    signal a creditor reports on its buyer (`CREDITOR_REPORTED_KINDS`, naming the creditor) weighs
    only when that creditor has a stake in the buyer, decided once, when it is recorded: a credit
    limit on the buyer under one of its own policies (granted or recorded by the insurer, in force
    or not any more). Otherwise anyone could mandate collection against any buyer and downgrade
    (or, paid in full, upgrade) it for every policyholder insured on it. A limit request alone
    does not make a stake, nor does a declared receivable: each is the policyholder's own
    statement, unchecked and free to make (a request for any amount, then refused), so either
    would open the lever again; an overdue notification does not either: it reaches underwriting as a signal
    under the policy (`overdue_notified`), which weighs on its own and stops shipments there, so a
    delay on a buyer covered only by the discretionary limit still reaches its grade that way.
    Signals naming no creditor (an underwriter's, an insolvency filing, claims' under a policy),
    and other kinds, weigh as before. A signal that does not weigh is kept (the buyer's signals
    list it) with no points, no grade change and no limit change."""
    return creditor_has_stake or not stake_needed(kind, creditor_id)


def stake_needed(kind: str, creditor_id: str | None) -> bool:
    """Whether a signal weighs only if its creditor has a stake in the buyer (`signal_weighs`):
    one of the kinds a creditor reports, naming the creditor."""
    return creditor_id is not None and kind in CREDITOR_REPORTED_KINDS


def unweighed_reason(weighed: bool) -> tuple[str, str] | None:
    """Why a signal recorded did not weigh on the grade, as (code, sentence); None when it did."""
    return None if weighed else (NO_STAKE_REASON, NO_STAKE_MESSAGE)


# A signal given as `(kind, observed_on)` was reported under no policy.
SignalSeen = ObservedSignal | tuple[str, dt.date]


@dataclass(frozen=True)
class Indicators:
    """A buyer's financial indicators; None means not known."""

    current_ratio: Decimal | None = None
    dso_days: Decimal | None = None
    dso_prior_year_days: Decimal | None = None
    overdue_ratio: Decimal | None = None
    litigation_count: int | None = None
    management_changes_12m: int | None = None
    equity: Decimal | None = None

    @property
    def dso_change(self) -> Decimal | None:
        """DSO's change year on year, a share; not known without both figures. From a DSO of
        zero a year ago, any DSO today is a rise beyond every band (infinite), none is none."""
        if self.dso_days is None or self.dso_prior_year_days is None:
            return None
        if not self.dso_prior_year_days:
            return ZERO if not self.dso_days else Decimal("Infinity")
        return (self.dso_days - self.dso_prior_year_days) / self.dso_prior_year_days


@dataclass(frozen=True)
class GradeFactor:
    factor: str
    value: str | None
    points: Decimal
    note: str


@dataclass(frozen=True)
class Grade:
    grade: int
    points: Decimal
    factors: tuple[GradeFactor, ...]


@dataclass(frozen=True)
class SignalTally:
    """The recent signals as the grade counts them: their points, and for each kind that weighs,
    how many were observed and how many of them counted (`(kind, observed, counted)`, by kind)."""

    points: Decimal
    kinds: tuple[tuple[str, int, int], ...] = ()

    def note(self) -> str:
        """What was counted, in words: a kind some of whose signals repeated a delay already
        counted says how many of how many, and why."""
        parts, repeated = [], False
        for kind, observed, counted in self.kinds:
            if counted == observed:
                parts.append(f"{kind} {counted}")
            else:
                parts.append(f"{kind} {counted} of {observed}")
                repeated = True
        said = "recent signals counted: " + ", ".join(parts)
        if repeated:
            said += f" ({REPEATED_DELAY_NOTE})"
        return said


def grade_buyer(
    indicators: Indicators,
    *,
    country_risk_level: int,
    signals: SignalTally | None = None,
    insolvent: bool = False,
    table: GradingTable = DEFAULT_GRADING,
) -> Grade:
    """A buyer's grade from 1 (best) to 9 from its indicators, its country's risk and recent
    signals (`recent_signals`); the insolvent grade (10) when it is insolvent. Each factor says
    what it added, the signals' what was counted."""
    values: dict[str, Decimal | None] = {
        "current_ratio": indicators.current_ratio,
        "dso_change": indicators.dso_change,
        "overdue_ratio": indicators.overdue_ratio,
        "litigation_count": _opt(indicators.litigation_count),
        "management_changes_12m": _opt(indicators.management_changes_12m),
        "equity": indicators.equity,
        "country_risk_level": Decimal(country_risk_level),
    }
    factors: list[GradeFactor] = []
    total = ZERO
    for factor in table.factors:
        value = values[factor.name]
        if value is None:
            points, note = table.unknown_points, "not known"
        elif value.is_infinite():
            points, note = factor.points(value), "scored: risen from zero"
        else:
            points, note = factor.points(value), "scored"
        total += points
        shown = None if value is None or value.is_infinite() else str(value)
        factors.append(GradeFactor(factor.name, shown, points, note))
    if signals is not None and signals.points:
        total += signals.points
        factors.append(GradeFactor("signals", str(signals.points), signals.points, signals.note()))
    if insolvent:
        factors.append(GradeFactor("insolvency", "true", ZERO, "insolvency signal: grade 10"))
        return Grade(table.insolvent_grade, total, tuple(factors))
    grade = min(table.max_grade, int((table.base_grade + total).to_integral_value(ROUND_FLOOR)))
    return Grade(grade, total, tuple(factors))


def _opt(value: int | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def signals_counted_after(day: dt.date, memory_days: int = SIGNAL_MEMORY_DAYS) -> dt.date:
    """The grade on `day` counts the signals observed after this date (within the memory): a
    signal weighs from the day observed through that day + `memory_days`, the last day included
    (domain.md: a period of N days after an anchor ends on anchor + N), so one observed on
    2025-09-01 still weighs on 2026-09-01 and no longer on 2026-09-02; an older signal no longer
    weighs on it, so a reader may leave it unread."""
    return day - dt.timedelta(days=memory_days + 1)


def _observed(signal: SignalSeen) -> ObservedSignal:
    if isinstance(signal, ObservedSignal):
        return signal
    kind, observed_on = signal
    return ObservedSignal(kind, observed_on)


def _episode_of(signal: ObservedSignal) -> tuple[str, str, str] | None:
    """The delay a signal reports, as (kind, by, party): the first of its kind's episodes whose
    party it carries; None when it carries none (or reports no delay): it counts alone."""
    for episode in DELAY_EPISODES.get(signal.kind, ()):
        party = signal.party(episode.by)
        if party is not None:
            return signal.kind, episode.by, party
    return None


# Each kind that ends delays, and by which party (arrears cleared: a policy's; cases paid: a
# creditor's).
_ENDS: Mapping[str, str] = {
    e.ended_by: e.by for episodes in DELAY_EPISODES.values() for e in episodes
}


def counted_signals(signals: Iterable[SignalSeen]) -> list[tuple[ObservedSignal, bool]]:
    """Each signal in the order observed (on one day, the order given: recorded), and whether it
    counts. A delay is one delay while it lasts (`DELAY_EPISODES`): reported under a policy (an
    overdue notified, a protracted default, a payment delay), until its arrears are cleared on
    that policy; reported by collections for a creditor (a payment delay when a case opens, a
    case going to law), until the creditor's cases on the buyer are paid in full. Only the first
    signal of each kind counts, however many notifications, claims or cases (one per invoice, or
    one for them all) report it. Another policy or creditor reporting the buyer is more evidence
    and counts again, and so does a delay reported again after it ended. A signal that ends
    delays (cases paid in full, arrears cleared) counts only when it ends one that was counted:
    a creditor's cases paid offset the delay they reported, never a delay no one reported (a
    subrogation case's debt, a claim's). Every other signal, and one that names neither policy
    nor creditor, counts."""
    ongoing: set[tuple[str, str, str]] = set()
    marked: list[tuple[ObservedSignal, bool]] = []
    for signal in sorted((_observed(s) for s in signals), key=lambda s: s.observed_on):
        counts = True
        episode = _episode_of(signal)
        if episode is not None:
            counts = episode not in ongoing
            ongoing.add(episode)
        by = _ENDS.get(signal.kind)
        party = None if by is None else signal.party(by)
        if party is not None:
            ended = {e for e in ongoing if e[1:] == (by, party)}
            counts = bool(ended)
            ongoing -= ended
        marked.append((signal, counts))
    return marked


def recent_signals(
    signals: Iterable[SignalSeen],
    *,
    today: dt.date,
    points: Mapping[str, Decimal] = DEFAULT_SIGNAL_POINTS,
    memory_days: int = SIGNAL_MEMORY_DAYS,
) -> SignalTally:
    """The signals observed within the last `memory_days` days as the grade counts them
    (`counted_signals`, among those remembered: a delay whose first notification is forgotten
    still counts while a later one is remembered). Their points never go below zero: a
    favourable signal (a case paid in full) offsets adverse ones, but never makes a buyer better
    than its indicators and country make it."""
    since = signals_counted_after(today, memory_days)
    remembered = [s for s in map(_observed, signals) if s.observed_on > since]
    observed: Counter[str] = Counter()
    counted: Counter[str] = Counter()
    total = ZERO
    for signal, counts in counted_signals(remembered):
        weight = points.get(signal.kind, ZERO)
        if not weight:
            continue
        observed[signal.kind] += 1
        if counts:
            counted[signal.kind] += 1
            total += weight
    kinds = tuple((kind, observed[kind], counted[kind]) for kind in sorted(observed))
    return SignalTally(max(total, ZERO), kinds)


def recent_signal_points(
    signals: Iterable[SignalSeen],
    *,
    today: dt.date,
    points: Mapping[str, Decimal] = DEFAULT_SIGNAL_POINTS,
    memory_days: int = SIGNAL_MEMORY_DAYS,
) -> Decimal:
    """The points the recent signals add to the grade (`recent_signals`)."""
    return recent_signals(signals, today=today, points=points, memory_days=memory_days).points


def points_when_recorded(
    signal: SignalSeen,
    known: Iterable[SignalSeen],
    *,
    points: Mapping[str, Decimal] = DEFAULT_SIGNAL_POINTS,
    memory_days: int = SIGNAL_MEMORY_DAYS,
) -> Decimal:
    """The points a signal adds to the grade of the day it was observed, recorded after the
    `known` ones: its kind's, or none when it repeats a delay already counted then
    (`counted_signals` among the signals remembered on that day)."""
    new = _observed(signal)
    since = signals_counted_after(new.observed_on, memory_days)
    before = [s for s in map(_observed, known) if since < s.observed_on <= new.observed_on]
    counts = next(c for s, c in counted_signals([*before, new]) if s is new)
    return points.get(new.kind, ZERO) if counts else ZERO


def grade_on(
    indicators: Indicators,
    *,
    day: dt.date,
    country_risk_level: int,
    signals: Iterable[SignalSeen],
    insolvent_since: dt.date | None,
    table: GradingTable = DEFAULT_GRADING,
    points: Mapping[str, Decimal] = DEFAULT_SIGNAL_POINTS,
    memory_days: int = SIGNAL_MEMORY_DAYS,
) -> Grade:
    """The grade in force on `day`: only the signals observed on or before it (and within the
    memory before it) count, and the buyer is insolvent from the day its insolvency was observed."""
    known = [s for s in map(_observed, signals) if s.observed_on <= day]
    return grade_buyer(
        indicators,
        country_risk_level=country_risk_level,
        signals=recent_signals(known, today=day, points=points, memory_days=memory_days),
        insolvent=insolvent_since is not None and insolvent_since <= day,
        table=table,
    )


def signal_points(kind: str, points: Mapping[str, Decimal] = DEFAULT_SIGNAL_POINTS) -> Decimal:
    """The points a signal of `kind` adds to the grade while it is recent (none if unknown)."""
    return points.get(kind, ZERO)


def indicators_after_signal(kind: str, indicators: Mapping[str, Any]) -> dict[str, Any]:
    """A management change counts as one more management change in the last 12 months; other
    signals leave the indicators as they are. A count not known stays not known: the change
    says there was at least one, which would score below the points of a count not known (one
    change, 0 points, against 0.5), and an adverse signal never makes a grade better."""
    changes = indicators.get("management_changes_12m")
    if kind != "management_change" or changes is None:
        return dict(indicators)
    return {**indicators, "management_changes_12m": changes + 1}


def insolvent_since_after_signal(
    kind: str, observed_on: dt.date, insolvent_since: dt.date | None
) -> dt.date | None:
    """A buyer is insolvent from the earliest day an insolvency filing was observed, in whatever
    order the filings arrive (a claim approved later may have known of it earlier)."""
    if kind != "insolvency_filing":
        return insolvent_since
    return observed_on if insolvent_since is None else min(insolvent_since, observed_on)
