"""The events feed (`GET /v1/events`, the same route on each service) and how events are written:
who sees which event (owner, assigned bank, stranger, staff), oldest first, paginated like every
list, `after` the last id seen, `types` a filter; events written only when their transaction
commits, in the order recorded, with the parties of that moment."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import shared.events as shared_events
from services.claims.models import events as claims_events
from services.collections.models import events as collections_events
from services.underwriting.models import Policy, events
from shared.events import (
    Committed,
    bank,
    observe_commits,
    pending_events,
    policyholder,
    record_event,
    record_events_from,
)
from shared.events_feed import encode_cursor
from tests.builders import make_buyer, make_policy, money, ok
from tests.conftest import auth, unique
from tests.feed import events_since, mark, read_feed

UW = auth("underwriter")


async def limit_history(uw: httpx.AsyncClient) -> tuple[dict[str, Any], str, str, list[str]]:
    """A policy with a bank assigned, a limit recorded and changed three times: four
    `limit.changed` events. (policy, holder, bank, the events' ids)."""
    holder, bank = unique("ph"), unique("bank")
    policy = await make_policy(uw, holder)
    ok(await uw.post(f"/v1/policies/{policy['id']}/assignments", headers=UW,
                     json={"bank_id": bank}), 201)  # fmt: skip
    buyer = await make_buyer(uw)
    limit = ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": buyer["id"], "amount": money("1000"), "effective_from": "2026-02-01",
        "reason": "migrated"}), 201)  # fmt: skip
    for amount in ("2000", "3000", "4000"):
        ok(await uw.post(f"/v1/limits/{limit['id']}/changes", headers=UW, json={
            "new_amount": money(amount), "reason": "more trade"}), 201)  # fmt: skip
    mine = await read_feed(uw, auth("policyholder", holder))
    assert len(mine) == 4
    return policy, holder, bank, [e["id"] for e in mine]


async def test_a_party_sees_its_own_events_a_stranger_none_and_staff_every_one(
    uw: httpx.AsyncClient,
) -> None:
    since = await mark(uw)
    _, holder, bank, mine = await limit_history(uw)
    _, other_holder, other_bank, theirs = await limit_history(uw)
    assert [e["id"] for e in await read_feed(uw, auth("policyholder", holder))] == mine
    assert [e["id"] for e in await read_feed(uw, auth("bank", bank))] == mine
    assert [e["id"] for e in await read_feed(uw, auth("bank", other_bank))] == theirs
    assert await read_feed(uw, auth("policyholder", unique("ph"))) == []
    assert await read_feed(uw, auth("bank", unique("bank"))) == []
    for staff in ("underwriter", "claims_handler", "collector", "service"):
        every = [e["id"] for e in await events_since(uw, since, auth(staff))]
        assert every == mine + theirs, staff
    assert other_holder != holder
    assert (await uw.get("/v1/events")).status_code == 401


async def test_a_token_of_another_role_carrying_a_partys_id_reads_none_of_its_events(
    uw: httpx.AsyncClient,
) -> None:
    """A party is its role and its id: a bank's token carrying the policyholder's id, and a
    policyholder's token carrying the bank's id, read nothing (the policy's `limit.changed`
    included), and an `after` of theirs is the stranger's 422; the owner and the assigned bank
    still read every event."""
    _, holder, bank, mine = await limit_history(uw)
    assert [e["id"] for e in await read_feed(uw, auth("policyholder", holder))] == mine
    assert [e["id"] for e in await read_feed(uw, auth("bank", bank))] == mine
    for posing in (auth("bank", holder), auth("policyholder", bank)):
        assert await read_feed(uw, posing) == []
        after = await uw.get("/v1/events", headers=posing, params={"after": mine[0]})
        assert after.status_code == 422 and after.json()["errors"][0]["loc"] == ["query", "after"]


@pytest.mark.parametrize("service", ["underwriting", "claims", "collections"])
async def test_each_service_feeds_a_party_by_role_and_id(
    api: Any, engines: dict[str, AsyncEngine], service: str
) -> None:
    """On every service: an event heard by policyholder X and bank B is read by those two, not by
    a bank's token carrying X nor a policyholder's carrying B."""
    from shared.db import build_sessionmaker
    from shared.events import Party

    tables = {"underwriting": events, "claims": claims_events, "collections": collections_events}
    kind = {"underwriting": "limit.changed", "claims": "claim.status_changed",
            "collections": "case.closed"}[service]  # fmt: skip
    client = await api.open(service)
    holder, bank = unique("ph"), unique("bank")
    async with build_sessionmaker(engines[service])() as session:
        ident = await record_event(session, tables[service], type=kind, subject_id=unique("s"),
                                   data={}, parties=[Party("policyholder", holder),
                                                     Party("bank", bank)])  # fmt: skip
        await session.commit()
    for role, party, sees in (("policyholder", holder, True), ("bank", bank, True),
                              ("bank", holder, False), ("policyholder", bank, False)):  # fmt: skip
        read = [e["id"] for e in await read_feed(client, auth(role, party))]
        assert read == ([ident] if sees else []), (role, party)


async def test_the_feed_is_oldest_first_in_pages_and_after_continues_from_an_id(
    uw: httpx.AsyncClient,
) -> None:
    _, holder, _, mine = await limit_history(uw)
    owner = auth("policyholder", holder)
    first = ok(await uw.get("/v1/events?limit=3", headers=owner), 200)
    assert [e["id"] for e in first["items"]] == mine[:3] and first["next_cursor"]
    rest = ok(await uw.get("/v1/events", headers=owner,
                           params={"limit": 3, "cursor": first["next_cursor"]}), 200)  # fmt: skip
    assert [e["id"] for e in rest["items"]] == mine[3:] and rest["next_cursor"] is None
    after = ok(await uw.get("/v1/events", headers=owner, params={"after": mine[1]}), 200)
    assert [e["id"] for e in after["items"]] == mine[2:]
    last = ok(await uw.get("/v1/events", headers=owner, params={"after": mine[-1]}), 200)
    assert last == {"items": [], "next_cursor": None}
    event = first["items"][0]
    assert set(event) == {"id", "type", "occurred_at", "data"}
    assert event["id"].startswith("evt_") and event["occurred_at"].endswith("Z")
    assert event["type"] == "limit.changed" and event["data"]["new_amount"] == money("1000.00")


async def test_after_an_id_not_in_the_callers_feed_is_a_422_the_same_for_a_strangers_and_a_missing(
    uw: httpx.AsyncClient,
) -> None:
    _, holder, _, mine = await limit_history(uw)
    stranger = auth("policyholder", unique("ph"))
    missing = "evt_" + "0" * (len(mine[0]) - 4)
    theirs = await uw.get("/v1/events", headers=stranger, params={"after": mine[0]})
    unknown = await uw.get("/v1/events", headers=stranger, params={"after": missing})
    assert theirs.status_code == unknown.status_code == 422
    assert theirs.json()["errors"][0]["loc"] == ["query", "after"]
    assert theirs.text.replace(mine[0], missing) == unknown.text
    assert "not the id of an event in your feed" in theirs.json()["detail"]
    # Staff see every event: any id is in their feed.
    ok(await uw.get("/v1/events", headers=UW, params={"after": mine[0]}), 200)
    assert (await uw.get("/v1/events", headers=auth("policyholder", holder),
                         params={"after": missing})).status_code == 422  # fmt: skip


@pytest.mark.parametrize(
    ("params", "loc"),
    [({"types": "limit.changed,claim.paid"}, "types"), ({"types": "nonsense"}, "types"),
     ({"limit": 0}, "limit"), ({"limit": 501}, "limit"), ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
     ({"cursor": "WyJldmVudHMiLC0xXQ"}, "cursor"), ({"cursor": encode_cursor(2**70)}, "cursor"),
     ({"after": ""}, "after")],
)  # fmt: skip
async def test_a_filter_or_page_the_feed_does_not_know_is_a_422_naming_it(
    uw: httpx.AsyncClient, params: dict[str, Any], loc: str
) -> None:
    answer = await uw.get("/v1/events", headers=UW, params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["loc"] == ["query", loc]


async def test_types_filters_the_feed_to_the_types_named(uw: httpx.AsyncClient) -> None:
    holder = unique("ph")
    policy = await make_policy(uw, holder)
    buyer = await make_buyer(uw)
    ok(await uw.post(f"/v1/policies/{policy['id']}/limit-requests",
                     headers=auth("policyholder", holder), json={
                         "buyer_id": buyer["id"], "amount": money("5000"),
                         "payment_terms_days": 60}), 201)  # fmt: skip
    owner = auth("policyholder", holder)
    assert [e["type"] for e in await read_feed(uw, owner)] == [
        "limit_request.decided", "limit.changed"]  # fmt: skip
    only = await read_feed(uw, owner, types=" limit.changed ")
    assert [e["type"] for e in only] == ["limit.changed"]
    both = await read_feed(uw, owner, types="limit.changed,limit_request.decided")
    assert len(both) == 2
    assert len(await read_feed(uw, owner, types=" , ")) == 2  # no type named: every type


async def test_a_bank_assigned_later_hears_only_of_what_happens_after_its_assignment(
    uw: httpx.AsyncClient,
) -> None:
    policy, holder, _, mine = await limit_history(uw)
    late = unique("bank")
    ok(await uw.post(f"/v1/policies/{policy['id']}/assignments", headers=UW,
                     json={"bank_id": late}), 201)  # fmt: skip
    assert await read_feed(uw, auth("bank", late)) == []
    limit_id = (await read_feed(uw, auth("policyholder", holder)))[0]["data"]["limit_id"]
    ok(await uw.post(f"/v1/limits/{limit_id}/changes", headers=UW, json={
        "new_amount": money("5000"), "reason": "more trade"}), 201)  # fmt: skip
    [heard] = await read_feed(uw, auth("bank", late))
    assert heard["data"]["new_amount"] == money("5000.00")
    assert len(await read_feed(uw, auth("policyholder", holder))) == len(mine) + 1


# ---------------------------------------------------------------- written with the commit


@pytest.fixture
async def session(engines: dict[str, AsyncEngine]) -> AsyncIterator[AsyncSession]:
    """A session on underwriting's database whose commits are savepoints of a transaction rolled
    back at the end."""
    connection = await engines["underwriting"].connect()
    transaction = await connection.begin()
    opened = AsyncSession(bind=connection, join_transaction_mode="create_savepoint",
                          expire_on_commit=False, autoflush=False)  # fmt: skip
    yield opened
    await opened.close()
    await transaction.rollback()
    await connection.close()


async def count(session: AsyncSession, subject_id: str) -> int:
    found = await session.execute(
        select(func.count()).select_from(events.events).where(events.events.c.subject_id == subject_id)
    )  # fmt: skip
    return int(found.scalar_one())


# A request's few events, and more than PostgreSQL's one statement for events and parties takes.
@pytest.mark.parametrize("recorded", [3, 400])
async def test_events_are_written_when_their_transaction_commits_in_the_order_recorded(
    session: AsyncSession, recorded: int
) -> None:
    subject = unique("subject")
    for n in range(recorded):
        await record_event(session, events, type="limit.changed", subject_id=subject,
                           data={"n": n}, parties=[policyholder("ph-a"), bank("bank-b"), policyholder("ph-a"),
                                    policyholder("")])  # fmt: skip
    assert [e["data"] for e in pending_events(session)] == [{"n": n} for n in range(recorded)]
    assert await count(session, subject) == 0  # not before the commit
    await session.commit()
    assert pending_events(session) == []
    rows = (await session.execute(
        select(events.events.c.seq, events.events.c.data)
        .where(events.events.c.subject_id == subject).order_by(events.events.c.seq))).all()  # fmt: skip
    assert [row.data for row in rows] == [{"n": n} for n in range(recorded)]
    assert [row.seq - rows[0].seq for row in rows] == list(range(recorded))
    heard = await session.execute(
        select(events.parties.c.event_seq, events.parties.c.party_id)
        .where(events.parties.c.event_seq.in_([row.seq for row in rows]))
    )  # fmt: skip
    assert sorted(heard.all()) == sorted(
        (row.seq, party) for row in rows for party in ("bank:bank-b", "policyholder:ph-a")
    )


async def test_a_rolled_back_transaction_announces_nothing(session: AsyncSession) -> None:
    subject = unique("subject")
    await record_event(session, events, type="limit.changed", subject_id=subject, data={},
                       parties=[policyholder("ph-a")])  # fmt: skip
    await session.rollback()
    assert pending_events(session) == []
    await session.commit()  # a later commit does not write what was rolled back
    assert await count(session, subject) == 0


async def test_a_commit_that_fails_announces_nothing(session: AsyncSession) -> None:
    subject = unique("subject")
    await record_event(session, events, type="limit.changed", subject_id=subject, data={},
                       parties=[policyholder("ph-a")])  # fmt: skip
    session.add(Policy(id=unique("pol")))  # its required columns are missing: the flush fails
    with pytest.raises(IntegrityError):
        await session.commit()
    await session.rollback()
    assert pending_events(session) == []
    assert await count(session, subject) == 0


async def test_a_session_closed_without_a_commit_drops_its_events(session: AsyncSession) -> None:
    subject = unique("subject")
    await record_event(session, events, type="limit.changed", subject_id=subject, data={},
                       parties=[])  # fmt: skip
    await session.close()
    assert pending_events(session) == []
    await session.commit()
    assert await count(session, subject) == 0


async def test_events_recorded_set_based_are_numbered_in_subject_order_with_their_parties(
    session: AsyncSession,
) -> None:
    """`record_events_from` (the whole book's path): one event per row, numbered in the order of
    their subjects, ids shaped like `new_id`'s and unique, each heard by exactly its subject's
    parties (duplicates once), and counted once committed."""
    from sqlalchemy import literal, union_all

    prefix = unique("bulk")
    subjects = [f"{prefix}-{n:03d}" for n in range(120)]
    pg = session.get_bind().dialect.name == "postgresql"
    json_object = func.json_build_object if pg else func.json_object
    rows = union_all(*[select(literal(s).label("subject_id"), json_object("n", n).label("data"))
                       for n, s in reversed(list(enumerate(subjects)))])  # fmt: skip
    heard = union_all(*[select(literal(s).label("subject_id"), literal(r).label("party_role"),
                               literal(p).label("party_id"))
                        for s in subjects[:3] for r, p in (("policyholder", "ph-a"),
                                                           ("bank", "bank-b"),
                                                           ("policyholder", "ph-a"))])  # fmt: skip
    observed: list[Committed] = []
    observe_commits(observed.extend)
    try:
        await record_events_from(session, events, type="buyer.grade_changed",
                                 rows=select(rows.subquery()), parties=select(heard.subquery()))  # fmt: skip
        await session.commit()
    finally:
        shared_events._observers.remove(observed.extend)
    assert [(c.type, c.count) for c in observed] == [("buyer.grade_changed", 120)]
    written = (await session.execute(
        select(events.events.c.seq, events.events.c.id, events.events.c.subject_id)
        .where(events.events.c.subject_id.like(f"{prefix}-%")).order_by(events.events.c.seq))).all()  # fmt: skip
    assert [row.subject_id for row in written] == subjects
    ids = [row.id for row in written]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"evt_[0-9a-z]{26}", i) for i in ids)
    parties = (await session.execute(
        select(events.parties.c.event_seq, events.parties.c.party_id)
        .where(events.parties.c.event_seq.in_([row.seq for row in written])))).all()  # fmt: skip
    first = {row.seq: row.subject_id for row in written}
    assert sorted((first[seq], party) for seq, party in parties) == sorted(
        (s, p) for s in subjects[:3] for p in ("bank:bank-b", "policyholder:ph-a"))  # fmt: skip
