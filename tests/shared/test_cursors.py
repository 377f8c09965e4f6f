"""A list's cursor is opaque (api.md): issued for one list of one service and signed, so a cursor
of another list (of this service or another), an altered one and a hand-made one are a 422; a
real one walks the whole list, no item lost or repeated."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.builders import make_buyer, make_policy, request_limit
from tests.conftest import auth, unique

UW = auth("underwriter")


def refused(answer: httpx.Response) -> None:
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["type"].endswith("validation") or "validation" in body["type"], body
    assert [e["loc"] for e in body["errors"]] == [["query", "cursor"]], body


async def buyers_cursor(uw: httpx.AsyncClient) -> tuple[list[str], str]:
    """Three new buyers in IS (a country no other test lists); the ids of IS's buyers and the cursor after the first."""
    for n in range(3):
        body = {"country": "IS", "name": f"Cursor {n}", "registration_number": unique("cur")}
        assert (await uw.post("/v1/buyers", json=body, headers=UW)).status_code == 201
    everything = await uw.get("/v1/buyers", params={"country": "IS", "limit": 500}, headers=UW)
    first = await uw.get("/v1/buyers", params={"country": "IS", "limit": 1}, headers=UW)
    cursor = first.json()["next_cursor"]
    assert cursor and len(cursor) < 120 and all(c.isalnum() or c in "-_." for c in cursor)
    return [b["id"] for b in everything.json()["items"]], cursor


async def test_a_real_cursor_walks_the_whole_list_once(uw: httpx.AsyncClient) -> None:
    ids, _ = await buyers_cursor(uw)
    walked: list[str] = []
    params: dict[str, Any] = {"country": "IS", "limit": 2}
    while True:
        page = (await uw.get("/v1/buyers", params=params, headers=UW)).json()
        walked += [b["id"] for b in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert walked == ids and len(set(walked)) == len(walked)


async def test_a_cursor_of_another_list_is_refused_in_every_service(api: Any) -> None:
    uw = await api.open("underwriting")
    _, cursor = await buyers_cursor(uw)
    assert (await uw.get("/v1/buyers", params={"country": "IS", "cursor": cursor},
                         headers=UW)).status_code == 200  # fmt: skip
    refused(await uw.get("/v1/policies", params={"cursor": cursor}, headers=UW))
    claims = await api.open("claims")
    refused(await claims.get("/v1/claims", params={"cursor": cursor},
                             headers=auth("claims_handler")))  # fmt: skip
    collections = await api.open("collections")
    refused(await collections.get("/v1/cases", params={"cursor": cursor},
                                  headers=auth("collector")))  # fmt: skip


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


async def test_an_altered_cursor_is_refused(uw: httpx.AsyncClient) -> None:
    _, cursor = await buyers_cursor(uw)
    position, _, mac = cursor.rpartition(".")
    for altered in (_flip(cursor, 3), _flip(cursor, len(cursor) - 2), position, f"{position}.",
                    f"{position}.{mac}{mac}", cursor + "x"):  # fmt: skip
        refused(await uw.get("/v1/buyers", params={"country": "IS", "cursor": altered},
                             headers=UW))  # fmt: skip


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"])
async def test_a_hand_made_cursor_is_refused(uw: httpx.AsyncClient, moment: str) -> None:
    raw = base64.urlsafe_b64encode(json.dumps([moment, "x"]).encode()).decode().rstrip("=")
    for made in (raw, f"{raw}.AAAAAAAAAAAAAAAA"):
        refused(await uw.get("/v1/buyers", params={"country": "IS", "cursor": made}, headers=UW))


async def test_the_exposure_lists_cursor_naming_a_buyer_is_refused_by_another_list(
    uw: httpx.AsyncClient,
) -> None:
    """The exposure list pages by buyer id: its cursor, naming the last buyer shown, is signed
    for it as any list's is; another list's cursor is refused by it, and a hand-made one."""
    policy = await make_policy(uw)
    for _ in range(2):
        await request_limit(uw, policy, (await make_buyer(uw))["id"], "10000")
    path = f"/v1/policies/{policy['id']}/exposure"
    first = (await uw.get(path, params={"limit": 1}, headers=UW)).json()
    cursor = first["next_cursor"]
    assert cursor and len(cursor) < 120
    rest = (await uw.get(path, params={"limit": 1, "cursor": cursor}, headers=UW)).json()
    assert len(rest["items"]) == 1 and rest["items"] != first["items"]
    refused(await uw.get("/v1/buyers", params={"cursor": cursor}, headers=UW))
    _, buyers = await buyers_cursor(uw)
    refused(await uw.get(path, params={"cursor": buyers}, headers=UW))
    made = base64.urlsafe_b64encode(json.dumps([first["items"][0]["buyer_id"]]).encode())
    refused(await uw.get(path, params={"cursor": made.decode().rstrip("=")}, headers=UW))
    # Nor another policy's exposure: from its place, it would skip that list's first buyers.
    other = await make_policy(uw)
    await request_limit(uw, other, (await make_buyer(uw))["id"], "10000")
    refused(await uw.get(f"/v1/policies/{other['id']}/exposure", params={"cursor": cursor},
                         headers=UW))  # fmt: skip
