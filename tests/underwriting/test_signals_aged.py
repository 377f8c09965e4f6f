"""A signal weighs on a buyer's grade through its day + the memory (365 days), the last day
included; the day after, the grade no longer counts it, even when nothing else happens to the
buyer: the service grades again the buyers whose grade still counts a forgotten signal (the time
trial: a court judgment kept a grade 3 long after a year)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from services.underwriting import limits as lim
from services.underwriting.main import MEMORY
from services.underwriting.service import Context
from shared.db import get_session
from tests.builders import make_buyer, ok
from tests.conftest import auth

UW = auth("underwriter")
OBSERVED = dt.date(2027, 6, 1)


@pytest.fixture
def uw_today(uw: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> Any:
    settings = uw._transport.app.state.settings  # type: ignore[attr-defined]
    monkeypatch.setattr(settings, "fixed_today", dt.date(2027, 6, 10))
    return settings


async def sweep(uw: httpx.AsyncClient, settings: Any, today: dt.date) -> int:
    settings.fixed_today = today
    app = uw._transport.app  # type: ignore[attr-defined]
    async for session in app.dependency_overrides[get_session]():
        ctx = Context(session=session, caller=MEMORY, today=today, settings=settings)
        graded = await lim.regrade_aged(ctx)
        await session.commit()
        return graded
    raise AssertionError("no session")


async def test_a_grade_no_longer_counts_a_signal_the_day_after_its_memory_ends(
    uw: httpx.AsyncClient, uw_today: Any
) -> None:
    buyer = await make_buyer(uw)
    judged = ok(await uw.post(f"/v1/buyers/{buyer['id']}/signals", headers=UW, json={
        "kind": "court_judgment", "observed_on": OBSERVED.isoformat(),
        "details": "judgment"}), 201)  # fmt: skip
    assert judged["grade"] == buyer["grade"] + 1
    memory = uw_today.signal_memory_days
    last_day = OBSERVED + dt.timedelta(days=memory)
    # The sweep grades every buyer of the book due (other tests' too): this one's grade tells.
    await sweep(uw, uw_today, last_day)  # still weighs on its last day
    read = ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200)
    assert read["grade"] == buyer["grade"] + 1
    assert await sweep(uw, uw_today, last_day + dt.timedelta(days=1)) >= 1
    assert await sweep(uw, uw_today, last_day + dt.timedelta(days=1)) == 0  # nothing left to do
    read = ok(await uw.get(f"/v1/buyers/{buyer['id']}", headers=UW), 200)
    assert read["grade"] == buyer["grade"]
    history = ok(await uw.get(f"/v1/buyers/{buyer['id']}/grades", headers=UW), 200)["items"]
    assert (history[0]["grade"], history[0]["graded_on"]) == (
        buyer["grade"],
        (last_day + dt.timedelta(days=1)).isoformat(),
    )
    # Graded since: left alone on the next turns.
    await sweep(uw, uw_today, last_day + dt.timedelta(days=2))
    again = ok(await uw.get(f"/v1/buyers/{buyer['id']}/grades", headers=UW), 200)["items"]
    assert again == history
