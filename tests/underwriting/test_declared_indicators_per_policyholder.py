"""Indicators a policyholder declares are its own (domain.md, Buyer: "kept as declared and move the
grade only once an underwriter confirms them"; api.md 2026-11-23: "A party's token sees only what is
its own"): kept per buyer and declaring policyholder with who declared them and when, read back by
their declarer only, never counted in another policyholder's portfolio health, and confirmed by an
underwriter one declarer at a time."""

from __future__ import annotations

from typing import Any

import httpx

from tests.builders import make_policy, money, ok, request_limit
from tests.conftest import auth, unique


async def _book(uw: httpx.AsyncClient, policy: dict[str, Any], buyer_id: str) -> None:
    """A receivable still owed on the buyer, so that portfolio health weighs it."""
    ok(await uw.post(f"/v1/policies/{policy['id']}/declarations",
                     headers=auth("policyholder", policy["policyholder_id"]), json={
        "invoices": [{"number": unique("I"), "buyer_id": buyer_id, "amount": money("10000"),
                      "shipment_date": "2026-03-01", "due_date": "2026-05-01"}]}), 201)  # fmt: skip


async def _two_declarers(uw: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any], str]:
    """ph-x registers a buyer; ph-y requests a limit on it; both owe receivables on it."""
    x, y = await make_policy(uw), await make_policy(uw)
    buyer = ok(await uw.post("/v1/buyers", headers=auth("policyholder", x["policyholder_id"]),
                             json={"name": "Shared Buyer", "country": "DE",
                                   "registration_number": unique("HRB")}), 201)  # fmt: skip
    await request_limit(uw, y, buyer["id"], "10000")
    await _book(uw, x, buyer["id"])
    await _book(uw, y, buyer["id"])
    return x, y, buyer["id"]


def _ratio_warnings(health: dict[str, Any]) -> list[str]:
    return [w["figure"] for w in health["warnings"] if w["code"] == "buyer_current_ratio_low"]


def _given(declaration: dict[str, Any]) -> dict[str, Any]:
    """The indicators a declaration gives (those it leaves unknown are null)."""
    return {k: v for k, v in declaration["indicators"].items() if v is not None}


async def _health(uw: httpx.AsyncClient, policy: dict[str, Any]) -> dict[str, Any]:
    holder = auth("policyholder", policy["policyholder_id"])
    return ok(await uw.get(f"/v1/policies/{policy['id']}/portfolio-health", headers=holder), 200)


async def test_one_policyholders_declaration_never_reaches_anothers_health_nor_replaces_it(
    uw: httpx.AsyncClient,
) -> None:
    x, y, buyer = await _two_declarers(uw)
    hx, hy = auth("policyholder", x["policyholder_id"]), auth("policyholder", y["policyholder_id"])
    ok(await uw.post(f"/v1/buyers/{buyer}/indicators", headers=hx, json={"current_ratio": "0.31"}),
       200)  # fmt: skip
    assert _ratio_warnings(await _health(uw, y)) == []  # ph-x's figure is not ph-y's
    assert _ratio_warnings(await _health(uw, x)) == ["0.31"]
    seen_by_y = ok(await uw.get(f"/v1/buyers/{buyer}", headers=hy), 200)
    assert seen_by_y["declared_indicators"] is None and seen_by_y["declarations"] == []
    assert seen_by_y["indicators_confirmed"] is True  # nothing of ph-y's is pending
    ok(await uw.post(f"/v1/buyers/{buyer}/indicators", headers=hy, json={"current_ratio": "3.0"}),
       200)  # fmt: skip
    assert _ratio_warnings(await _health(uw, x)) == ["0.31"]  # ph-y's figure hides nothing
    assert _ratio_warnings(await _health(uw, y)) == []
    # Each reads back its own declaration, with who declared it and when.
    mine = ok(await uw.get(f"/v1/buyers/{buyer}", headers=hx), 200)
    [own] = mine["declarations"]
    assert own["policyholder_id"] == x["policyholder_id"] and own["status"] == "pending"
    assert own["indicators"]["current_ratio"] == "0.31" and own["declared_at"]
    assert mine["declared_indicators"]["current_ratio"] == "0.31"
    assert mine["indicators_confirmed"] is False


async def test_the_underwriter_sees_each_declaration_with_its_declarer_and_confirms_one_by_name(
    uw: httpx.AsyncClient,
) -> None:
    x, y, buyer = await _two_declarers(uw)
    hx, hy = auth("policyholder", x["policyholder_id"]), auth("policyholder", y["policyholder_id"])
    underwriter = auth("underwriter")
    ok(await uw.post(f"/v1/buyers/{buyer}/indicators", headers=hx, json={"current_ratio": "0.31"}),
       200)  # fmt: skip
    ok(await uw.post(f"/v1/buyers/{buyer}/indicators", headers=hy, json={"current_ratio": "3.0"}),
       200)  # fmt: skip
    staff = ok(await uw.get(f"/v1/buyers/{buyer}", headers=underwriter), 200)
    assert {(d["policyholder_id"], d["indicators"]["current_ratio"])
            for d in staff["declarations"]} == {(x["policyholder_id"], "0.31"),
                                                (y["policyholder_id"], "3")}  # fmt: skip
    assert staff["indicators_confirmed"] is False and staff["declared_indicators"] is None
    confirm = f"/v1/buyers/{buyer}/indicators/confirmation"
    unnamed = await uw.post(confirm, headers=underwriter)
    assert unnamed.status_code == 409, unnamed.text
    assert unnamed.json()["type"].endswith("declarer-required")
    assert set(unnamed.json()["pending_declarers"]) == {x["policyholder_id"], y["policyholder_id"]}
    nobody = await uw.post(confirm, headers=underwriter, json={"policyholder_id": "ph-nobody"})
    assert nobody.status_code == 409 and nobody.json()["type"].endswith("no-pending-declaration")
    confirmed = ok(await uw.post(confirm, headers=underwriter,
                                 json={"policyholder_id": x["policyholder_id"]}), 200)  # fmt: skip
    assert confirmed["indicators"]["current_ratio"] == "0.31"
    assert [d["policyholder_id"] for d in confirmed["declarations"]] == [y["policyholder_id"]]
    # ph-x's declaration is kept as confirmed, by whom it was declared; ph-y's still pending.
    [own] = ok(await uw.get(f"/v1/buyers/{buyer}", headers=hx), 200)["declarations"]
    assert own["status"] == "confirmed" and own["decided_at"] and own["decided_by"] is None
    # The insurer's confirmed figure now counts for every policy on the buyer.
    assert _ratio_warnings(await _health(uw, y)) == ["0.31"]
    # With one pending, the route needs no name (its contract for the ordinary case).
    ok(await uw.post(confirm, headers=underwriter), 200)
    after = ok(await uw.get(f"/v1/buyers/{buyer}", headers=underwriter), 200)
    assert after["indicators"]["current_ratio"] == "3" and after["indicators_confirmed"] is True


async def test_a_declaration_is_superseded_only_by_the_underwriters_figures_for_all_it_declares(
    uw: httpx.AsyncClient,
) -> None:
    """ph-x declared a current ratio of 0.31; the underwriter enters figures of their own. Equity
    alone decides nothing ph-x declared: its declaration stays pending (kept as declared, and the
    answer lists it). A current ratio then decides all it declared: it is superseded, and its
    portfolio health warns on it no more."""
    x, _, buyer = await _two_declarers(uw)
    hx, underwriter = auth("policyholder", x["policyholder_id"]), auth("underwriter")
    ok(await uw.post(f"/v1/buyers/{buyer}/indicators", headers=hx, json={"current_ratio": "0.31"}),
       200)  # fmt: skip
    assert _ratio_warnings(await _health(uw, x)) == ["0.31"]
    entered = ok(await uw.post(f"/v1/buyers/{buyer}/indicators", headers=underwriter,
                               json={"equity": money("500000")}), 200)  # fmt: skip
    assert [d["policyholder_id"] for d in entered["declarations"]] == [x["policyholder_id"]]
    assert entered["indicators_confirmed"] is False
    [own] = ok(await uw.get(f"/v1/buyers/{buyer}", headers=hx), 200)["declarations"]
    assert own["status"] == "pending" and _given(own) == {"current_ratio": "0.31"}
    assert _ratio_warnings(await _health(uw, x)) == ["0.31"]
    covered = ok(await uw.post(f"/v1/buyers/{buyer}/indicators", headers=underwriter,
                               json={"current_ratio": "1.5"}), 200)  # fmt: skip
    assert covered["declarations"] == [] and covered["indicators_confirmed"] is True
    [own] = ok(await uw.get(f"/v1/buyers/{buyer}", headers=hx), 200)["declarations"]
    assert own["status"] == "superseded" and own["decided_at"]
    assert _ratio_warnings(await _health(uw, x)) == []


async def test_the_underwriters_figures_supersede_one_declarer_and_leave_anothers_pending(
    uw: httpx.AsyncClient,
) -> None:
    """ph-x declared a current ratio and a DSO, ph-y equity only; the underwriter's current ratio
    decides one of ph-x's figures: ph-x's declaration is superseded (confirmed later, it would put
    the older 0.31 back over 1.5), ph-y's stays pending whole and can still be confirmed, the
    underwriter's figure standing."""
    x, y, buyer = await _two_declarers(uw)
    hx, hy = auth("policyholder", x["policyholder_id"]), auth("policyholder", y["policyholder_id"])
    underwriter = auth("underwriter")
    ok(await uw.post(f"/v1/buyers/{buyer}/indicators", headers=hx,
                     json={"current_ratio": "0.31", "dso_days": "100"}), 200)  # fmt: skip
    ok(await uw.post(f"/v1/buyers/{buyer}/indicators", headers=hy,
                     json={"equity": money("-1000")}), 200)  # fmt: skip
    entered = ok(await uw.post(f"/v1/buyers/{buyer}/indicators", headers=underwriter,
                               json={"current_ratio": "1.5"}), 200)  # fmt: skip
    [left] = entered["declarations"]
    assert left["policyholder_id"] == y["policyholder_id"] and left["status"] == "pending"
    assert _given(left) == {"equity": money("-1000.00")}
    [of_x] = ok(await uw.get(f"/v1/buyers/{buyer}", headers=hx), 200)["declarations"]
    assert of_x["status"] == "superseded"
    [of_y] = ok(await uw.get(f"/v1/buyers/{buyer}", headers=hy), 200)["declarations"]
    assert of_y["status"] == "pending"
    confirmed = ok(await uw.post(f"/v1/buyers/{buyer}/indicators/confirmation",
                                 headers=underwriter), 200)  # fmt: skip
    assert confirmed["indicators"]["equity"] == money("-1000.00")
    assert confirmed["indicators"]["current_ratio"] == "1.5"  # the underwriter's stands
    assert confirmed["indicators_confirmed"] is True


async def test_the_underwriters_figures_the_buyer_has_already_add_no_grade_entry(
    uw: httpx.AsyncClient,
) -> None:
    _, _, buyer = await _two_declarers(uw)
    underwriter = auth("underwriter")
    ok(await uw.post(f"/v1/buyers/{buyer}/indicators", headers=underwriter,
                     json={"current_ratio": "2.5"}), 200)  # fmt: skip
    before = ok(await uw.get(f"/v1/buyers/{buyer}/grades", headers=underwriter), 200)["items"]
    ok(await uw.post(f"/v1/buyers/{buyer}/indicators", headers=underwriter,
                     json={"current_ratio": "2.5"}), 200)  # fmt: skip
    after = ok(await uw.get(f"/v1/buyers/{buyer}/grades", headers=underwriter), 200)["items"]
    assert [e["id"] for e in after] == [e["id"] for e in before]


async def test_a_confirmation_with_nothing_pending_adds_no_grade_entry(
    uw: httpx.AsyncClient,
) -> None:
    """Nothing pending and none named: the answer is the buyer as it is, and its grade history
    takes no entry, however often it is sent."""
    _, _, buyer = await _two_declarers(uw)
    underwriter = auth("underwriter")
    before = ok(await uw.get(f"/v1/buyers/{buyer}/grades", headers=underwriter), 200)["items"]
    for _ in range(2):
        answer = ok(await uw.post(f"/v1/buyers/{buyer}/indicators/confirmation",
                                  headers=underwriter), 200)  # fmt: skip
        assert answer["limit_changes"] == [] and answer["indicators_confirmed"] is True
    after = ok(await uw.get(f"/v1/buyers/{buyer}/grades", headers=underwriter), 200)["items"]
    assert [e["id"] for e in after] == [e["id"] for e in before]


async def test_a_declaration_of_nothing_is_refused(uw: httpx.AsyncClient) -> None:
    """`{}` (or only nulls) declares nothing: 422, and nothing is left pending for an underwriter
    to confirm."""
    x, _, buyer = await _two_declarers(uw)
    for who in (auth("policyholder", x["policyholder_id"]), auth("underwriter")):
        for body in ({}, {"current_ratio": None}):
            refused = await uw.post(f"/v1/buyers/{buyer}/indicators", headers=who, json=body)
            assert refused.status_code == 422, refused.text
            assert refused.json()["errors"][0]["loc"] == ["body"]
    staff = ok(await uw.get(f"/v1/buyers/{buyer}", headers=auth("underwriter")), 200)
    assert staff["declarations"] == [] and staff["indicators_confirmed"] is True
