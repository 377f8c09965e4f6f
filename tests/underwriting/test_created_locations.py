"""Every 201 names the new resource in `Location` (api.md, Conventions), and that address answers
a GET: a bank's assignment to a policy, a signal recorded on a buyer, a sanction. Each is read by
whoever may read what it belongs to, and is a stranger's 404 to anyone else."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.builders import make_buyer, make_policy, money, ok, unique
from tests.conftest import auth

TODAY = "2027-06-10"
UW = auth("underwriter")


@pytest.fixture
async def uw(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    client: httpx.AsyncClient = await api.open("underwriting")
    return client


async def created(uw: httpx.AsyncClient, path: str, body: dict[str, Any]
                  ) -> tuple[dict[str, Any], str]:  # fmt: skip
    response = await uw.post(path, headers=UW, json=body)
    answer = ok(response, 201)
    return answer, response.headers["location"]


async def test_an_assignment_is_read_at_its_location_by_staff_its_policyholder_and_its_bank(
    uw: httpx.AsyncClient,
) -> None:
    holder, bank = unique("ph"), unique("bank")
    policy = await make_policy(uw, holder)
    assignment, location = await created(uw, f"/v1/policies/{policy['id']}/assignments",
                                         {"bank_id": bank})  # fmt: skip
    assert location == f"/v1/policies/{policy['id']}/assignments/{assignment['id']}"
    for reader in (UW, auth("claims_handler"), auth("policyholder", holder), auth("bank", bank)):
        assert ok(await uw.get(location, headers=reader), 200) == assignment

    other_bank = unique("bank")
    _, other = await created(uw, f"/v1/policies/{policy['id']}/assignments",
                             {"bank_id": other_bank})  # fmt: skip
    missing = f"/v1/policies/{policy['id']}/assignments/asg_missing"
    for stranger, path in ((auth("policyholder", unique("ph")), location),
                           (auth("bank", unique("bank")), location),
                           (auth("bank", bank), other),  # another bank's assignment
                           (UW, missing),
                           (UW, f"/v1/policies/{(await make_policy(uw))['id']}/assignments/"
                                f"{assignment['id']}")):  # fmt: skip
        answer = await uw.get(path, headers=stranger)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")


async def test_a_signal_is_read_at_its_location_as_its_buyers_signals_list_shows_it(
    uw: httpx.AsyncClient,
) -> None:
    holder = unique("ph")
    policy = await make_policy(uw, holder)
    buyer = await make_buyer(uw, country="LU")
    body = {"kind": "overdue_notified", "observed_on": TODAY, "details": "seen",
            "policy_id": policy["id"]}  # fmt: skip
    signal, location = await created(uw, f"/v1/buyers/{buyer['id']}/signals", body)
    assert location == f"/v1/buyers/{buyer['id']}/signals/{signal['id']}"

    listed = ok(await uw.get(f"/v1/buyers/{buyer['id']}/signals", headers=UW), 200)["items"]
    assert ok(await uw.get(location, headers=UW), 200) == listed[0]
    mine = auth("policyholder", holder)
    ok(await uw.post(f"/v1/policies/{policy['id']}/limit-requests", headers=mine,
                     json={"buyer_id": buyer["id"], "amount": {"amount": "1000", "currency": "EUR"},
                           "payment_terms_days": 60}), 201)  # fmt: skip
    as_holder = ok(await uw.get(location, headers=mine), 200)
    assert as_holder["id"] == signal["id"]
    assert as_holder == ok(await uw.get(f"/v1/buyers/{buyer['id']}/signals", headers=mine),
                           200)["items"][0]  # fmt: skip

    # A signal recorded under no policy of this policyholder is not shown to it, as in the list.
    judged, judged_at = await created(uw, f"/v1/buyers/{buyer['id']}/signals",
                                      {"kind": "court_judgment", "observed_on": TODAY,
                                       "details": "judgment"})  # fmt: skip
    for reader, path in (
        (mine, judged_at),
        (auth("policyholder", unique("ph")), location),
        (UW, f"/v1/buyers/{buyer['id']}/signals/sig_missing"),
        (UW, f"/v1/buyers/{(await make_buyer(uw))['id']}/signals/{judged['id']}"),
    ):
        answer = await uw.get(path, headers=reader)
        assert answer.status_code == 404, (path, answer.text)


async def test_a_sanction_is_read_at_its_location_by_staff(uw: httpx.AsyncClient) -> None:
    buyer = await make_buyer(uw)
    sanction, location = await created(uw, "/v1/sanctions",
                                       {"buyer_id": buyer["id"], "reason": "listed"})  # fmt: skip
    assert location == f"/v1/sanctions/{sanction['id']}"
    read = ok(await uw.get(location, headers=auth("collector")), 200)
    assert read["id"] == sanction["id"] and read["buyer_id"] == buyer["id"]
    listed = ok(await uw.get("/v1/sanctions", headers=UW, params={"limit": 500}), 200)["items"]
    assert [read] == [s for s in listed if s["id"] == sanction["id"]]
    assert (await uw.get(location, headers=auth("policyholder", unique("ph")))).status_code == 403
    assert (await uw.get("/v1/sanctions/snc_missing", headers=UW)).status_code == 404


async def test_a_limit_change_carries_the_id_and_time_of_the_history_entry_it_put_in_force(
    uw: httpx.AsyncClient,
) -> None:
    # api.md: every object carries its id and created_at; a change's are its history entry's.
    policy = await make_policy(uw)
    granted = ok(await uw.post(
        f"/v1/policies/{policy['id']}/limit-requests",
        headers=auth("policyholder", policy["policyholder_id"]),
        json={"buyer_id": (await make_buyer(uw))["id"], "amount": money("10000"),
              "payment_terms_days": 90}), 201)  # fmt: skip
    limit_id = granted["limit_id"]
    change, _ = await created(uw, f"/v1/limits/{limit_id}/changes",
                              {"new_amount": money("20000"), "reason": "more trade"})  # fmt: skip
    again, _ = await created(uw, f"/v1/limits/{limit_id}/changes",
                             {"new_amount": money("20000"), "reason": "more trade"})  # fmt: skip
    limit = ok(await uw.get(f"/v1/limits/{limit_id}", headers=UW), 200)
    entry = next(e for e in limit["history"] if e["amount"]["amount"] == "20000.00")
    assert change["id"] == entry["id"] and change["created_at"] == entry["recorded_at"]
    assert again["unchanged"] is True and (again["id"], again["created_at"]) == (
        change["id"], change["created_at"])  # fmt: skip
