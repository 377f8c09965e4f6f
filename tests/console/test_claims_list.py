"""The claims handler's list counts working days to a decision only for a claim still waiting
for one: a claim approved, rejected, paid or lapsed shows no days left (nor days late)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx

from console.main import create_app
from console.session import SESSION_COOKIE
from console.settings import ConsoleSettings
from console.upstream import SERVICE_NAMES
from shared.auth import mint_token
from shared.http import ServiceClient
from shared.settings import DEVELOPMENT_JWT_SECRET

STATUSES = ("under_review", "on_hold", "assessed", "approved", "rejected", "paid", "lapsed")


def claim(status: str, due: dt.date) -> dict[str, Any]:
    return {"id": f"clm_{status}", "status": status, "policy_id": "pol_1", "buyer_id": "buy_1",
            "policyholder_id": "ph-1", "cause": "insolvency", "filed_on": "2026-01-05",
            "created_at": "2026-01-05T09:00:00+00:00", "decision_due": due.isoformat(),
            "indemnity": None}  # fmt: skip


def services(due: dt.date) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/claims":
            return httpx.Response(200, json={"items": [claim(s, due) for s in STATUSES],
                                             "next_cursor": None})  # fmt: skip
        if path == "/v1/policies/pol_1":
            return httpx.Response(200, json={"id": "pol_1", "claims_calendar_country": "DE"})
        if path.startswith("/v1/calendars/"):
            return httpx.Response(200, json={"items": [], "next_cursor": None})
        return httpx.Response(404, json={"type": "https://tci.example/problems/not-found"})

    return httpx.MockTransport(answer)


async def test_only_a_claim_waiting_for_its_decision_shows_the_working_days_left() -> None:
    settings = ConsoleSettings(TCI_ENV="development", TCI_JWT_SECRET=DEVELOPMENT_JWT_SECRET)
    app = create_app(settings)
    due = settings.today() - dt.timedelta(days=30)  # long past: every claim would be "late"
    app.state.clients = {
        name: ServiceClient(f"http://{name}.test", jwt_secret=DEVELOPMENT_JWT_SECRET,
                            caller_name="console", transport=services(due))
        for name in SERVICE_NAMES
    }  # fmt: skip
    token = mint_token(DEVELOPMENT_JWT_SECRET, role="claims_handler", subject="w", ttl_seconds=600)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://console.test") as client:  # fmt: skip
        client.cookies.set(SESSION_COOKIE, token)
        page = await client.get("/claims", params={"status": "all"})
    assert page.status_code == 200
    rows = {
        status: row
        for row in re.findall(r"<tr>(.*?)</tr>", page.text, re.S)
        for status in re.findall(r'class="status s-([a-z_]+)"', row)
    }
    assert set(rows) == set(STATUSES)
    for status in ("under_review", "on_hold", "assessed"):
        assert "working days late" in rows[status], status
    for status in ("approved", "rejected", "paid", "lapsed"):
        assert "working days" not in rows[status], status
