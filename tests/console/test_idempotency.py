"""Every console form that changes something carries a key of its own, made fresh each time the
form is rendered, and the console sends it as `Idempotency-Key`: a form sent again (a reload
after a slow answer, a second click) is done once, and the reader is told so in their language;
the same key with other values (`idempotency-key-reused`) or while the first is still running
(`idempotency-key-in-use`) is explained, never done twice."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from console.session import SESSION_COOKIE
from shared.auth import mint_token
from shared.calendar import today as business_today
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.conftest import ROOT, auth
from tests.console.conftest import Console, console_with_services
from tests.console.test_session import csrf_of

FORM = re.compile(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', re.S)
FIELD = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"')
# The forms that change something at a service (not the console's own: language, sign-in/out),
# with what each is posted with beside its hidden fields. Setting a country's level is a PUT,
# the same level again changes nothing: it needs no key.
SERVICE_FORMS = {
    "/underwriting/requests/lrq_1/decision": {"decision": "refuse", "reason": "weak accounts"},
    "/underwriting/buyers/buy_1/signals": {"kind": "payment_delay", "observed_on": "2026-11-20"},
    "/underwriting/buyers/buy_1/indicators/confirmation": {},
    "/underwriting/limits/lim_1/change": {"change": "withdraw", "currency": "EUR",
                                          "policy_id": "pol_1", "reason": "exposure"},
    "/claims/clm_1/assessment": {},
    "/claims/clm_1/decision": {"decision": "approve", "reason": "documents complete"},
    "/claims/clm_1/payment": {},
    "/claims/clm_1/disputes/dsp_1/resolution": {"outcome": "buyer", "note": "proof of delivery"},
    "/cases/case_1/payments": {"amount": "100", "currency": "EUR", "received_on": "2026-11-20"},
    "/cases/case_1/activities": {"kind": "call", "occurred_on": "2026-11-20"},
}  # fmt: skip
ROLE_OF = {"/underwriting": "underwriter", "/claims": "claims_handler", "/cases": "collector"}


def forms_of(html: str) -> dict[str, dict[str, str]]:
    """The page's POST forms by their action, each with its hidden fields."""
    return {action: dict(FIELD.findall(body)) for action, body in FORM.findall(html)}


def query_of(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code == 303, answer.text
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}


def test_every_template_form_that_changes_something_at_a_service_carries_a_fresh_key() -> None:
    templates = sorted((ROOT / "console" / "templates").rglob("*.html"))
    checked = 0
    for path in templates:
        for action, body in FORM.findall(path.read_text()):
            if action in ("/language", "/sign-out", "/sign-in", "/underwriting/countries"):
                continue
            checked += 1
            # `form_key(action)`: fresh, or the key the form was sent with when what came of
            # it is not known yet (tests/console/test_forms_kept.py)
            assert re.search(r'name="idempotency_key" value="\{\{ form_key\([^)]+\) \}\}"', body), (
                path.name,
                action,
            )
    assert checked == len(SERVICE_FORMS) + 1  # the assessment has two forms (assess, reassess)


# ---------------------------------------------------------------- each form, services faked


@pytest.fixture
async def faked() -> AsyncIterator[tuple[httpx.AsyncClient, list[httpx.Request], list[Any]]]:
    """The console with services that answer each POST as told (`answers`, first in first out;
    by default a 200 with an id), recording each request they get."""
    seen: list[httpx.Request] = []
    answers: list[Any] = []

    def service(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if answers:
            return answers.pop(0)  # type: ignore[no-any-return]
        return httpx.Response(200, json={"id": "x_1", "limit_changes": []})

    async with console_with_services(service) as client:
        yield client, seen, answers


async def signed_in(client: httpx.AsyncClient, role: str) -> str:
    token = mint_token(DEVELOPMENT_JWT_SECRET, role=role, subject="idem", ttl_seconds=600)
    client.cookies.set(SESSION_COOKIE, token)
    return csrf_of((await client.get("/sign-in")).text)


async def test_each_form_sends_its_key_as_the_idempotency_key_of_its_service_call(
    faked: tuple[httpx.AsyncClient, list[httpx.Request], list[Any]],
) -> None:
    client, seen, _ = faked
    for number, (action, fields) in enumerate(SERVICE_FORMS.items()):
        role = next(r for prefix, r in ROLE_OF.items() if action.startswith(prefix))
        csrf = await signed_in(client, role)
        key = f"7f0c7e9e-4c1a-4d7e-9a51-{number:012d}"
        seen.clear()
        answer = await client.post(action, data={"csrf": csrf, "idempotency_key": key, **fields})
        assert answer.status_code == 303, (action, answer.text)
        posts = [r for r in seen if r.method == "POST"]
        assert [r.headers.get("idempotency-key") for r in posts] == [key], action


async def test_a_form_without_a_usable_key_still_sends_one_of_its_own(
    faked: tuple[httpx.AsyncClient, list[httpx.Request], list[Any]],
) -> None:
    """A page rendered before keys existed (or a hand-made form): the call still carries a key,
    so that the console's own retry of a call that got no answer cannot do it twice."""
    client, seen, _ = faked
    csrf = await signed_in(client, "collector")
    for given in ({}, {"idempotency_key": ""}, {"idempotency_key": "k" * 300},
                  {"idempotency_key": "a b\nc"}):  # fmt: skip
        seen.clear()
        await client.post("/cases/case_1/payments",
                          data={"csrf": csrf, **SERVICE_FORMS["/cases/case_1/payments"], **given})  # fmt: skip
        [post] = seen
        sent = post.headers["idempotency-key"]
        assert re.fullmatch(r"[0-9a-f-]{36}", sent), sent


def problem(status: int, slug: str) -> httpx.Response:
    return httpx.Response(status, json={"type": f"https://tci.example/problems/{slug}",
                                        "title": slug, "status": status})  # fmt: skip


async def test_a_replay_the_key_in_use_and_the_key_reused_are_each_explained_in_chinese(
    faked: tuple[httpx.AsyncClient, list[httpx.Request], list[Any]],
) -> None:
    client, _, answers = faked
    csrf = await signed_in(client, "claims_handler")
    data = {"csrf": csrf, "idempotency_key": "3d5c1f0e-1111-4a5b-8c9d-000000000001"}
    answers.append(httpx.Response(200, json={"id": "clm_1"},
                                  headers={"Idempotent-Replayed": "true"}))  # fmt: skip
    replayed = query_of(await client.post("/claims/clm_1/payment", data=data))
    assert replayed == {"notice": "form-replayed"}
    answers.append(problem(409, "idempotency-key-in-use"))
    in_use = query_of(await client.post("/claims/clm_1/payment", data=data))
    assert in_use == {"error": "idempotency-key-in-use"}
    answers.append(problem(422, "idempotency-key-reused"))
    reused = query_of(await client.post("/claims/clm_1/decision",
                                        data={**data, "decision": "reject", "reason": "late"}))  # fmt: skip
    assert reused == {"error": "idempotency-key-reused"}
    shown = {
        "notice": "此表单之前已提交过",
        "error=idempotency-key-in-use": "仍在处理中",
        "error=idempotency-key-reused": "已用不同的内容提交过",
    }
    for query, words in (("notice=form-replayed", shown["notice"]),
                         ("error=idempotency-key-in-use", shown["error=idempotency-key-in-use"]),
                         ("error=idempotency-key-reused", shown["error=idempotency-key-reused"])):  # fmt: skip
        page = await client.get(f"/sign-in?{query}")
        assert words in page.text, query


# ---------------------------------------------------------------- a real collections service


def payments(console: Console, case_id: str) -> list[dict[str, Any]]:
    case = httpx.get(f"{console.services['collections']}/v1/cases/{case_id}",
                     headers=auth("collector"), timeout=10)  # fmt: skip
    assert case.status_code == 200, case.text
    found: list[dict[str, Any]] = case.json()["payments"]
    return found


def test_a_payment_form_sent_twice_records_one_payment(console: Console) -> None:
    case_id = console.book.cases["lawyer_letter"]
    day = business_today("Asia/Shanghai").isoformat()
    before = len(payments(console, case_id))
    with httpx.Client(base_url=console.url, headers={"Accept-Language": "zh-CN"},
                      timeout=30) as client:  # fmt: skip
        sign_in = client.get("/sign-in")
        signed = client.post("/sign-in", data={"csrf": csrf_of(sign_in.text),
                                               "role": "collector", "name": "Chen Jie"})  # fmt: skip
        assert signed.status_code == 303
        page = client.get(f"/cases/{case_id}")
        form = forms_of(page.text)[f"/cases/{case_id}/payments"]
        assert re.fullmatch(r"[0-9a-f-]{36}", form["idempotency_key"])
        again = forms_of(client.get(f"/cases/{case_id}").text)[f"/cases/{case_id}/payments"]
        assert again["idempotency_key"] != form["idempotency_key"]  # fresh on every render
        sent = {**form, "amount": "1234.56", "received_on": day}
        first = query_of(client.post(f"/cases/{case_id}/payments", data=sent))
        assert first["notice"] == "payment-recorded"
        second = query_of(client.post(f"/cases/{case_id}/payments", data=sent))
        assert second["notice"] == "form-replayed" and second["payment"] == first["payment"]
        after = payments(console, case_id)
        assert len(after) == before + 1
        assert [p["amount"]["amount"] for p in after].count("1234.56") == 1
        shown = client.get(f"/cases/{case_id}?notice=form-replayed&payment={second['payment']}")
        assert "此表单之前已提交过" in shown.text
        # The same form with another amount: refused and explained, nothing recorded.
        other = query_of(client.post(f"/cases/{case_id}/payments",
                                     data={**sent, "amount": "99"}))  # fmt: skip
        assert other == {"error": "idempotency-key-reused"}
        assert len(payments(console, case_id)) == before + 1
        # A form rendered afresh records a payment of its own.
        fresh = forms_of(client.get(f"/cases/{case_id}").text)[f"/cases/{case_id}/payments"]
        third = query_of(client.post(f"/cases/{case_id}/payments",
                                     data={**fresh, "amount": "1234.56",
                                           "received_on": day}))  # fmt: skip
        assert third["notice"] == "payment-recorded" and third["payment"] != first["payment"]
    assert len(payments(console, case_id)) == before + 2
