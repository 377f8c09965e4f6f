"""Who may call what (api.md, the route tables and "Who may read" in "Added on 2026-11-23"): every
`/v1` route of the three services × every role (and no token) × the owner's object, a stranger's
view of it and an id that does not exist.

- no token: 401; a role the route does not admit: 403 (the `service` role may call anything);
- an admitted role on an id that does not exist: 404; a policyholder or bank that is not the
  object's: 404, byte for byte the missing id's answer (status, body, headers but the request id);
- an admitted role on its own object (staff on any): the route's own success status;
- a list shows a party only its own objects;
- a refused write leaves every table of the three services as it was.

The owner's objects are built once for the module; each cell runs in a savepoint of each service's
transaction, rolled back after it, so every cell starts from the same books."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from shared.http import ServiceClient
from shared.peers import get_peers
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.builders import make_buyer, money, ok
from tests.conftest import SERVICES, run_in_session, token, unique

TODAY = "2027-06-10"
OWNER, STRANGER = "ph-matrix-owner", "ph-matrix-stranger"
BANK, OTHER_BANK = "bank-matrix-payee", "bank-matrix-other"
ROLES = ("policyholder", "underwriter", "claims_handler", "collector", "bank", "service", None)
STAFF = frozenset({"underwriter", "claims_handler", "collector"})
PARTIES = frozenset({"policyholder", "bank"})
ANY = frozenset({*STAFF, *PARTIES})
VARIANTS = ("owner", "stranger", "missing")
# Headers that differ between any two answers, whatever they say.
VOLATILE_HEADERS = frozenset({"x-request-id", "date"})
# What the run measured, printed at the end of the module.
_TALLY = {"cells": 0, "wrong": 0, "stranger_vs_missing": 0, "refused_writes_counted": 0}

Body = Callable[[dict[str, str]], dict[str, Any]]


@dataclass(frozen=True)
class Entry:
    """api.md's answer for one route: the roles it admits (besides `service`), its success
    status, which party roles see only their own objects, the world's objects in its path (by
    name) and those that make it the owner's (swapped for missing ids), its body, and for a list
    the object that the owner and staff see in it and a stranger does not."""

    admits: frozenset[str]
    success: int
    owned_by: frozenset[str] = frozenset()
    path: dict[str, str] = field(default_factory=dict)
    owning: tuple[str, ...] = ()
    body: Body | None = None
    listed: str | None = None
    batch: bool = False
    # The query string it needs (from the world's ids).
    query: Body | None = None
    # The world's object that stands for the owner's when the caller is that party role (a
    # webhook endpoint belongs to one party: the bank's own is another endpoint).
    per_party: dict[str, str] = field(default_factory=dict)


def _invoice(number: str, amount: str = "1000", shipped: str = "2027-03-01",
             due: str = "2027-04-30") -> dict[str, Any]:  # fmt: skip
    return {"number": number, "amount": money(amount), "shipment_date": shipped, "due_date": due}


def _check(ids: dict[str, str]) -> dict[str, Any]:
    return {"policy_id": ids["policy"], "buyer_id": ids["buyer"], "invoice_amount": money("1000"),
            "shipment_date": "2027-06-20", "due_date": "2027-08-20"}  # fmt: skip


NEW_POLICY = {"policyholder_id": "ph-matrix-new", "currency": "EUR", "start_date": "2027-01-01",
              "end_date": "2027-12-31", "cover_type": "whole_turnover",
              "max_liability": money("1000000"), "premium_rate_pct": "0.3"}  # fmt: skip
NEW_BUYER = {"name": "Matrix New Buyer", "country": "NL", "registration_number": "KVK-MATRIX-NEW"}
DOCUMENT = {"data": {"kind": "trade_contract"},
            "files": {"file": ("contract.pdf", b"%PDF-1.4 signed", "application/pdf")}}  # fmt: skip
OWNED_POLICY = {"path": {"policy_id": "policy"}, "owning": ("policy",)}


def _webhooks(service: str, event_type: str) -> dict[tuple[str, str], Entry]:
    """The six webhook-endpoint routes every service has (api.md, Events and webhooks): a party
    registers its own endpoints, staff any party's (naming it); each party sees only its own."""
    own = f"{service}_endpoint"
    mine = {"path": {"endpoint_id": own}, "owning": (own,), "per_party": {"bank": f"{own}_bank"}}

    def create(ids: dict[str, str]) -> dict[str, Any]:
        named = {} if ids["caller_party"] else {"party_role": "policyholder", "party_id": OWNER}
        return {"url": "http://127.0.0.1:9/hook", "event_types": [event_type], **named}

    return {
        ("POST", "/v1/webhook-endpoints"): Entry(ANY, 201, body=create),
        ("GET", "/v1/webhook-endpoints"): Entry(ANY, 200, PARTIES, listed=own,
                                                per_party=mine["per_party"]),
        ("GET", "/v1/webhook-endpoints/{endpoint_id}"): Entry(ANY, 200, PARTIES, **mine),
        ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): Entry(ANY, 204, PARTIES, **mine),
        ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): Entry(
            ANY, 200, PARTIES, **mine),
        # Answers the attempt (200) whether the receiver took it or not.
        ("POST", "/v1/webhook-endpoints/{endpoint_id}/test"): Entry(ANY, 200, PARTIES, **mine),
    }  # fmt: skip


UNDERWRITING: dict[tuple[str, str], Entry] = {
    ("GET", "/v1/policies"): Entry(ANY, 200, PARTIES, listed="policy"),
    ("POST", "/v1/policies"): Entry(frozenset({"underwriter"}), 201, body=lambda _: NEW_POLICY),
    ("GET", "/v1/policies/{policy_id}"): Entry(ANY, 200, PARTIES, **OWNED_POLICY),
    # What the other services read before acting on a (policy, buyer); no such buyer is `null`.
    ("GET", "/v1/policies/{policy_id}/buyers/{buyer_id}"): Entry(
        STAFF, 200, path={"policy_id": "policy", "buyer_id": "buyer"}, owning=("policy",)),
    ("POST", "/v1/policies/{policy_id}/assignments"): Entry(
        frozenset({"underwriter"}), 201, **OWNED_POLICY, body=lambda _: {"bank_id": "bank-new"}),
    ("GET", "/v1/policies/{policy_id}/assignments/{assignment_id}"): Entry(
        ANY, 200, PARTIES, {"policy_id": "policy", "assignment_id": "assignment"},
        ("policy", "assignment")),
    ("POST", "/v1/buyers"): Entry(frozenset({"underwriter", "policyholder"}), 201,
                                  body=lambda _: NEW_BUYER),
    ("GET", "/v1/buyers"): Entry(STAFF | {"policyholder"}, 200, frozenset({"policyholder"}),
                                 listed="buyer"),
    ("GET", "/v1/buyers/{buyer_id}"): Entry(
        STAFF | {"policyholder"}, 200, frozenset({"policyholder"}), {"buyer_id": "buyer"},
        ("buyer",)),
    ("GET", "/v1/buyers/{buyer_id}/grades"): Entry(
        STAFF | {"policyholder"}, 200, frozenset({"policyholder"}), {"buyer_id": "buyer"},
        ("buyer",)),
    ("GET", "/v1/buyers/{buyer_id}/signals"): Entry(
        STAFF | {"policyholder"}, 200, frozenset({"policyholder"}), {"buyer_id": "buyer"},
        ("buyer",)),
    ("GET", "/v1/buyers/{buyer_id}/signals/{signal_id}"): Entry(
        STAFF | {"policyholder"}, 200, frozenset({"policyholder"}),
        {"buyer_id": "buyer", "signal_id": "signal"}, ("buyer", "signal")),
    ("POST", "/v1/buyers/{buyer_id}/indicators"): Entry(
        frozenset({"underwriter", "policyholder"}), 200, frozenset({"policyholder"}),
        {"buyer_id": "buyer"}, ("buyer",), lambda _: {"current_ratio": "0.9"}),
    ("POST", "/v1/buyers/{buyer_id}/indicators/confirmation"): Entry(
        frozenset({"underwriter"}), 200, path={"buyer_id": "buyer"}, owning=("buyer",)),
    ("POST", "/v1/buyers/{buyer_id}/signals"): Entry(
        frozenset({"underwriter"}), 201, path={"buyer_id": "buyer"}, owning=("buyer",),
        body=lambda _: {"kind": "court_judgment", "observed_on": TODAY, "details": "filed"}),
    ("PUT", "/v1/country-risks/{country}"): Entry(
        frozenset({"underwriter"}), 200, path={"country": "country"}, body=lambda _: {"level": 2}),
    ("GET", "/v1/country-risks/{country}"): Entry(STAFF, 200, path={"country": "country"}),
    ("POST", "/v1/sanctions"): Entry(frozenset({"underwriter"}), 201,
                                     body=lambda _: {"country": "KP", "reason": "embargo"}),
    ("GET", "/v1/sanctions"): Entry(STAFF, 200, listed="sanction"),
    ("GET", "/v1/sanctions/{sanction_id}"): Entry(
        STAFF, 200, path={"sanction_id": "sanction"}, owning=("sanction",)),
    ("DELETE", "/v1/sanctions/{sanction_id}"): Entry(
        frozenset({"underwriter"}), 200, path={"sanction_id": "sanction"}, owning=("sanction",)),
    ("POST", "/v1/policies/{policy_id}/limit-requests"): Entry(
        frozenset({"policyholder"}), 201, frozenset({"policyholder"}), **OWNED_POLICY,
        body=lambda ids: {"buyer_id": ids["buyer"], "amount": money("5000"),
                          "payment_terms_days": 60}),
    ("GET", "/v1/limit-requests"): Entry(STAFF, 200, listed="request"),
    ("GET", "/v1/limit-requests/{request_id}"): Entry(
        STAFF | {"policyholder"}, 200, frozenset({"policyholder"}), {"request_id": "request"},
        ("request",)),
    ("POST", "/v1/limit-requests/{request_id}/decision"): Entry(
        frozenset({"underwriter"}), 200, path={"request_id": "request"}, owning=("request",),
        body=lambda _: {"decision": "refuse", "reason": "too risky"}),
    ("POST", "/v1/policies/{policy_id}/limits"): Entry(
        frozenset({"underwriter"}), 201, **OWNED_POLICY,
        # On the solvent buyer: the world's buyer is insolvent, and a recording may not bring
        # back the cover its insolvency withdrew.
        body=lambda ids: {"buyer_id": ids["weak_buyer"], "amount": money("120000"),
                          "effective_from": "2027-06-01", "reason": "migrated"}),
    ("GET", "/v1/policies/{policy_id}/limits"): Entry(ANY, 200, PARTIES, **OWNED_POLICY),
    ("GET", "/v1/limits/{limit_id}"): Entry(ANY, 200, PARTIES, {"limit_id": "limit"}, ("limit",)),
    ("POST", "/v1/limits/{limit_id}/changes"): Entry(
        frozenset({"underwriter"}), 201, path={"limit_id": "limit"}, owning=("limit",),
        # The world's buyer is insolvent (an insolvency claim): its limit may only come down.
        body=lambda _: {"new_amount": money("0"), "reason": "buyer insolvent"}),
    ("POST", "/v1/policies/{policy_id}/declarations"): Entry(
        frozenset({"policyholder"}), 201, frozenset({"policyholder"}), **OWNED_POLICY,
        body=lambda ids: {"invoices": [{**_invoice("DECL-1"), "buyer_id": ids["buyer"]}]}),
    ("GET", "/v1/policies/{policy_id}/premium"): Entry(
        STAFF | {"policyholder"}, 200, frozenset({"policyholder"}), **OWNED_POLICY),
    ("GET", "/v1/policies/{policy_id}/exposure"): Entry(
        STAFF | {"policyholder"}, 200, frozenset({"policyholder"}), **OWNED_POLICY),
    ("GET", "/v1/policies/{policy_id}/portfolio-health"): Entry(
        STAFF | {"policyholder"}, 200, frozenset({"policyholder"}), **OWNED_POLICY),
    ("POST", "/v1/coverage-checks"): Entry(
        frozenset({"policyholder", "bank", "underwriter", "claims_handler"}), 200, PARTIES,
        owning=("policy",), body=_check),
    ("POST", "/v1/coverage-checks/batch"): Entry(
        frozenset({"policyholder", "bank", "underwriter", "claims_handler"}), 200, PARTIES,
        owning=("policy",), body=lambda ids: {"items": [_check(ids)]}, batch=True),
    # Any token; a party sees the events naming it (the owner's limit: its policyholder and the
    # bank assigned to its policy), staff every event.
    ("GET", "/v1/events"): Entry(ANY, 200, PARTIES, listed="limit_event"),
    **_webhooks("underwriting", "limit.changed"),
}  # fmt: skip

HOLDER = frozenset({"policyholder"})
HOLDER_OR_HANDLER = frozenset({"policyholder", "claims_handler"})
HANDLER = frozenset({"claims_handler"})
CLAIMS: dict[tuple[str, str], Entry] = {
    ("POST", "/v1/overdue-notifications"): Entry(
        HOLDER, 201, HOLDER, owning=("policy",),
        body=lambda ids: {"policy_id": ids["policy"], "buyer_id": ids["buyer"], "kind": "overdue",
                          "invoices": [_invoice("LATE-1", shipped="2027-04-01",
                                                due="2027-05-31")]}),
    ("GET", "/v1/overdue-notifications/{notification_id}"): Entry(
        HOLDER_OR_HANDLER, 200, HOLDER, {"notification_id": "notification"}, ("notification",)),
    ("POST", "/v1/claims"): Entry(
        HOLDER, 201, HOLDER, owning=("policy",),
        body=lambda ids: {"policy_id": ids["policy"], "buyer_id": ids["buyer"],
                          "cause": "insolvency", "event_date": "2027-06-01",
                          "invoices": [_invoice("INV-9")]}),
    ("GET", "/v1/claims"): Entry(HOLDER_OR_HANDLER, 200, HOLDER, listed="claim_review"),
    ("GET", "/v1/claims/{claim_id}"): Entry(
        HOLDER_OR_HANDLER, 200, HOLDER, {"claim_id": "claim_review"}, ("claim_review",)),
    ("POST", "/v1/claims/{claim_id}/documents"): Entry(
        HOLDER, 201, HOLDER, {"claim_id": "claim_pending"}, ("claim_pending",),
        lambda _: DOCUMENT),
    ("GET", "/v1/claims/{claim_id}/documents/{document_id}"): Entry(
        HOLDER_OR_HANDLER, 200, HOLDER, {"claim_id": "claim_review", "document_id": "document"},
        ("claim_review",)),
    ("GET", "/v1/claims/{claim_id}/disputes/{dispute_id}"): Entry(
        HOLDER_OR_HANDLER, 200, HOLDER, {"claim_id": "claim_pending", "dispute_id": "dispute"},
        ("claim_pending",)),
    ("POST", "/v1/claims/{claim_id}/disputes"): Entry(
        HOLDER_OR_HANDLER, 201, HOLDER, {"claim_id": "claim_review"}, ("claim_review",),
        lambda _: {"raised_on": "2027-06-05", "description": "quality",
                   "invoice_numbers": ["INV-2"]}),
    ("POST", "/v1/claims/{claim_id}/disputes/{dispute_id}/resolution"): Entry(
        HANDLER, 200, path={"claim_id": "claim_pending", "dispute_id": "dispute"},
        owning=("claim_pending",), body=lambda _: {"outcome": "buyer"}),
    ("POST", "/v1/claims/{claim_id}/assessment"): Entry(
        HANDLER, 200, path={"claim_id": "claim_review"}, owning=("claim_review",)),
    ("POST", "/v1/claims/{claim_id}/decision"): Entry(
        HANDLER, 200, path={"claim_id": "claim_assessed"}, owning=("claim_assessed",),
        body=lambda _: {"decision": "approve", "reason": "cover confirmed"}),
    ("POST", "/v1/claims/{claim_id}/payment"): Entry(
        HANDLER, 200, path={"claim_id": "claim_approved"}, owning=("claim_approved",)),
    ("GET", "/v1/calendars/{country}/days"): Entry(ANY, 200, path={"country": "country"}),
    ("GET", "/v1/calendars/{country}/days/{date}"): Entry(
        ANY, 200, path={"country": "country", "date": "corrected_day"}),
    ("PUT", "/v1/calendars/{country}/days/{date}"): Entry(
        STAFF, 200, path={"country": "country", "date": "corrected_day"},
        body=lambda _: {"working": False, "reason": "bridge day"}),
    ("DELETE", "/v1/calendars/{country}/days/{date}"): Entry(
        STAFF, 204, path={"country": "country", "date": "corrected_day"}),
    ("GET", "/v1/events"): Entry(ANY, 200, PARTIES, listed="claim_event"),
    **_webhooks("claims", "claim.paid"),
}  # fmt: skip

COLLECTOR = frozenset({"collector"})
CASE_READERS = frozenset({"policyholder", "collector"})
COLLECTIONS: dict[tuple[str, str], Entry] = {
    ("GET", "/v1/ladders"): Entry(ANY, 200),
    ("POST", "/v1/cases"): Entry(
        HOLDER, 201, body=lambda ids: {
            "creditor_id": OWNER, "buyer_id": ids["buyer"], "debtor_country": "DE",
            "ladder": "reminder_15_30_45",
            "invoices": [{"number": "M-9", "amount": money("700"), "due_date": "2027-05-01"}]}),
    ("GET", "/v1/cases"): Entry(CASE_READERS, 200, HOLDER, listed="case"),
    ("GET", "/v1/cases/{case_id}"): Entry(CASE_READERS, 200, HOLDER, {"case_id": "case"},
                                          ("case",)),
    ("POST", "/v1/cases/{case_id}/activities"): Entry(
        COLLECTOR, 201, path={"case_id": "case"}, owning=("case",),
        body=lambda _: {"kind": "call", "occurred_on": TODAY, "note": "no answer"}),
    ("POST", "/v1/cases/{case_id}/payments"): Entry(
        COLLECTOR, 201, path={"case_id": "case"}, owning=("case",),
        body=lambda _: {"amount": money("50"), "received_on": TODAY}),
    ("GET", "/v1/cases/{case_id}/activities/{activity_id}"): Entry(
        CASE_READERS, 200, HOLDER, {"case_id": "case", "activity_id": "activity"}, ("case",)),
    ("GET", "/v1/cases/{case_id}/payments/{payment_id}"): Entry(
        CASE_READERS, 200, HOLDER, {"case_id": "case", "payment_id": "payment"}, ("case",)),
    ("GET", "/v1/creditors/{creditor_id}/recoveries"): Entry(
        CASE_READERS, 200, HOLDER, {"creditor_id": "creditor"}, ("creditor",),
        query=lambda ids: {"buyer_id": ids["buyer"], "currency": "EUR"}),
    ("POST", "/v1/escalations/run"): Entry(COLLECTOR, 200, body=lambda _: {"as_of": TODAY}),
    # A case's events reach its creditor only, so a bank's list holds none of the owner's: who
    # sees which is proven in tests/collections/test_events.py; here, who may call it.
    ("GET", "/v1/events"): Entry(ANY, 200),
    **_webhooks("collections", "case.closed"),
}  # fmt: skip

MATRIX = {"underwriting": UNDERWRITING, "claims": CLAIMS, "collections": COLLECTIONS}
CELLS = [
    (service, method, path)
    for service, entries in MATRIX.items()
    for method, path in entries
]  # fmt: skip


# ---------------------------------------------------------------- the world, built once


@dataclass
class World:
    clients: dict[str, httpx.AsyncClient]
    connections: dict[str, AsyncConnection]
    sessions: dict[str, AsyncSession]
    apps: dict[str, Any]
    ids: dict[str, str] = field(default_factory=dict)

    async def isolated(self, run: Callable[[], Any]) -> Any:
        """Run a request in a savepoint of every service's transaction, rolled back after it."""
        savepoints = [await self.connections[s].begin_nested() for s in SERVICES]
        try:
            return await run()
        finally:
            for service in SERVICES:
                await self.sessions[service].close()  # its own savepoint, if one is open
            for savepoint in reversed(savepoints):
                await savepoint.rollback()

    async def row_counts(self) -> dict[str, int]:
        """The number of rows of every table of the three services."""
        counts: dict[str, int] = {}
        for service in SERVICES:
            tables = _tables(service)
            row = (await self.connections[service].execute(select(*[
                select(func.count()).select_from(t).scalar_subquery() for t in tables
            ]))).one()  # fmt: skip
            counts.update({f"{service}.{t.name}": n for t, n in zip(tables, row, strict=True)})
        return counts


def _tables(service: str) -> list[Any]:
    module = __import__(f"services.{service}.models", fromlist=["Base"])
    return list(module.Base.metadata.sorted_tables)


def _factories() -> dict[str, Callable[[], Any]]:
    from services.claims.main import create_app as claims_app
    from services.collections.main import create_app as collections_app
    from services.underwriting.main import create_app as underwriting_app

    return {"underwriting": underwriting_app, "claims": claims_app,
            "collections": collections_app}  # fmt: skip


@pytest.fixture(scope="module")
async def world(engines: dict[str, AsyncEngine]) -> AsyncIterator[World]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TCI_FIXED_TODAY", TODAY)
        for name in ("TCI_RATE_LIMIT", "TCI_RATE_LIMIT_ANONYMOUS"):  # ~1,000 requests at once
            patch.setenv(name, "")
        w = World({}, {}, {}, {})
        transactions = []
        for service in SERVICES:  # underwriting and collections first: claims calls them
            connection = await engines[service].connect()
            transactions.append(await connection.begin())
            session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint",
                                   expire_on_commit=False, autoflush=False)  # fmt: skip
            app = _factories()[service]()
            _override(app, session)
            w.connections[service], w.sessions[service], w.apps[service] = (
                connection, session, app)  # fmt: skip
        peers: list[ServiceClient] = []
        for service in SERVICES:
            if service != "underwriting":
                clients = {p: ServiceClient(
                    f"http://{p}", jwt_secret=DEVELOPMENT_JWT_SECRET, caller_name=service,
                    transport=httpx.ASGITransport(app=w.apps[p]))
                    for p in ("underwriting", "collections") if p != service}  # fmt: skip
                peers.extend(clients.values())
                w.apps[service].dependency_overrides[get_peers] = _returning(clients)
            w.clients[service] = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=w.apps[service]), base_url=f"http://{service}"
            )
        await _build(w)
        for session in w.sessions.values():
            await session.close()
        counts = await w.row_counts()  # the counts of refused writes see the world's rows
        assert counts["underwriting.policies"] >= 1 and counts["claims.claims"] >= 4, counts
        yield w
        for client in peers:
            await client.aclose()
        for service, transaction in zip(SERVICES, transactions, strict=True):
            await w.clients[service].aclose()
            await w.sessions[service].close()
            await transaction.rollback()
            await w.connections[service].close()


def _override(app: Any, session: AsyncSession) -> None:
    run_in_session(app, session)


def _returning(value: Any) -> Callable[[], Any]:
    async def dependency() -> Any:
        return value

    return dependency


def auth(role: str | None, party: str | None = None) -> dict[str, str]:
    if role is None:
        return {}
    return {"Authorization": f"Bearer {token(role, party)}"}


async def _build(w: World) -> None:
    """The owner's books: a policy with an assigned bank, a buyer it holds a limit on, a referred
    limit request, a sanction, a notification and claims in each state a route needs, a
    document, a dispute, a calendar correction, and a mandate with an activity and a payment."""
    uw, claims, cases = w.clients["underwriting"], w.clients["claims"], w.clients["collections"]
    UW, HANDLER_ = auth("underwriter"), auth("claims_handler")
    holder = auth("policyholder", OWNER)
    policy = ok(
        await uw.post(
            "/v1/policies",
            headers=UW,
            json={**NEW_POLICY, "policyholder_id": OWNER, "deductible": money("500")},
        ),
        201,
    )
    assignment = ok(
        await uw.post(
            f"/v1/policies/{policy['id']}/assignments", headers=UW, json={"bank_id": BANK}
        ),
        201,
    )
    buyer = await make_buyer(uw, name="Matrix Buyer", registration_number="HRB-MATRIX")
    limit = ok(
        await uw.post(
            f"/v1/policies/{policy['id']}/limits",
            headers=UW,
            json={
                "buyer_id": buyer["id"],
                "amount": money("100000"),
                "effective_from": "2027-01-01",
                "payment_terms_days": 90,
                "reason": "migrated",
            },
        ),
        201,
    )
    weak = await make_buyer(uw, name="Weak Buyer", country="RU", registration_number="OGRN-MATRIX",
                            indicators={"current_ratio": "0.5", "overdue_ratio": "0.4",
                                        "litigation_count": 5, "equity": money("-10")})  # fmt: skip
    request = ok(
        await uw.post(
            f"/v1/policies/{policy['id']}/limit-requests",
            headers=holder,
            json={"buyer_id": weak["id"], "amount": money("20000"), "payment_terms_days": 60},
        ),
        201,
    )
    assert request["status"] == "referred", request
    sanction = ok(
        await uw.post("/v1/sanctions", headers=UW, json={"country": "IR", "reason": "embargo"}), 201
    )
    # A signal recorded under the owner's policy (the owner sees it; a stranger does not).
    signal = ok(
        await uw.post(
            f"/v1/buyers/{buyer['id']}/signals",
            headers=UW,
            json={"kind": "overdue_notified", "observed_on": TODAY, "details": "late",
                  "policy_id": policy["id"]},
        ),
        201,
    )  # fmt: skip
    invoices = {n: _invoice(f"INV-{n}", "20000") for n in range(1, 10)}
    notification = ok(
        await claims.post(
            "/v1/overdue-notifications",
            headers=holder,
            json={
                "policy_id": policy["id"],
                "buyer_id": buyer["id"],
                "kind": "overdue",
                "invoices": list(invoices.values()),
            },
        ),
        201,
    )

    async def claim(number: int) -> dict[str, Any]:
        return ok(
            await claims.post(
                "/v1/claims",
                headers=holder,
                json={
                    "policy_id": policy["id"],
                    "buyer_id": buyer["id"],
                    "cause": "insolvency",
                    "event_date": "2027-06-01",
                    "invoices": [invoices[number]],
                },
            ),
            201,
        )

    async def documented(number: int) -> dict[str, Any]:
        filed = await claim(number)
        for kind in filed["missing_documents"]:
            ok(await claims.post(f"/v1/claims/{filed['id']}/documents", headers=holder,
                                 data={"kind": kind},
                                 files={"file": (f"{kind}.pdf", b"%PDF-1.4 x", "application/pdf")}),
               201)  # fmt: skip
        return ok(await claims.get(f"/v1/claims/{filed['id']}", headers=holder), 200)

    pending = await claim(1)
    review = await documented(2)
    assert review["status"] == "under_review", review
    document = review["documents"][0]["id"]
    assessed = await documented(3)
    ok(await claims.post(f"/v1/claims/{assessed['id']}/assessment", headers=HANDLER_), 200)
    approved = await documented(4)
    ok(await claims.post(f"/v1/claims/{approved['id']}/assessment", headers=HANDLER_), 200)
    ok(
        await claims.post(
            f"/v1/claims/{approved['id']}/decision",
            headers=HANDLER_,
            json={"decision": "approve", "reason": "cover confirmed"},
        ),
        200,
    )
    dispute = ok(
        await claims.post(
            f"/v1/claims/{pending['id']}/disputes",
            headers=holder,
            json={
                "raised_on": "2027-06-05",
                "description": "quality",
                "invoice_numbers": ["INV-1"],
            },
        ),
        201,
    )
    # A day no other test corrects: on SQLite a correction another test made may still stand.
    ok(
        await claims.put(
            "/v1/calendars/CN/days/2027-09-14",
            headers=HANDLER_,
            json={"working": True, "reason": "make-up day"},
        ),
        201,
    )
    case = ok(
        await cases.post(
            "/v1/cases",
            headers=holder,
            json={
                "creditor_id": OWNER,
                "buyer_id": buyer["id"],
                "debtor_country": "DE",
                "ladder": "reminder_15_30_45",
                "invoices": [{"number": "M-1", "amount": money("900"), "due_date": "2027-05-01"}],
            },
        ),
        201,
    )
    collector = auth("collector")
    activity = ok(
        await cases.post(
            f"/v1/cases/{case['id']}/activities",
            headers=collector,
            json={"kind": "letter", "occurred_on": TODAY},
        ),
        201,
    )
    payment = ok(
        await cases.post(
            f"/v1/cases/{case['id']}/payments",
            headers=collector,
            json={"amount": money("100"), "received_on": TODAY},
        ),
        201,
    )
    w.ids.update(await _owners_events(w, holder))
    w.ids.update(await _endpoints(w, holder))
    w.ids.update(
        policy=policy["id"], assignment=assignment["id"], signal=signal["id"],
        buyer=buyer["id"], weak_buyer=weak["id"], limit=limit["id"],
        request=request["id"],
        sanction=sanction["id"], notification=notification["id"], claim_pending=pending["id"],
        claim_review=review["id"], claim_assessed=assessed["id"], claim_approved=approved["id"],
        document=document, dispute=dispute["id"], case=case["id"], activity=activity["id"],
        payment=payment["id"], country="CN", corrected_day="2027-09-14", creditor=OWNER,
    )  # fmt: skip


async def _owners_events(w: World, holder: dict[str, str]) -> dict[str, str]:
    """An event of each service the owner hears of: its limit's, its first claim's, its case's."""
    found = {}
    for service, name, kind in (("underwriting", "limit_event", "limit.changed"),
                                ("claims", "claim_event", "claim.status_changed"),
                                ("collections", "case_event", "case.stage_changed")):  # fmt: skip
        page = ok(await w.clients[service].get("/v1/events", headers=holder,
                                               params={"types": kind}), 200)  # fmt: skip
        found[name] = page["items"][0]["id"]
    return found


async def _endpoints(w: World, holder: dict[str, str]) -> dict[str, str]:
    """A webhook endpoint of the owner and one of its bank on each service."""
    found = {}
    for service, kind in (("underwriting", "limit.changed"), ("claims", "claim.paid"),
                          ("collections", "case.closed")):  # fmt: skip
        for suffix, headers in (("", holder), ("_bank", auth("bank", BANK))):
            body = {"url": "http://127.0.0.1:9/hook", "event_types": [kind]}
            made = ok(await w.clients[service].post("/v1/webhook-endpoints", headers=headers,
                                                    json=body), 201)  # fmt: skip
            found[f"{service}_endpoint{suffix}"] = made["id"]
    return found


def _missing(ident: str) -> str:
    """An id that does not exist, as long as the real one (so lengths cannot tell them apart)."""
    prefix, _, rest = ident.partition("_")
    return f"{prefix}_{'0' * len(rest)}" if rest else "0" * len(ident)


# ---------------------------------------------------------------- the cells


@dataclass
class Answer:
    status: int
    content: bytes
    headers: dict[str, str]
    counts_changed: dict[str, tuple[int, int]]


def _ids_for(world_ids: dict[str, str], entry: Entry, role: str | None) -> dict[str, str]:
    """The world's ids as a caller of `role` names them: its own stand-in for a per-party
    object, and `caller_party` (empty for staff) for a body that depends on who sends it."""
    ids = dict(world_ids)
    for name in (*entry.owning, entry.listed):
        if name is not None and role in entry.per_party:
            ids[name] = world_ids[entry.per_party[role]]
    ids["caller_party"] = "yes" if role in PARTIES else ""
    return ids


def _token_for(role: str | None, variant: str) -> dict[str, str]:
    if role == "policyholder":
        return auth(role, STRANGER if variant == "stranger" else OWNER)
    if role == "bank":
        return auth(role, OTHER_BANK if variant == "stranger" else BANK)
    return auth(role)


def _variants(entry: Entry) -> tuple[str, ...]:
    if entry.owning:
        return VARIANTS
    if entry.listed and entry.owned_by:
        return ("owner", "stranger")
    return ("owner",)


def expected(entry: Entry, role: str | None, variant: str) -> int:
    if role is None:
        return 401
    if role != "service" and role not in entry.admits:
        return 403
    if variant == "missing" or (variant == "stranger" and role in entry.owned_by and entry.owning):
        return 404
    return entry.success


async def _call(w: World, service: str, method: str, path: str, entry: Entry,
                role: str | None, variant: str) -> Answer:  # fmt: skip
    ids = _ids_for(w.ids, entry, role)
    if variant == "missing":
        ids.update({name: _missing(ids[name]) for name in entry.owning})
    url = path.format(**{param: ids[name] for param, name in entry.path.items()})
    if entry.query is not None:
        url += "?" + urlencode(entry.query(ids))
    payload = entry.body(ids) if entry.body else {}
    if payload and "files" not in payload:
        payload = {"json": payload}
    headers = _token_for(role, variant)
    refused_write = method != "GET" and expected(entry, role, variant) in (401, 403, 404)

    async def run() -> Answer:
        before = await w.row_counts() if refused_write else {}
        _TALLY["refused_writes_counted"] += refused_write
        response = await w.clients[service].request(method, url, headers=headers, **payload)
        after = await w.row_counts() if refused_write else {}
        changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
        status, content = response.status_code, response.content
        while entry.listed and status == 200 and response.json()["next_cursor"] is not None:
            # Every page: other tests' objects may come before the owner's.
            response = await w.clients[service].get(
                url, headers=headers, params={"cursor": response.json()["next_cursor"]}
            )
            status, content = response.status_code, content + response.content
        if entry.batch and status == 200:  # the item's answer is the single check's
            result = response.json()["results"][0]
            if "error" in result:
                status, content = result["error"]["status"], str(result["error"]).encode()
        return Answer(status, content, dict(response.headers), changed)

    answer: Answer = await w.isolated(run)
    return answer


def _comparable(answer: Answer, ids: dict[str, str], entry: Entry) -> tuple[int, bytes, Any]:
    """The answer with the owner's ids written as the missing ones, headers but the volatile."""
    content = answer.content
    for name in entry.owning:
        content = content.replace(ids[name].encode(), _missing(ids[name]).encode())
    headers = {k: v for k, v in answer.headers.items() if k not in VOLATILE_HEADERS}
    return answer.status, content, sorted(headers.items())


def test_the_matrix_has_an_entry_for_every_route_of_the_three_apps() -> None:
    """A route added without an entry here fails this test (the routes as each app publishes
    them in its OpenAPI document)."""
    for service, factory in _factories().items():
        paths = factory().openapi()["paths"]
        routes = {
            (method.upper(), path)
            for path, operations in paths.items()
            if path.startswith("/v1")
            for method in operations
            if method in ("get", "post", "put", "patch", "delete")
        }
        assert routes == set(MATRIX[service]), service


@pytest.mark.parametrize(("service", "method", "path"), CELLS,
                         ids=[f"{s}:{m} {p}" for s, m, p in CELLS])  # fmt: skip
async def test_every_role_gets_api_mds_answer_and_a_strangers_404_is_a_missing_ids(
    world: World, service: str, method: str, path: str
) -> None:
    entry = MATRIX[service][(method, path)]
    wrong: list[str] = []
    cells = compared = 0
    for role in ROLES:
        answers: dict[str, Answer] = {}
        for variant in _variants(entry):
            answer = await _call(world, service, method, path, entry, role, variant)
            answers[variant] = answer
            cells += 1
            want = expected(entry, role, variant)
            if answer.status != want:
                wrong.append(f"{role}/{variant}: {answer.status} (api.md: {want}) "
                             f"{answer.content[:300]!r}")  # fmt: skip
            if answer.counts_changed:
                wrong.append(f"{role}/{variant}: refused, yet wrote {answer.counts_changed}")
            if entry.listed and answer.status == 200:
                seen = _ids_for(world.ids, entry, role)[entry.listed].encode() in answer.content
                if seen == (variant == "stranger" and role in entry.owned_by):
                    wrong.append(f"{role}/{variant}: the owner's object is "
                                 f"{'shown' if seen else 'not shown'} in the list")  # fmt: skip
        # A party the route admits, on another party's object: the answer to a missing id.
        if "missing" in answers and role in entry.owned_by and role in entry.admits:
            ids = _ids_for(world.ids, entry, role)
            stranger = _comparable(answers["stranger"], ids, entry)
            missing = _comparable(answers["missing"], ids, entry)
            compared += 1
            if stranger != missing:
                wrong.append(f"{role}: a stranger's answer {stranger!r} differs from a "
                             f"missing id's {missing!r}")  # fmt: skip
    _TALLY["cells"] += cells
    _TALLY["wrong"] += len(wrong)
    _TALLY["stranger_vs_missing"] += compared
    assert not wrong, "\n".join(wrong)


def teardown_module() -> None:
    if _TALLY["cells"]:
        print(f"\naccess matrix: {_TALLY['cells']} cells, {_TALLY['wrong']} wrong; "
              f"{_TALLY['stranger_vs_missing']} stranger/missing pairs compared; "
              f"{_TALLY['refused_writes_counted']} refused writes with rows counted")  # fmt: skip


async def test_a_policy_list_shows_staff_every_policy_a_policyholder_its_own_a_bank_its_assigned(
    world: World,
) -> None:
    # In the module's world (SQLite has one writer), with parties of its own, rolled back after.
    await world.isolated(lambda: _policy_lists(world.clients["underwriting"]))


async def _policy_lists(uw: httpx.AsyncClient) -> None:
    UW, owner, stranger = auth("underwriter"), unique("ph-own"), unique("ph-other")
    bank, other_bank = unique("bank"), unique("bank")
    mine = ok(await uw.post("/v1/policies", headers=UW,
                            json={**NEW_POLICY, "policyholder_id": owner}), 201)  # fmt: skip
    theirs = ok(await uw.post("/v1/policies", headers=UW,
                              json={**NEW_POLICY, "policyholder_id": stranger}), 201)  # fmt: skip
    for payee in (bank, other_bank):
        ok(await uw.post(f"/v1/policies/{mine['id']}/assignments", headers=UW,
                         json={"bank_id": payee}), 201)  # fmt: skip

    async def listed(headers: dict[str, str], query: str = "") -> list[Any]:
        """Every page (other tests' policies may come first)."""
        items: list[Any] = []
        cursor = ""
        while True:
            page = ok(await uw.get(f"/v1/policies?limit=500{query}{cursor}", headers=headers), 200)
            items.extend(page["items"])
            if page["next_cursor"] is None:
                return items
            cursor = f"&cursor={page['next_cursor']}"

    every = {p["id"] for p in await listed(auth("collector"))}
    assert {mine["id"], theirs["id"]} <= every
    only = await listed(auth("claims_handler"), f"&policyholder_id={stranger}")
    assert [p["id"] for p in only] == [theirs["id"]]
    assert [p["id"] for p in await listed(auth("policyholder", owner))] == [mine["id"]]
    # Another policyholder's id in the filter shows nothing, not that policyholder's policies.
    assert await listed(auth("policyholder", owner), f"&policyholder_id={stranger}") == []
    as_bank = await listed(auth("bank", bank))
    assert [(p["id"], p["assigned_bank_ids"]) for p in as_bank] == [(mine["id"], [bank])]
    assert await listed(auth("bank", "bank-unassigned")) == []
