"""A form the service refuses is shown again as it was filled in, the field the service names
marked (`aria-invalid`, its words next to it); a form whose outcome is not known (the service
did not answer in time) is shown again with the key it was sent with, so that sending it again
is answered with what the first did, once. The values travel in a short-lived signed cookie,
bounded in size, never with the CSRF token."""

from __future__ import annotations

import html
import os
import random
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from console.demo import MIDDLING, Loader, money
from console.web import FORM_BYTES, FORM_COOKIE, SentForm, _unsealed, sealed_form
from shared.calendar import today as business_today
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.conftest import _free_port, auth
from tests.console.conftest import Console, browser_missing, console_process
from tests.console.test_idempotency import forms_of, query_of
from tests.console.test_refusals_explained import alert_of, sent_back, signed_in
from tests.console.test_session import csrf_of

LONG_REASON = (
    "Equity is thin for this amount; the accounts of 2025 show " + "a falling margin " * 40
)


def field_of(page: str, field_id: str) -> str:
    found = re.search(rf'<(?:input|textarea|select|fieldset)[^>]*\bid="{field_id}"[^>]*>', page)
    assert found, field_id
    return found.group(0)


def test_a_refused_decision_is_shown_again_as_typed_with_the_amount_marked(
    console: Console,
) -> None:
    request = next(r for r in console.book.referred
                   if r["requested_amount"]["amount"] == "150000.00")  # fmt: skip
    page = f"/underwriting/requests/{request['id']}"
    with signed_in(console, "underwriter", "en") as client:
        shown = sent_back(client, f"{page}/decision", page, decision="partially_approve",
                          amount="1.001", reason=LONG_REASON)  # fmt: skip
        text = shown.text
        assert "at most 2 decimals" in alert_of(text)
        amount = field_of(text, "amount")
        assert 'value="1.001"' in amount and 'aria-invalid="true"' in amount
        assert 'aria-describedby="amount-hint amount-error"' in amount
        assert re.search(
            r'<p class="field-error" id="amount-error" lang="en">[^<]*2 decimals', text
        )
        assert f">{html.escape(LONG_REASON)}</textarea>" in text
        assert "aria-invalid" not in field_of(text, "reason")
        assert re.search(r'value="partially_approve" required checked', text)
        assert FORM_COOKIE in shown.headers.get("set-cookie", "")  # shown once: deleted
        again = client.get(page).text
        assert "1.001" not in again and html.escape(LONG_REASON) not in again


def test_the_consoles_own_refusal_keeps_what_was_typed_too(console: Console) -> None:
    case_id = console.book.cases["amicable"]
    page = f"/cases/{case_id}"
    with signed_in(console, "collector", "zh-CN") as client:
        shown = sent_back(client, f"{page}/activities", page, kind="promise_to_pay",
                          occurred_on=business_today("Asia/Shanghai").isoformat(),
                          note="财务总监答应下周付款", promised_amount="abc")  # fmt: skip
    assert 'value="财务总监答应下周付款"' in field_of(shown.text, "act-note")
    assert 'value="abc"' in field_of(shown.text, "act-promised")
    assert re.search(r'<option value="promise_to_pay" selected>', shown.text)


def test_the_cookie_is_bounded_signed_and_for_its_page_only() -> None:
    values = {"csrf": "secret-token", "idempotency_key": "k" * 36, "reason": random.Random(7).randbytes(10000).hex(),
              "amount": "1.001"}  # fmt: skip
    sealed = sealed_form(DEVELOPMENT_JWT_SECRET, "/p", "/p/decision", values, None)
    assert sealed is not None and len(sealed) <= FORM_BYTES + 65

    said = _unsealed(DEVELOPMENT_JWT_SECRET, "form", sealed)
    assert said is not None and said["path"] == "/p"
    sent = SentForm(said, {"amount": ["at most 2 decimals"]})
    assert sent.value("/p/decision", "amount") == "1.001"
    assert sent.value("/p/decision", "csrf") == "" and sent.key_sent is None  # never kept
    assert 1000 < len(sent.value("/p/decision", "reason")) < 20000  # shortened to fit
    assert sent.value("/p/other", "amount") == "" and sent.errors("/p/other", "amount") == []
    assert 'aria-invalid="true"' in sent.attrs("/p/decision", "amount", "amount")
    assert _unsealed(DEVELOPMENT_JWT_SECRET, "form", sealed[:-4] + "0000") is None
    assert _unsealed("another secret", "form", sealed) is None
    assert SentForm(None, {}).key("/p/decision") != SentForm(None, {}).key("/p/decision")


# ---------------------------------------------------------------- a service that does not answer


class Held:
    """A proxy before collections that, while `holding`, passes a POST on and keeps its answer
    back until released (as a paused or overloaded service does)."""

    def __init__(self, target: str) -> None:
        self.target, self.holding, self.released = target, False, threading.Event()
        self.posts = 0
        held = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _pass(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}  # fmt: skip
                answer = httpx.request(self.command, held.target + self.path, content=body,
                                       headers=headers, timeout=30)  # fmt: skip
                if self.command == "POST":
                    held.posts += 1
                    if held.holding:
                        held.released.wait(30)
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection",
                                            "content-encoding"):  # fmt: skip
                        self.send_header(name, value)
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = _pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def held_collections(console: Console) -> Iterator[tuple[Held, str]]:
    held = Held(console.services["collections"])
    thread = threading.Thread(target=held.server.serve_forever, daemon=True)
    thread.start()
    port = _free_port()
    env = {**os.environ, "TCI_CONSOLE_PORT": str(port), "TCI_JWT_SECRET": DEVELOPMENT_JWT_SECRET,
           "TCI_UNDERWRITING_URL": console.services["underwriting"],
           "TCI_CLAIMS_URL": console.services["claims"], "TCI_COLLECTIONS_URL": held.url,
           "TCI_HTTP_TIMEOUT_SECONDS": "1", "TCI_LOG_LEVEL": "WARNING"}  # fmt: skip
    try:
        with console_process(port, env, "tci-console-held-") as url:
            yield held, url
    finally:
        held.released.set()
        held.server.shutdown()
        held.server.server_close()


def payments(console: Console, case_id: str) -> list[dict[str, Any]]:
    case = httpx.get(f"{console.services['collections']}/v1/cases/{case_id}",
                     headers=auth("collector"), timeout=10)  # fmt: skip
    found: list[dict[str, Any]] = case.json()["payments"]
    return found


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_a_payment_whose_answer_never_came_is_sent_again_with_its_key_and_recorded_once(
    console: Console, language: str
) -> None:
    case_id = console.book.cases["legal" if language == "en" else "reminder_letter"]
    page, action = f"/cases/{case_id}", f"/cases/{case_id}/payments"
    before = len(payments(console, case_id))
    with held_collections(console) as (held, url), \
            httpx.Client(base_url=url, headers={"Accept-Language": language}, timeout=60) as client:  # fmt: skip
        signed = client.post("/sign-in", data={"csrf": csrf_of(client.get("/sign-in").text),
                                               "role": "collector", "name": "Chen Jie"})  # fmt: skip
        assert signed.status_code == 303
        form = forms_of(client.get(page).text)[action]
        sent = {**form, "amount": "10", "received_on": business_today("Asia/Shanghai").isoformat()}
        held.holding = True
        answer = client.post(action, data=sent)
        assert query_of(answer) == {"error": "outcome-unknown"}
        held.holding = False
        held.released.set()
        shown = client.get(answer.headers["location"])
        words = {"en": ("not known yet", "will not be done twice"),
                 "zh-CN": ("尚不知道是否已办理", "不会重复办理")}[language]  # fmt: skip
        assert all(w in alert_of(shown.text) for w in words)
        again = forms_of(shown.text)[action]
        assert again["idempotency_key"] == form["idempotency_key"]  # the same key
        assert 'value="10"' in field_of(shown.text, "pay-amount")
        assert len(payments(console, case_id)) == before + 1  # done, though not answered
        replay = query_of(client.post(action, data={**again, "amount": "10",
                                                    "received_on": sent["received_on"]}))  # fmt: skip
        assert replay["notice"] == "form-replayed"
        fresh = forms_of(client.get(page).text)[action]
        assert fresh["idempotency_key"] != form["idempotency_key"]
    amounts = [p["amount"]["amount"] for p in payments(console, case_id)]
    assert len(amounts) == before + 1 and amounts.count("10.00") == 1


# ---------------------------------------------------------------- in the browser


@pytest.mark.e2e
@pytest.mark.skipif(browser_missing() is not None,
                    reason=f"browser tests skipped: {browser_missing()}")  # fmt: skip
def test_in_the_browser_a_refused_decision_keeps_every_field_and_marks_the_amount(
    tab: Any, console: Console
) -> None:
    request = next(r for r in console.book.referred
                   if r["requested_amount"]["amount"] == "150000.00")  # fmt: skip
    person = tab("zh-CN")
    page = person.sign_in("underwriter", "Wang Fang")
    person.open(f"/underwriting/requests/{request['id']}")
    page.get_by_role("radio", name="部分批准").check()
    page.locator("#amount").fill("1.001")
    page.locator("#reason").fill(LONG_REASON)
    page.locator("form.decision button[type=submit]").click()
    page.get_by_role("alert").wait_for()
    amount = page.locator("#amount")
    assert amount.input_value() == "1.001"
    assert amount.get_attribute("aria-invalid") == "true"
    assert "2 decimals" in page.locator("#amount-error").inner_text()
    assert page.locator("#reason").input_value() == LONG_REASON
    assert page.get_by_role("radio", name="部分批准").is_checked()


@pytest.mark.e2e
@pytest.mark.skipif(browser_missing() is not None,
                    reason=f"browser tests skipped: {browser_missing()}")  # fmt: skip
def test_in_the_browser_going_back_after_a_decision_shows_it_decided_not_the_old_form(
    tab: Any, console: Console
) -> None:
    loader = Loader(console.services, DEVELOPMENT_JWT_SECRET, business_today("Asia/Shanghai"))
    try:
        policy = loader.policy("ph-back", "EUR")
        buyer = loader.buyer("Retour Arrière SA", "FR", **MIDDLING)
        asked = loader.call("underwriting", "POST", f"/v1/policies/{policy['id']}/limit-requests",
                            "policyholder", policy["policyholder_id"],
                            json={"buyer_id": buyer["id"], "amount": money("150000"),
                                  "payment_terms_days": 60})  # fmt: skip
    finally:
        loader.close()
    assert asked["status"] == "referred"
    person = tab()
    page = person.sign_in("underwriter", "Li Wei")
    page.get_by_role("link", name="Retour Arrière SA").first.click()
    page.wait_for_url(f"**/underwriting/requests/{asked['id']}")
    page.get_by_label("Refuse").check()
    page.get_by_label("Reason").fill("thin accounts")
    page.get_by_role("button", name="Record the decision").click()
    page.get_by_text("The decision is recorded.").wait_for()
    assert page.locator("form.decision").count() == 0
    page.go_back()
    page.wait_for_url(f"**/underwriting/requests/{asked['id']}")
    page.wait_for_load_state("networkidle")
    assert page.locator("form.decision").count() == 0  # the page as it is now, not as it was
    assert "Refused by an underwriter" in page.locator("ul.reasons").inner_text()
