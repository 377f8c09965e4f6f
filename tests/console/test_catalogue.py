"""Every text of the console is in both catalogues: each key used by a template or the code,
each code the services answer (their OpenAPI enums, the problem catalogue, the engine's reason
codes, grade factors, indemnity steps and exclusions), with the same placeholders."""

from __future__ import annotations

import json
import re
import string

import pytest

from console.catalogue import en, zh_cn
from console.i18n import LOCALES, Translator, negotiate
from services.underwriting.rules import grade
from shared.problems import CATALOGUE
from tests.conftest import ROOT

CONSOLE = ROOT / "console"
# The OpenAPI enums whose values the console shows in words, and the catalogue group of each.
ENUM_GROUPS = {
    ("underwriting", "LimitRequestStatus"): "request_status",
    ("underwriting", "UnderwriterAct"): "decision",
    ("underwriting", "CoverageReason"): "reason",
    ("underwriting", "DecisionReasonCode"): "reason",
    ("underwriting", "LadderName"): "ladder",
    ("underwriting", "SignalKind"): "signal_kind",
    ("underwriting", "GradeEntryCause"): "grade_cause",
    ("claims", "ClaimStatus"): "claim_status",
    ("claims", "ClaimCause"): "cause",
    ("claims", "ClaimDecision"): "claim_decision",
    ("claims", "DocumentKind"): "document",
    ("claims", "DisputeOutcome"): "dispute_outcome",
    ("collections", "CaseStatus"): "case_status",
    ("collections", "CaseStage"): "stage",
    ("collections", "RecordedActivityKind"): "activity",
}
LITERAL_KEY = re.compile(r"""\bt\(\s*["']([a-z_]+\.[a-z0-9_.-]+)["']""")
PLURAL_KEY = re.compile(r"""\bt\.plural\(\s*["']([a-z_]+\.[a-z0-9_.-]+)["']""")


def used_keys() -> set[str]:
    """The keys the templates and the code name; a count's key with each plural form of the
    locale (`unit.working_days[one]`, `[other]`) is checked by the plural test below."""
    found: set[str] = set()
    for path in [*CONSOLE.rglob("*.html"), *CONSOLE.glob("*.py")]:
        found |= set(LITERAL_KEY.findall(path.read_text()))
    return found


def used_plural_keys() -> set[str]:
    found: set[str] = set()
    for path in [*CONSOLE.rglob("*.html"), *CONSOLE.glob("*.py")]:
        found |= set(PLURAL_KEY.findall(path.read_text()))
    return found


def base_keys(catalogue: dict[str, str]) -> set[str]:
    return {key.split("[", 1)[0] for key in catalogue}


def enum_values(service: str, name: str) -> list[str]:
    document = json.loads((ROOT / "openapi" / f"{service}.json").read_text())
    values: list[str] = document["components"]["schemas"][name]["enum"]
    return values


def service_codes() -> set[str]:
    codes = {f"problem.{slug}" for slug in CATALOGUE}
    for (service, name), group in ENUM_GROUPS.items():
        codes |= {f"{group}.{value}" for value in enum_values(service, name)}
    codes |= {f"factor.{f.name}" for f in grade.DEFAULT_GRADING.factors}
    codes |= {"factor.signals", "factor.insolvency"}
    engine = (ROOT / "services/underwriting/rules/credit_limit.py").read_text()
    codes |= {f"reason.{c}" for c in re.findall(r'"([a-z_]+)",\s*\n?\s*f?"', engine)
              if c not in {"amount", "company"}}  # fmt: skip
    claims_rules_text = (ROOT / "services/claims/rules.py").read_text()
    steps = re.findall(r'Step\(\d, "([a-z_]+)"', claims_rules_text)
    codes |= {f"step.{name}" for name in steps}
    exclusions = re.findall(r'found\.append\("([a-z_]+)"\)', claims_rules_text)
    codes |= {f"exclusion.{name}" for name in exclusions}
    return codes


def test_every_reason_code_the_engine_and_an_underwriter_give_is_a_published_code() -> None:
    """The reasons of a limit request: the decision table's rows and an underwriter's decision
    (`UnderwriterDecision(…, "code")`), each one of the named enum `DecisionReasonCode`."""
    engine = (ROOT / "services/underwriting/rules/credit_limit.py").read_text()
    made = {c for c in re.findall(r'"([a-z_]+)",\s*\n?\s*f?"', engine)
            if c not in {"amount", "company"}}  # fmt: skip
    made |= set(re.findall(r'\bReason\(\s*"([a-z_]+)"', engine))
    made |= set(re.findall(r'UnderwriterDecision\([^()]*(?:\([^()]*\)[^()]*)*"([a-z_]+)"\)',
                           engine))  # fmt: skip
    assert {"underwriter_approved", "underwriter_partial", "underwriter_refused",
            "high_risk_grade", "above_equity_share"} <= made  # fmt: skip
    assert made == set(enum_values("underwriting", "DecisionReasonCode"))


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_catalogues_hold_the_same_keys_each_with_a_text() -> None:
    english, chinese = base_keys(en.MESSAGES), base_keys(zh_cn.MESSAGES)
    assert english == chinese, english ^ chinese
    for catalogue in (en.MESSAGES, zh_cn.MESSAGES):
        assert all(text.strip() for text in catalogue.values())


def test_every_key_a_template_or_the_code_uses_is_translated() -> None:
    keys = used_keys()
    assert len(keys) > 100  # the scan finds the templates' texts
    for locale, catalogue in LOCALES.items():
        assert keys - set(catalogue) == set(), locale


def test_every_code_the_services_answer_has_words_in_both_languages() -> None:
    codes = service_codes()
    assert {"step.insured_loss", "exclusion.notified_late", "reason.high_risk_grade",
            "problem.already-decided", "stage.lawsuit"} <= codes  # fmt: skip
    for locale, catalogue in LOCALES.items():
        assert codes - set(catalogue) == set(), locale


def test_a_translation_keeps_the_placeholders_of_the_english_text() -> None:
    """The same placeholders in both languages; a count's forms are compared with the English
    `other` form, and a form for one thing may leave the number out ("the largest buyer")."""

    def english(key: str) -> str:
        base = key.split("[", 1)[0]
        return en.MESSAGES.get(base) or en.MESSAGES[f"{base}[other]"]

    for catalogue in (en.MESSAGES, zh_cn.MESSAGES):
        for key, text in catalogue.items():
            expected = placeholders(english(key))
            if key.endswith("[one]"):
                expected -= {"n"}
                assert expected <= placeholders(text) <= expected | {"n"}, key
            else:
                assert placeholders(text) == expected, key


def test_a_count_has_exactly_the_plural_forms_of_each_language() -> None:
    """Counts are said with CLDR's plural forms (Babel's rules): English has `one` and `other`
    ("1 working day", "2 working days"), Chinese has one form for every count."""
    used = used_plural_keys()
    assert {"unit.working_days", "unit.working_days_over", "queue.hint"} <= used
    for locale, catalogue in LOCALES.items():
        forms = Translator(locale).plural_forms
        plural = {key.split("[", 1)[0] for key in catalogue if "[" in key}
        assert used <= plural, (locale, used - plural)
        assert not (plural & set(catalogue)), "a count's key is only given with its forms"
        for key in plural:
            given = {k.split("[", 1)[1].rstrip("]") for k in catalogue if k.startswith(f"{key}[")}
            assert given == forms, (locale, key, given)
    assert Translator("en").plural_forms == {"one", "other"}
    assert Translator("zh-CN").plural_forms == {"other"}


@pytest.mark.parametrize(("locale", "count", "text"), [
    ("en", 1, "1 working day"),
    ("en", 2, "2 working days"),
    ("en", 0, "0 working days"),
    ("en", 1500, "1,500 working days"),
    ("zh-CN", 1, "1 个工作日"),
    ("zh-CN", 2, "2 个工作日"),
])  # fmt: skip
def test_a_count_takes_the_plural_form_its_number_asks_for(
    locale: str, count: int, text: str
) -> None:
    assert Translator(locale).plural("unit.working_days", count) == text


def test_one_request_waiting_and_one_working_day_late_are_singular_in_english() -> None:
    english = Translator("en")
    assert english.plural("queue.hint", 1).startswith("1 request waiting")
    assert english.plural("queue.hint", 3).startswith("3 requests waiting")
    assert english.plural("unit.working_days_over", 1) == "1 working day late"


def test_the_chinese_catalogue_is_chinese_not_a_copy_of_the_english() -> None:
    copied = [k for k, text in zh_cn.MESSAGES.items() if text == en.MESSAGES[k]]
    assert copied == []


@pytest.mark.parametrize(("header", "chosen", "locale"), [
    ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh-CN"),
    ("zh-TW", None, "zh-CN"),
    ("en-US,en;q=0.9,zh-CN;q=0.8", None, "en"),
    ("fr-FR,fr;q=0.9,zh;q=0.5", None, "zh-CN"),
    ("de-DE", None, "en"),
    (None, None, "en"),
    ("zh-CN", "en", "en"),
    ("en", "zh-CN", "zh-CN"),
    ("en;q=0,zh;q=0.1", "xx", "zh-CN"),
])  # fmt: skip
def test_the_language_comes_from_the_switch_then_accept_language_then_english(
    header: str | None, chosen: str | None, locale: str
) -> None:
    assert negotiate(header, chosen) == locale


def test_babel_writes_amounts_and_dates_as_each_locale_does() -> None:
    english, chinese = Translator("en"), Translator("zh-CN")
    amount = {"amount": "1234567.50", "currency": "EUR"}
    assert english.money(amount) == "€1,234,567.50"
    assert chinese.money(amount) == "€1,234,567.50"
    assert chinese.money({"amount": "9000000.00", "currency": "CNY"}) == "¥9,000,000.00"
    assert english.date("2026-11-24") == "24 Nov 2026"
    assert chinese.date("2026-11-24") == "2026年11月24日"
    assert chinese.percent("70.8333") == "70.83%"
