"""What the services say only in English (the indemnity steps' notes, the engine's reason
sentences, the reasons of limit history the services write, a warning the catalogue does not
know) is shown as it is on a Chinese page, marked `lang="en"` so that browsers and screen
readers read it as English; what a person typed (a reason, a note) is not marked."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import httpx

from shared.auth import mint_token
from shared.calendar import today as business_today
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.conftest import auth, unique
from tests.console.conftest import Console
from tests.console.test_session import csrf_of

SERVICE_WRITTEN_SOURCES = ("request", "signal")  # a limit's history the services word


def today() -> dt.date:
    return business_today("Asia/Shanghai")


def api(console: Console, service: str, path: str, role: str) -> Any:
    answer = httpx.get(console.services[service] + path, headers=auth(role), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def chinese_page(console: Console, role: str, path: str) -> str:
    with httpx.Client(base_url=console.url, headers={"Accept-Language": "zh-CN"},
                      timeout=30) as client:  # fmt: skip
        signed = client.post("/sign-in", data={"csrf": csrf_of(client.get("/sign-in").text),
                                               "role": role, "name": "Li Na"})  # fmt: skip
        assert signed.status_code == 303
        page = client.get(path)
    assert page.status_code == 200 and page.headers["content-language"] == "zh-CN"
    return page.text


def marked_english(page: str, text: str) -> bool:
    """`text` is the whole content of an element marked `lang="en"` on the page."""
    return re.search(r'lang="en"[^>]*>' + re.escape(html.escape(text)) + "<", page) is not None


def test_the_indemnity_steps_notes_are_marked_english(console: Console) -> None:
    claim_id = console.book.claims["assessed"]
    steps = api(console, "claims", f"/v1/claims/{claim_id}", "claims_handler")["assessment"]
    notes = [s["note"] for s in steps["steps"] if s.get("note")]
    assert notes
    page = chinese_page(console, "claims_handler", f"/claims/{claim_id}")
    for note in notes:
        assert marked_english(page, note), note


def test_the_engines_reasons_are_marked_english(console: Console) -> None:
    request = console.book.referred[0]
    reasons = [r["message"] for r in request["reasons"]]
    assert reasons
    page = chinese_page(console, "underwriter", f"/underwriting/requests/{request['id']}")
    for reason in reasons:
        assert marked_english(page, reason), reason


def test_the_limit_history_the_services_wrote_is_marked_english_a_persons_reason_is_not(
    console: Console,
) -> None:
    policy_id = console.book.policies["eur"]["id"]
    limits = api(console, "underwriting", f"/v1/policies/{policy_id}/limits", "underwriter")
    history = [h for limit in limits["items"] for h in limit["history"]]
    written = [h["reason"] for h in history if h["source"] in SERVICE_WRITTEN_SOURCES]
    typed = [h["reason"] for h in history if h["source"] not in SERVICE_WRITTEN_SOURCES]
    assert written and typed
    page = chinese_page(console, "underwriter", f"/underwriting/policies/{policy_id}")
    for reason in written:
        assert marked_english(page, reason), reason
    for reason in typed:
        assert html.escape(reason) in page and not marked_english(page, reason), reason


def test_a_signals_note_a_service_wrote_is_marked_english_an_underwriters_is_not(
    console: Console,
) -> None:
    """Collections words the note of the signal it sends (its `recorded_by` is the service's
    name: here a creditor's without a stake, which changes nothing); the demo's underwriter typed
    the note of Milano's."""
    jakarta, milano = console.book.buyers["jakarta"], console.book.buyers["milano"]
    collections = mint_token(DEVELOPMENT_JWT_SECRET, role="service", subject="collections")
    note = "collection case opened for a creditor (2 invoices, 40 days past due)"
    sent = httpx.post(console.services["underwriting"] + f"/v1/buyers/{jakarta['id']}/signals",
                      headers={"Authorization": f"Bearer {collections}"}, timeout=10,
                      json={"kind": "payment_delay", "observed_on": today().isoformat(),
                            "details": note, "creditor_id": unique("ph-stranger"),
                            "case_id": unique("case")})  # fmt: skip
    assert sent.status_code == 201 and sent.json()["weighed"] is False, sent.text
    page = chinese_page(console, "underwriter", f"/underwriting/buyers/{jakarta['id']}")
    assert marked_english(page, note)
    signals = api(console, "underwriting", f"/v1/buyers/{milano['id']}/signals", "underwriter")
    [typed] = [s["details"] for s in signals["items"]]
    page = chinese_page(console, "underwriter", f"/underwriting/buyers/{milano['id']}")
    assert html.escape(typed) in page and not marked_english(page, typed)
