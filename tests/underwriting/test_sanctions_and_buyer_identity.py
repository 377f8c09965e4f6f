"""A country or a buyer is on the sanctions list once: listing it again is 409 `sanction-exists`
naming the listing in force, so that lifting that one listing lifts the sanction. A buyer is
known by its country and registration number as written without surrounding blanks: " R1" is
"R1", registered once and found by either; a blank registration number or name is refused. The
number is one identifier however written (case, blanks inside it, full-width forms): "ABC 123",
" abc123" and "ＡＢＣ１２３" are one buyer, found by any of them; punctuation is kept."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.exc import IntegrityError

from services.underwriting import rules
from services.underwriting.models import Buyer
from shared.db import UTCDateTime, build_engine, utcnow
from shared.migrations import upgrade
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


@pytest.mark.parametrize(
    ("written", "key"),
    [("ABC 123", "ABC123"), (" abc123 ", "ABC123"), ("a b\tc\u00a0123", "ABC123"),
     ("ＡＢＣ１２３", "ABC123"), ("ABC\u200b123", "ABC123"), ("HRB-12/3.a", "HRB-12/3.A"),
     ("straße 1", "STRASSE1")],
)  # fmt: skip
def test_a_registration_key_is_the_number_without_blanks_in_upper_case_punctuation_kept(
    written: str, key: str
) -> None:
    assert rules.registration_key(written) == key


async def test_a_registration_number_is_one_buyer_however_it_is_written(
    uw: httpx.AsyncClient,
) -> None:
    number = unique("abc").upper()
    buyer = await make_buyer(uw, country="AT", registration_number=f"{number[:3]} {number[3:]}")
    assert buyer["registration_number"] == f"{number[:3]} {number[3:]}"  # kept as written
    full_width = number.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    spellings = [number.lower() + " ", f" {number[:3]} {number[3:]}", number.replace("-", " - "),
                 f"{number[:3]}\u00a0{number[3:]}", full_width]  # fmt: skip
    for written in spellings:
        again = await uw.post("/v1/buyers", headers=UW, json={
            "name": "Twin", "country": "AT", "registration_number": written})  # fmt: skip
        assert again.status_code == 409, (written, again.text)
        assert again.json()["existing_buyer_id"] == buyer["id"]
        found = ok(await uw.get("/v1/buyers", headers=UW, params={
            "country": "AT", "registration_number": written}), 200)["items"]  # fmt: skip
        assert [b["id"] for b in found] == [buyer["id"]], written
    policyholder = auth("policyholder", unique("ph"))
    looked_up = ok(await uw.get("/v1/buyers", headers=policyholder, params={
        "country": "AT", "registration_number": number.lower()}), 200)["items"]  # fmt: skip
    assert [b["id"] for b in looked_up] == [buyer["id"]]
    punctuated = await make_buyer(uw, country="AT", registration_number=number.replace("-", "/"))
    assert punctuated["id"] != buyer["id"]  # "ABC/1" is not "ABC-1"


@pytest.mark.parametrize("invisible", ["\u200b", "\u00ad\u200d", "\u3000\u200b"])
async def test_a_registration_number_of_invisible_characters_only_is_refused(
    uw: httpx.AsyncClient, invisible: str
) -> None:
    body = {"name": "Ghost Co", "country": "DE", "registration_number": invisible}
    answer = await uw.post("/v1/buyers", headers=UW, json=body)
    assert answer.status_code == 422, answer.text
    assert [e["loc"] for e in answer.json()["errors"]] == [["body", "registration_number"]]


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


# ---------------------------------------------------------------- the migration to un0012


def _migrate(url: str, revision: str) -> None:
    """Alembic runs its own event loop: in a thread of its own."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(upgrade, "underwriting", url, revision).result()


async def test_the_migration_keys_each_buyer_and_leaves_a_double_keyless_without_failing(
    scratch_database: Any,
) -> None:
    url = scratch_database("underwriting")
    _migrate(url, "un0011")
    before = Table("buyers", MetaData(), *(Column(c, String) for c in (
        "id", "name", "country", "registration_number", "registration_key", "legal_form",
        "registered_by")),
        Column("created_at", UTCDateTime()), Column("graded_at", UTCDateTime()),
        Column("indicators", JSON),
        Column("grade", Integer), Column("grade_factors", JSON), schema="underwriting")  # fmt: skip
    now = utcnow()
    written = [("buy_1", "DE", "abc 123", now), ("buy_2", "DE", "Abc123", now),
               ("buy_3", "DE", "ABC123", now + dt.timedelta(days=1)), ("buy_4", "FR", "abc 123", now),
               ("buy_5", "DE", "xyz 9", now), ("buy_6", "DE", "ABC-123", now)]  # fmt: skip
    graded = {"legal_form": "company", "indicators": {}, "grade": 3, "grade_factors": [],
              "registered_by": "test", "graded_at": now}  # fmt: skip
    engine = build_engine(url)
    async with engine.begin() as connection:
        for buyer_id, country, number, created_at in written:
            await connection.execute(insert(before).values(
                id=buyer_id, created_at=created_at, name=buyer_id, country=country,
                registration_number=number, **graded))  # fmt: skip
    _migrate(url, "un0012")
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(Buyer.id, Buyer.registration_number, Buyer.registration_key).order_by(Buyer.id)
        )
        # "ABC123" is already written as its key: it holds it, though registered last; its two
        # doubles keep their numbers, without a key. Nothing else clashes.
        assert [tuple(r) for r in rows] == [
            ("buy_1", "abc 123", None), ("buy_2", "Abc123", None), ("buy_3", "ABC123", "ABC123"),
            ("buy_4", "abc 123", "ABC123"), ("buy_5", "xyz 9", "XYZ9"),
            ("buy_6", "ABC-123", "ABC-123"),
        ]  # fmt: skip
    with pytest.raises(IntegrityError):  # one buyer per country and key from now on
        async with engine.begin() as connection:
            await connection.execute(insert(before).values(
                id="buy_7", created_at=now, name="x", country="DE", registration_number="abc123",
                registration_key="ABC123", **graded))  # fmt: skip
    await engine.dispose()
