"""Who may read and change which buyers (api.md, Added on 2026-11-23, "Who may read"): staff every
buyer with the factors behind its grade; a policyholder the buyers it registered or holds a limit
or a limit request on, any buyer by its exact country and registration number, a grade and never
factors; indicators declared only on its own buyers; a bank is not a reader of buyers."""

from __future__ import annotations

from typing import Any

import httpx

from tests.builders import make_buyer, make_policy, money, ok, request_limit
from tests.conftest import auth, unique

WEAK = {"current_ratio": "0.4", "overdue_ratio": "0.3", "litigation_count": 4,
        "dso_days": "120", "dso_prior_year_days": "60"}  # fmt: skip


async def _world(uw: httpx.AsyncClient) -> dict[str, Any]:
    """Policyholder A registered one buyer, asked for a limit on a second and holds a limit
    recorded by an underwriter on a third; a fourth is nobody's; B registered a fifth."""
    a, b = unique("ph-a"), unique("ph-b")
    policy = await make_policy(uw, a)
    registered = ok(
        await uw.post(
            "/v1/buyers",
            headers=auth("policyholder", a),
            json={"name": "Registered by A", "country": "DE", "registration_number": unique("HRB")},
        ),
        201,
    )
    requested = await make_buyer(uw, name="Requested by A")
    await request_limit(uw, policy, requested["id"], "10000")
    recorded = await make_buyer(uw, name="Limit recorded for A")
    ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=auth("underwriter"), json={
        "buyer_id": recorded["id"], "amount": money("20000"), "effective_from": "2026-02-01",
        "reason": "migrated book"}), 201)  # fmt: skip
    nobodys = await make_buyer(uw, name="Nobody's", country="FR")
    of_b = ok(
        await uw.post(
            "/v1/buyers",
            headers=auth("policyholder", b),
            json={"name": "Registered by B", "country": "IT", "registration_number": unique("REA")},
        ),
        201,
    )
    return {"a": a, "b": b, "policy": policy, "registered": registered, "requested": requested,
            "recorded": recorded, "nobodys": nobodys, "of_b": of_b}  # fmt: skip


async def _all_pages(
    uw: httpx.AsyncClient, headers: dict[str, str], query: str = "", *, limit: int = 1
) -> list[Any]:
    """Every page of the caller's buyers (staff see every buyer the session's tests made: they
    read larger pages, or the rate limit would answer 429 before the last)."""
    items: list[Any] = []
    url = f"/v1/buyers?limit={limit}{query}"
    while True:
        page = ok(await uw.get(url, headers=headers), 200)
        items.extend(page["items"])
        if page["next_cursor"] is None:
            return items
        url = f"/v1/buyers?limit={limit}{query}&cursor={page['next_cursor']}"


async def test_a_policyholder_lists_only_the_buyers_it_registered_or_holds_a_limit_or_request_on(
    uw: httpx.AsyncClient,
) -> None:
    w = await _world(uw)
    listed = await _all_pages(uw, auth("policyholder", w["a"]))
    own = {w["registered"]["id"], w["requested"]["id"], w["recorded"]["id"]}
    assert {b["id"] for b in listed} == own  # page by page: 3 of the 5 buyers
    for buyer in listed:
        assert 1 <= buyer["grade"] <= 10
        assert buyer["grade_factors"] is None and buyer["indicators"] is None
    assert [b["id"] for b in await _all_pages(uw, auth("policyholder", w["b"]))] == [
        w["of_b"]["id"]
    ]
    # A filter by country alone does not widen it.
    only_fr = await _all_pages(uw, auth("policyholder", w["a"]), "&country=FR")
    assert only_fr == []


async def test_a_policyholder_may_look_any_buyer_up_by_exact_country_and_registration_number(
    uw: httpx.AsyncClient,
) -> None:
    w = await _world(uw)
    nobodys = w["nobodys"]
    holder = auth("policyholder", w["a"])
    found = ok(
        await uw.get(
            "/v1/buyers",
            headers=holder,
            params={"country": "FR", "registration_number": nobodys["registration_number"]},
        ),
        200,
    )["items"]
    assert [b["id"] for b in found] == [nobodys["id"]]
    assert found[0]["grade"] == nobodys["grade"] and found[0]["grade_factors"] is None
    alone = ok(
        await uw.get(
            "/v1/buyers",
            headers=holder,
            params={"registration_number": nobodys["registration_number"]},
        ),
        200,
    )["items"]
    assert alone == []  # both are needed
    wrong_country = ok(
        await uw.get(
            "/v1/buyers",
            headers=holder,
            params={"country": "DE", "registration_number": nobodys["registration_number"]},
        ),
        200,
    )["items"]
    assert wrong_country == []


async def test_staff_list_every_buyer_with_its_factors_and_a_bank_is_not_a_reader_of_buyers(
    uw: httpx.AsyncClient,
) -> None:
    w = await _world(uw)
    every = {w[k]["id"] for k in ("registered", "requested", "recorded", "nobodys", "of_b")}
    for role in ("underwriter", "claims_handler", "collector", "service"):
        listed = await _all_pages(uw, auth(role), limit=100)
        assert {b["id"] for b in listed} >= every, role
        assert all(b["grade_factors"] for b in listed), role
        one = ok(await uw.get(f"/v1/buyers/{w['nobodys']['id']}", headers=auth(role)), 200)
        assert one["grade_factors"], role
    bank = auth("bank", unique("bank"))
    assert (await uw.get("/v1/buyers", headers=bank)).status_code == 403
    assert (await uw.get(f"/v1/buyers/{w['nobodys']['id']}", headers=bank)).status_code == 403


async def test_another_partys_buyer_read_by_id_is_a_404_like_a_buyer_that_does_not_exist(
    uw: httpx.AsyncClient,
) -> None:
    w = await _world(uw)
    holder = auth("policyholder", w["a"])
    for key in ("registered", "requested", "recorded"):
        mine = ok(await uw.get(f"/v1/buyers/{w[key]['id']}", headers=holder), 200)
        assert mine["grade_factors"] is None
    theirs = w["nobodys"]["id"]
    missing = "buy_" + "0" * (len(theirs) - 4)
    refused = await uw.get(f"/v1/buyers/{theirs}", headers=holder)
    absent = await uw.get(f"/v1/buyers/{missing}", headers=holder)
    assert refused.status_code == absent.status_code == 404
    assert refused.content.replace(theirs.encode(), missing.encode()) == absent.content


async def test_a_policyholder_declares_indicators_only_on_its_own_buyers_so_no_confirmation_moves_others(
    uw: httpx.AsyncClient,
) -> None:
    w = await _world(uw)
    holder, underwriter = auth("policyholder", w["a"]), auth("underwriter")
    theirs = w["of_b"]["id"]
    before = ok(await uw.get(f"/v1/buyers/{theirs}", headers=underwriter), 200)
    refused = await uw.post(f"/v1/buyers/{theirs}/indicators", headers=holder, json=WEAK)
    assert refused.status_code == 404, refused.text
    after = ok(await uw.get(f"/v1/buyers/{theirs}", headers=underwriter), 200)
    assert after["declared_indicators"] is None and after["indicators_confirmed"] is True
    confirmed = ok(await uw.post(f"/v1/buyers/{theirs}/indicators/confirmation",
                                 headers=underwriter), 200)  # fmt: skip
    assert confirmed["grade"] == before["grade"]
    assert confirmed["grade_factors"] == before["grade_factors"]
    # On its own buyer the declaration is kept, and the confirmation moves the grade.
    own = w["requested"]["id"]
    declared = ok(await uw.post(f"/v1/buyers/{own}/indicators", headers=holder, json=WEAK), 200)
    assert declared["indicators_confirmed"] is False
    moved = ok(await uw.post(f"/v1/buyers/{own}/indicators/confirmation",
                             headers=underwriter), 200)  # fmt: skip
    assert moved["grade"] > w["requested"]["grade"]


async def test_a_buyer_registered_with_a_staff_token_carrying_a_party_id_is_not_that_partys(
    uw: httpx.AsyncClient,
) -> None:
    party = unique("ph-c")
    staff_made = ok(await uw.post("/v1/buyers", headers=auth("underwriter", party), json={
        "name": "Registered by staff", "country": "DE",
        "registration_number": unique("HRB")}), 201)  # fmt: skip
    holder = auth("policyholder", party)
    assert staff_made["id"] not in {b["id"] for b in await _all_pages(uw, holder, limit=100)}
    assert (await uw.get(f"/v1/buyers/{staff_made['id']}", headers=holder)).status_code == 404


async def test_a_list_read_by_ids_answers_those_of_them_the_caller_may_see_in_one_request(
    uw: httpx.AsyncClient,
) -> None:
    w = await _world(uw)
    wanted = [w["registered"]["id"], w["nobodys"]["id"], w["of_b"]["id"], "buy_none"]
    staff = ok(await uw.get("/v1/buyers", headers=auth("underwriter"),
                            params={"id": wanted, "limit": 500}), 200)  # fmt: skip
    assert {b["id"] for b in staff["items"]} == set(wanted[:3])
    assert staff["next_cursor"] is None
    # A policyholder's list stays its own: the ids only narrow it.
    holder = ok(await uw.get("/v1/buyers", headers=auth("policyholder", w["a"]),
                             params={"id": wanted}), 200)  # fmt: skip
    assert [b["id"] for b in holder["items"]] == [w["registered"]["id"]]
    policies = ok(await uw.get("/v1/policies", headers=auth("underwriter"),
                               params={"id": [w["policy"]["id"], "pol_none"]}), 200)  # fmt: skip
    assert [p["id"] for p in policies["items"]] == [w["policy"]["id"]]
    too_many = await uw.get("/v1/buyers", headers=auth("underwriter"),
                            params={"id": [f"buy_{n}" for n in range(101)]})  # fmt: skip
    assert too_many.status_code == 422
