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
from shared.calendar import is_working_day
from shared.http import ServiceClient
from shared.settings import DEVELOPMENT_JWT_SECRET

STATUSES = ("under_review", "on_hold", "assessed", "approved", "rejected", "paid", "lapsed")


def claim(status: str, due: dt.date) -> dict[str, Any]:
    return {"id": f"clm_{status}", "status": status, "policy_id": "pol_1", "buyer_id": "buy_1",
            "policyholder_id": "ph-1", "cause": "insolvency", "filed_on": "2026-01-05",
            "created_at": "2026-01-05T09:00:00+00:00", "decision_due": due.isoformat(),
            "indemnity": None}  # fmt: skip


def services(due: dt.date, statuses: tuple[str, ...] = STATUSES) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/claims":
            return httpx.Response(200, json={"items": [claim(s, due) for s in statuses],
                                             "next_cursor": None})  # fmt: skip
        if path == "/v1/policies" and request.url.params.get_list("id") == ["pol_1"]:
            return httpx.Response(200, json={"items": [{"id": "pol_1",
                                                        "claims_calendar_country": "DE"}],
                                             "next_cursor": None})  # fmt: skip
        if path.startswith("/v1/calendars/"):
            return httpx.Response(200, json={"items": [], "next_cursor": None})
        return httpx.Response(404, json={"type": "https://tci.example/problems/not-found"})

    return httpx.MockTransport(answer)


async def claims_page(due: dt.date, statuses: tuple[str, ...] = STATUSES) -> httpx.Response:
    """The claims list, all statuses, with the claims' decision due on `due`."""
    settings = ConsoleSettings(TCI_ENV="development", TCI_JWT_SECRET=DEVELOPMENT_JWT_SECRET)
    app = create_app(settings)
    app.state.clients = {
        name: ServiceClient(f"http://{name}.test", jwt_secret=DEVELOPMENT_JWT_SECRET,
                            caller_name="console", transport=services(due, statuses))
        for name in SERVICE_NAMES
    }  # fmt: skip
    token = mint_token(DEVELOPMENT_JWT_SECRET, role="claims_handler", subject="w", ttl_seconds=600)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://console.test") as client:  # fmt: skip
        client.cookies.set(SESSION_COOKIE, token)
        page = await client.get("/claims", params={"status": "all"})
    assert page.status_code == 200
    return page


def next_working_day(day: dt.date, step: int) -> dt.date:
    day += dt.timedelta(days=step)
    while not is_working_day(day, "DE", {}):
        day += dt.timedelta(days=step)
    return day


async def test_only_a_claim_waiting_for_its_decision_shows_the_working_days_left() -> None:
    settings = ConsoleSettings(TCI_ENV="development", TCI_JWT_SECRET=DEVELOPMENT_JWT_SECRET)
    due = settings.today() - dt.timedelta(days=30)  # long past: every claim would be "late"
    page = await claims_page(due)
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


async def test_one_working_day_is_said_in_the_singular() -> None:
    """One working day is "1 working day" (and "1 working day late"), never "1 working days"."""
    on = ConsoleSettings(TCI_ENV="development", TCI_JWT_SECRET=DEVELOPMENT_JWT_SECRET).today()
    left = await claims_page(next_working_day(on, 1), ("under_review",))
    assert "1 working day<" in left.text and "working days" not in left.text
    late = await claims_page(next_working_day(on, -1), ("under_review",))
    assert "1 working day late" in late.text and "working days" not in late.text
