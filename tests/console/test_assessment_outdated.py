"""An approval refused because other claims on the same policy and buyer took part of the buyer's
credit limit since the assessment (409 `assessment-outdated` with `limit_used_by`: each claim and
what it covered) names those claims on the claim's page, each linked to its own page with its
amount formatted for the reader, beside the advice to assess again, in both languages. The
console runs in process against the services as real processes; only the approval is answered
with the refusal (the services give it only to approvals racing each other:
tests/claims/test_limit_across_claims.py)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.console.conftest import Console, console_with_services
from tests.console.test_idempotency import forms_of, signed_in

HOST_OF = {"underwriting.test": "underwriting", "claims.test": "claims",
           "collections.test": "collections"}  # fmt: skip


@pytest.mark.parametrize(("language", "advice", "used", "label", "amounts"), [
    ("en", "The assessment is out of date: assess the claim again.",
     "Other claims on the same policy and buyer, approved or paid since, use part of the "
     "buyer&#39;s credit limit:", "Claim", ("€80,000.00", "€1,234.50")),
    ("zh-CN", "评估已过时，请重新评估。", "同一保单和买方下此后已批准或已赔付的其他索赔已占用该买方信用限额的一部分：",
     "索赔", ("€80,000.00", "€1,234.50")),
])  # fmt: skip
async def test_an_approval_refused_as_outdated_names_the_claims_that_used_the_limit(
    console: Console, language: str, advice: str, used: str, label: str,
    amounts: tuple[str, str],
) -> None:  # fmt: skip
    claim_id = console.book.claims["assessed"]
    others = [console.book.claims["approved"], console.book.claims["paid"]]
    page = f"/claims/{claim_id}"
    async with httpx.AsyncClient(timeout=30) as real:

        async def service(request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and request.url.path.endswith("/decision"):
                return httpx.Response(409, json={
                    "type": "https://tci.example/problems/assessment-outdated",
                    "title": "Assessment outdated", "status": 409,
                    "detail": "claims approved or paid on the policy and buyer use 81234.50 EUR "
                              "of the buyer's credit limit; assess the claim again",
                    "limit_used_by": {others[0]: {"amount": "80000.00", "currency": "EUR"},
                                      others[1]: {"amount": "1234.50", "currency": "EUR"}}})  # fmt: skip
            base = console.services[HOST_OF[request.url.host]]
            answer = await real.request(request.method, base + request.url.raw_path.decode(),
                                        headers={"authorization": request.headers["authorization"]},
                                        content=request.content)  # fmt: skip
            return httpx.Response(answer.status_code, headers={
                "content-type": answer.headers.get("content-type", "application/json")},
                content=answer.content)  # fmt: skip

        async with console_with_services(service) as client:
            client.headers["Accept-Language"] = language
            await signed_in(client, "claims_handler")
            form = forms_of((await client.get(page)).text)[f"{page}/decision"]
            answer = await client.post(f"{page}/decision", data={
                **form, "decision": "approve", "reason": "documents complete"})  # fmt: skip
            assert answer.status_code == 303, answer.text
            assert answer.headers["location"] == f"{page}?error=assessment-outdated"
            shown = (await client.get(answer.headers["location"])).text
    alert = re.search(r'<div class="error" role="alert">(.*?)</div>', shown, re.S)
    assert alert, shown
    said = alert.group(1)
    assert advice in said and used in said
    named = re.findall(r'<li><a href="/claims/([^"]+)">([^<]+)</a>: ([^<]+)</li>', said)
    assert named == [(others[0], f"{label} {others[0]}", amounts[0]),
                     (others[1], f"{label} {others[1]}", amounts[1])]  # fmt: skip


def test_a_refusal_naming_no_claims_is_explained_as_before() -> None:
    from console.upstream import UpstreamRefused
    from console.web import claims_named

    refusal = UpstreamRefused(409, "assessment-outdated", "assess again",
                              members={"limit_used_by": {"../x": {"amount": "1"}}})  # fmt: skip
    assert claims_named(refusal.members) == []  # not shaped as a claim and its money: left out
