"""A country or a buyer is on the sanctions list once: listing it again is 409 `sanction-exists`
naming the listing in force, so that lifting that one listing lifts the sanction. A buyer is
known by its country and registration number as written without surrounding blanks: " R1" is
"R1", registered once and found by either; a blank registration number or name is refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.builders import check, make_buyer, make_policy, ok, request_limit
from tests.conftest import auth, unique

UW = auth("underwriter")


async def sanctioned_targets(uw: httpx.AsyncClient) -> list[tuple[str | None, str | None]]:
    listed = ok(await uw.get("/v1/sanctions", headers=UW, params={"limit": 500}), 200)["items"]
    return [(s["country"], s["buyer_id"]) for s in listed]


@pytest.mark.parametrize("target", ["buyer", "country"])
async def test_listing_again_what_is_listed_is_409_naming_the_listing_and_one_lift_lifts_it(
    uw: httpx.AsyncClient, target: str
) -> None:
    buyer = await make_buyer(uw, country="KI")  # a country no other test sanctions
    body: dict[str, Any] = {"buyer_id": buyer["id"]} if target == "buyer" else {"country": "KI"}
    first = ok(await uw.post("/v1/sanctions", headers=UW, json={**body, "reason": "listed"}), 201)
    again = await uw.post("/v1/sanctions", headers=UW, json={**body, "reason": "listed again"})
    assert again.status_code == 409, again.text
    assert again.json()["type"] == "sanction-exists"
    assert again.json()["existing_sanction_id"] == first["id"]
    key = (None, buyer["id"]) if target == "buyer" else ("KI", None)
    assert (await sanctioned_targets(uw)).count(key) == 1
    ok(await uw.delete(f"/v1/sanctions/{first['id']}", headers=UW), 200)
    assert key not in await sanctioned_targets(uw)
    policy = await make_policy(uw)
    await request_limit(uw, policy, buyer["id"], "10000")
    answer = ok(await check(uw, policy, buyer["id"], "1000", "2027-01-10", "2027-03-10"), 200)
    assert "sanctioned" not in answer["reasons"] and answer["covered"]


async def test_a_buyer_and_its_country_are_two_listings(uw: httpx.AsyncClient) -> None:
    buyer = await make_buyer(uw, country="TV")  # a country no other test sanctions
    ok(await uw.post("/v1/sanctions", headers=UW, json={"buyer_id": buyer["id"], "reason": "a"}),
       201)  # fmt: skip
    country = ok(await uw.post("/v1/sanctions", headers=UW,
                               json={"country": "TV", "reason": "b"}), 201)  # fmt: skip
    ok(await uw.delete(f"/v1/sanctions/{country['id']}", headers=UW), 200)
    assert (None, buyer["id"]) in await sanctioned_targets(uw)  # still listed by name


async def test_a_registration_number_is_known_without_its_surrounding_blanks(
    uw: httpx.AsyncClient,
) -> None:
    number = unique("R")
    buyer = await make_buyer(uw, registration_number=f"  {number}\t")
    assert buyer["registration_number"] == number
    again = await uw.post("/v1/buyers", headers=UW, json={
        "name": "Same", "country": "DE", "registration_number": f" {number}"})  # fmt: skip
    assert again.status_code == 409, again.text
    assert again.json()["existing_buyer_id"] == buyer["id"]
    for written in (number, f" {number}", f"{number} "):
        found = ok(await uw.get("/v1/buyers", headers=UW, params={
            "country": "DE", "registration_number": written}), 200)["items"]  # fmt: skip
        assert [b["id"] for b in found] == [buyer["id"]], written


@pytest.mark.parametrize("field", ["registration_number", "name"])
@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
async def test_a_blank_registration_number_or_name_is_refused_naming_it(
    uw: httpx.AsyncClient, field: str, blank: str
) -> None:
    body = {"name": "Blank Co", "country": "DE", "registration_number": unique("R"), field: blank}
    answer = await uw.post("/v1/buyers", headers=UW, json=body)
    assert answer.status_code == 422, answer.text
    assert [e["loc"] for e in answer.json()["errors"]] == [["body", field]]


async def test_a_name_keeps_its_inner_spacing(uw: httpx.AsyncClient) -> None:
    buyer = await make_buyer(uw, name="Müller  &  Söhne GmbH")
    assert buyer["name"] == "Müller  &  Söhne GmbH"
