"""A claims handler's approval or payment whose signal about the buyer has not reached
underwriting yet (the answer's `buyer_signal.delivery` is `pending`: underwriting refused it or
could not be reached) is done, and its notice says the buyer's grade does not follow it yet, in
both languages; delivered, the notice is the usual one. The services are answered in process
(tests/claims/test_signal_delivery_told.py proves the answer over an underwriting that refuses
or is down)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from console.catalogue import en, zh_cn
from tests.console.conftest import console_with_services
from tests.console.test_idempotency import query_of, signed_in

CLAIM = "clm_1"


def answering(act: str, delivery: str) -> Any:
    """The claims service answering the act on CLAIM with its signal's delivery."""

    def service(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == f"/v1/claims/{CLAIM}/{act}":
            kind = "insolvency_filing" if act == "decision" else "claim_paid"
            return httpx.Response(200, json={"id": CLAIM, "status": "approved", "buyer_signal": {
                "kind": kind, "observed_on": "2027-06-01", "delivery": delivery}})  # fmt: skip
        return httpx.Response(404, json={"type": "https://tci.example/problems/not-found"})

    return service


@pytest.mark.parametrize(("act", "fields", "delivery", "notice"), [
    ("decision", {"decision": "approve", "reason": "proof checked"}, "pending",
     "claim-approved-signal-pending"),
    ("decision", {"decision": "approve", "reason": "proof checked"}, "delivered",
     "claim-approved"),
    ("payment", {}, "pending", "paid-signal-pending"),
    ("payment", {}, "delivered", "paid"),
])  # fmt: skip
async def test_an_act_whose_signal_is_pending_says_the_grade_does_not_follow_yet(
    act: str,
    fields: dict[str, str],
    delivery: str,
    notice: str,
) -> None:
    async with console_with_services(answering(act, delivery)) as client:
        csrf = await signed_in(client, "claims_handler")
        answer = await client.post(f"/claims/{CLAIM}/{act}", data={"csrf": csrf, **fields})
        assert query_of(answer) == {"notice": notice}
    for catalogue in (en.MESSAGES, zh_cn.MESSAGES):
        assert f"notice.{notice}" in catalogue


def test_the_pending_notices_say_underwriting_has_not_taken_the_signal() -> None:
    assert (
        "Underwriting could not be reached" in en.MESSAGES["notice.claim-approved-signal-pending"]
    )
    assert "核保系统" in zh_cn.MESSAGES["notice.paid-signal-pending"]
