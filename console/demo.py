"""`python -m console.demo`: a small, realistic book loaded through the services' own APIs, so
that a first look at the console is not an empty page: policies in two currencies, buyers across
grades and countries, referred requests, limits with history, claims in several statuses and
collection cases on several rungs. Dates are relative to today, so it works on any day."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from console.settings import ConsoleSettings
from shared.auth import mint_token
from shared.cli import DOCUMENTED_BASE, port_base
from shared.settings import SERVICE_PORTS

PDF = b"%PDF-1.4\n% demo scan\n"


def money(amount: str, currency: str = "EUR") -> dict[str, str]:
    return {"amount": amount, "currency": currency}


@dataclass
class Book:
    """What was loaded, for a person to look at and for the browser tests to drive."""

    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    buyers: dict[str, dict[str, Any]] = field(default_factory=dict)
    referred: list[dict[str, Any]] = field(default_factory=list)
    limits: dict[str, str] = field(default_factory=dict)  # buyer key → limit id
    claims: dict[str, str] = field(default_factory=dict)  # status → claim id
    cases: dict[str, str] = field(default_factory=dict)  # stage → case id


class Loader:
    """Calls the services as their users would: an underwriter, policyholders, a claims
    handler and a collector, each with their own short-lived token."""

    def __init__(self, urls: dict[str, str], secret: str, today: dt.date) -> None:
        self.urls, self.secret, self.today = urls, secret, today
        self.tag = uuid.uuid4().hex[:6]
        self.clients = {name: httpx.Client(base_url=url, timeout=30) for name, url in urls.items()}

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def auth(self, role: str, party: str | None = None) -> dict[str, str]:
        token = mint_token(self.secret, role=role, party_id=party, subject=f"demo-{role}",
                           ttl_seconds=600)  # fmt: skip
        return {"Authorization": f"Bearer {token}"}

    def day(self, offset: int) -> str:
        return (self.today + dt.timedelta(days=offset)).isoformat()

    def call(self, service: str, method: str, path: str, role: str, party: str | None = None,
             expect: int = 201, **kwargs: Any) -> Any:  # fmt: skip
        response = self.clients[service].request(method, path, headers=self.auth(role, party),
                                                  **kwargs)  # fmt: skip
        if response.status_code != expect:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def policy(self, holder: str, currency: str, **extra: Any) -> dict[str, Any]:
        body = {"policyholder_id": f"{holder}-{self.tag}", "currency": currency,
                "start_date": self.day(-300), "end_date": self.day(400),
                "cover_type": "whole_turnover", "max_liability": money("20000000", currency),
                "premium_rate_pct": "0.35", **extra}  # fmt: skip
        created: dict[str, Any] = self.call("underwriting", "POST", "/v1/policies", "underwriter",
                                            json=body)  # fmt: skip
        return created

    def buyer(self, name: str, country: str, **indicators: Any) -> dict[str, Any]:
        body = {"name": name, "country": country,
                "registration_number": f"{country}-{self.tag}-{len(name)}{name[:3].upper()}",
                "indicators": indicators}  # fmt: skip
        created: dict[str, Any] = self.call("underwriting", "POST", "/v1/buyers", "underwriter",
                                            json=body)  # fmt: skip
        return created


STRONG = {"current_ratio": "2.4", "dso_days": "42", "dso_prior_year_days": "40",
          "overdue_ratio": "0.01", "litigation_count": 0, "management_changes_12m": 0}  # fmt: skip
MIDDLING = {"current_ratio": "1.5", "dso_days": "58", "dso_prior_year_days": "50",
            "overdue_ratio": "0.08", "litigation_count": 1, "management_changes_12m": 1}  # fmt: skip
WEAK = {"current_ratio": "0.9", "dso_days": "95", "dso_prior_year_days": "60",
        "overdue_ratio": "0.22", "litigation_count": 3, "management_changes_12m": 2}  # fmt: skip


def load_underwriting(loader: Loader, book: Book) -> None:
    """Two policies (EUR, CNY), buyers across grades and countries, limits from the engine and
    migrated ones with history, and requests referred to an underwriter."""
    eur = loader.policy("ph-shanghai-textiles", "EUR", single_buyer_cap=money("3000000"))
    cny = loader.policy("ph-ningbo-machinery", "CNY")
    book.policies.update(eur=eur, cny=cny)
    buyers = {
        "mueller": loader.buyer("Müller Handels GmbH", "DE", **STRONG, equity=money("40000000")),
        "lyon": loader.buyer("Textiles de Lyon SA", "FR", **MIDDLING, equity=money("6000000")),
        "milano": loader.buyer("Moda Milano S.r.l.", "IT", **WEAK, equity=money("900000")),
        "rotterdam": loader.buyer("Rotterdam Trading B.V.", "NL", **STRONG,
                                  equity=money("15000000")),
        "saopaulo": loader.buyer("Comércio São Paulo Ltda", "BR", **MIDDLING),
        "jakarta": loader.buyer("PT Jakarta Makmur", "ID", **MIDDLING,
                                equity=money("80000000", "CNY")),
    }  # fmt: skip
    book.buyers.update(buyers)
    holder_eur, holder_cny = eur["policyholder_id"], cny["policyholder_id"]
    for key, amount in (("lyon", "150000"), ("rotterdam", "400000")):
        asked = loader.call("underwriting", "POST", f"/v1/policies/{eur['id']}/limit-requests",
                            "policyholder", holder_eur, json={"buyer_id": buyers[key]["id"],
                            "amount": money(amount), "payment_terms_days": 60})  # fmt: skip
        if asked["status"] == "referred":  # above its grade's ceiling: in the queue too
            book.referred.append(asked)
    limit = loader.call("underwriting", "POST", f"/v1/policies/{eur['id']}/limits", "underwriter",
                        json={"buyer_id": buyers["mueller"]["id"], "amount": money("800000"),
                              "effective_from": loader.day(-250), "payment_terms_days": 90,
                              "reason": "migrated from the previous system"})  # fmt: skip
    loader.call("underwriting", "POST", f"/v1/limits/{limit['id']}/changes", "underwriter",
                json={"new_amount": money("650000"), "effective_from": loader.day(31),
                      "reason": "DSO lengthening; notice given"})  # fmt: skip
    book.limits["mueller"] = limit["id"]
    declare_receivables(loader, eur, buyers)
    loader.call("underwriting", "POST", f"/v1/buyers/{buyers['milano']['id']}/signals",
                "underwriter", json={"kind": "payment_delay", "observed_on": loader.day(-20),
                "details": "two invoices paid 45 days late (trade register)"})  # fmt: skip
    for policy, holder, key, amount in (
        (eur, holder_eur, "mueller", "2500000"),
        (eur, holder_eur, "milano", "300000"),
        (cny, holder_cny, "jakarta", "9000000"),
    ):
        request = loader.call("underwriting", "POST", f"/v1/policies/{policy['id']}/limit-requests",
                              "policyholder", holder, json={"buyer_id": buyers[key]["id"],
                              "amount": money(amount, policy["currency"]),
                              "payment_terms_days": 90})  # fmt: skip
        if request["status"] == "referred":
            book.referred.append(request)


def declare_receivables(loader: Loader, policy: dict[str, Any],
                        buyers: dict[str, dict[str, Any]]) -> None:  # fmt: skip
    """The EUR policyholder's receivables, in every ageing bucket, so that its portfolio health
    has figures and warnings (a high overdue ratio, a buyer with a weak current ratio)."""
    rows = (  # buyer, amount, shipped, due (days from today), paid on
        ("mueller", "300000", -40, 20, None),
        ("mueller", "250000", -200, -140, -135),
        ("rotterdam", "180000", -70, -10, None),
        ("lyon", "90000", -100, -40, None),
        ("milano", "120000", -140, -75, None),
        ("milano", "60000", -200, -120, None),
    )
    invoices = [
        {"number": f"D-{loader.tag}-{n}", "buyer_id": buyers[key]["id"], "amount": money(amount),
         "shipment_date": loader.day(shipped), "due_date": loader.day(due),
         **({"paid_amount": money(amount), "paid_on": loader.day(paid)}
            if paid is not None else {})}
        for n, (key, amount, shipped, due, paid) in enumerate(rows)
    ]  # fmt: skip
    loader.call("underwriting", "POST", f"/v1/policies/{policy['id']}/declarations",
                "policyholder", policy["policyholder_id"], json={"invoices": invoices})  # fmt: skip


def file_claim(loader: Loader, policy: dict[str, Any], name: str, country: str,
               documents: bool) -> dict[str, Any]:  # fmt: skip
    """A buyer with a limit since long ago, two invoices notified overdue, an insolvency claim
    and, when `documents`, every document it needs (the claim is then under review)."""
    holder = policy["policyholder_id"]
    buyer = loader.buyer(name, country, **MIDDLING)
    loader.call("underwriting", "POST", f"/v1/policies/{policy['id']}/limits", "underwriter",
                json={"buyer_id": buyer["id"], "amount": money("200000"),
                      "effective_from": loader.day(-280), "payment_terms_days": 90,
                      "reason": "migrated from the previous system"})  # fmt: skip
    prefix = f"{name[:3].upper()}-{loader.tag}"
    invoices = [
        {"number": f"{prefix}-1", "amount": money("80000"), "shipment_date": loader.day(-100),
         "due_date": loader.day(-40)},
        {"number": f"{prefix}-2", "amount": money("45000"), "shipment_date": loader.day(-90),
         "due_date": loader.day(-30)},
    ]  # fmt: skip
    loader.call("claims", "POST", "/v1/overdue-notifications", "policyholder", holder,
                json={"policy_id": policy["id"], "buyer_id": buyer["id"], "kind": "overdue",
                      "invoices": invoices})  # fmt: skip
    claim: dict[str, Any] = loader.call("claims", "POST", "/v1/claims", "policyholder", holder,
        json={"policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
              "event_date": loader.day(-5), "invoices": invoices})  # fmt: skip
    if documents:
        for kind in claim["missing_documents"]:
            loader.call("claims", "POST", f"/v1/claims/{claim['id']}/documents", "policyholder",
                        holder, data={"kind": kind},
                        files={"file": (f"{kind}.pdf", PDF, "application/pdf")})  # fmt: skip
    return claim


CLAIMS = (  # the status each demo claim is left in, its buyer, and the acts that take it there
    ("documents_pending", "Hamburg Stahl AG", "DE", ()),
    ("under_review", "Bordeaux Vins SARL", "FR", ()),
    ("assessed", "Wiener Möbel GmbH", "AT", ("assessment",)),
    ("approved", "Porto Calçado Lda", "PT", ("assessment", "approve")),
    ("paid", "Antwerp Diamonds NV", "BE", ("assessment", "approve", "payment")),
    ("rejected", "Madrid Ceramics SL", "ES", ("reject",)),
    ("on_hold", "Lille Jouets SAS", "FR", ("disputes",)),
)


def dispute(loader: Loader, claim: dict[str, Any]) -> None:
    """The buyer disputes each invoice in turn: the first dispute is resolved for the
    policyholder, the second is open (the claim holds)."""
    holder = claim["policyholder_id"]
    first, second = (i["number"] for i in claim["invoices"])
    settled = loader.call("claims", "POST", f"/v1/claims/{claim['id']}/disputes", "policyholder",
        holder, json={"raised_on": loader.day(-20), "invoice_numbers": [first],
                      "description": "Buyer says 200 of the 1,500 units arrived damaged"})  # fmt: skip
    loader.call("claims", "POST", f"/v1/claims/{claim['id']}/disputes/{settled['id']}/resolution",
                "claims_handler", expect=200,
                json={"outcome": "policyholder", "resolved_on": loader.day(0),
                      "note": "Surveyor: packed correctly; damaged in the buyer's warehouse"})  # fmt: skip
    loader.call("claims", "POST", f"/v1/claims/{claim['id']}/disputes", "policyholder", holder,
                json={"raised_on": loader.day(-2), "invoice_numbers": [second],
                      "description": "Buyer disputes the quantity: 1,200 of 1,500 units counted"})  # fmt: skip


def load_claims(loader: Loader, book: Book) -> None:
    policy = loader.policy("ph-suzhou-electronics", "EUR", deductible=money("5000"))
    book.policies["claims"] = policy
    for status, name, country, acts in CLAIMS:
        claim = file_claim(loader, policy, name, country, documents=status != "documents_pending")
        for act in acts:
            if act in ("approve", "reject"):
                loader.call("claims", "POST", f"/v1/claims/{claim['id']}/decision",
                            "claims_handler", expect=200,
                            json={"decision": act, "reason": "demo: file checked"})  # fmt: skip
            elif act == "disputes":
                dispute(loader, claim)
            else:
                loader.call("claims", "POST", f"/v1/claims/{claim['id']}/{act}",
                            "claims_handler", expect=200)  # fmt: skip
        book.claims[status] = claim["id"]


# Stage after today's escalation run, days past due (its oldest invoice's; the other falls due a
# day later) and ladder: the cases are 5 to 100 days past due, as README.md says.
CASES = (
    ("new", 5, "reminder_15_30_45", "Lisboa Têxteis SA", "PT"),
    ("reminder_letter", 20, "reminder_15_30_45", "Krakow Meble Sp. z o.o.", "PL"),
    ("phone_collection", 35, "reminder_15_30_45", "Athens Foods SA", "GR"),
    ("legal", 55, "reminder_15_30_45", "Budapest Gépgyár Kft", "HU"),
    ("amicable", 40, "legal_30_60_90", "Istanbul Tekstil AŞ", "TR"),
    ("lawyer_letter", 70, "legal_30_60_90", "Praha Sklo s.r.o.", "CZ"),
    ("lawsuit", 100, "legal_30_60_90", "Sofia Wines EOOD", "BG"),
)


def load_cases(loader: Loader, book: Book) -> None:
    """Mandate cases of a policyholder on both ladders, escalated to today's rungs, one with a
    promise to pay and a part payment."""
    creditor = f"ph-hangzhou-tea-{loader.tag}"
    for stage, overdue, ladder, name, country in CASES:
        buyer = loader.buyer(name, country, **MIDDLING)
        invoices = [{"number": f"C-{loader.tag}-{stage}-{n}", "amount": money(amount),
                     "due_date": loader.day(-overdue + n)}
                    for n, amount in ((0, "36000"), (1, "12500.50"))]  # fmt: skip
        case = loader.call("collections", "POST", "/v1/cases", "policyholder", creditor,
                           json={"creditor_id": creditor, "buyer_id": buyer["id"],
                                 "debtor_country": country, "invoices": invoices,
                                 "ladder": ladder})  # fmt: skip
        book.cases[stage] = case["id"]
    loader.call("collections", "POST", "/v1/escalations/run", "collector", expect=200,
                json={"as_of": loader.today.isoformat()})  # fmt: skip
    worked = book.cases["phone_collection"]
    loader.call("collections", "POST", f"/v1/cases/{worked}/activities", "collector",
                json={"kind": "call", "occurred_on": loader.day(0),
                      "note": "spoke to the finance director"})  # fmt: skip
    loader.call("collections", "POST", f"/v1/cases/{worked}/activities", "collector",
                json={"kind": "promise_to_pay", "occurred_on": loader.day(0),
                      "promised_amount": money("20000"), "promised_on": loader.day(10)})  # fmt: skip
    loader.call("collections", "POST", f"/v1/cases/{worked}/payments", "collector",
                json={"amount": money("8000"), "received_on": loader.day(0)})  # fmt: skip


def load_book(urls: dict[str, str], secret: str, today: dt.date) -> Book:
    loader = Loader(urls, secret, today)
    book = Book()
    try:
        load_underwriting(loader, book)
        load_claims(loader, book)
        load_cases(loader, book)
    finally:
        loader.close()
    return book


def addresses(settings: ConsoleSettings, base: int | None, host: str
              ) -> tuple[dict[str, str], str]:  # fmt: skip
    """The services' URLs and the console's: where `tci up --port-base BASE` serves them when a
    base is given, else the settings' (`TCI_*_URL`, `TCI_CONSOLE_PORT`)."""
    if base is not None:
        urls = {s: f"http://{host}:{base + p - DOCUMENTED_BASE}" for s, p in SERVICE_PORTS.items()}
        return urls, f"http://{host}:{base}/"
    urls = {"underwriting": settings.underwriting_url, "claims": settings.claims_url,
            "collections": settings.collections_url}  # fmt: skip
    return urls, f"http://{host}:{settings.console_port}/"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m console.demo",
        description="Load a small, realistic book through the services' APIs and say where the "
        "console shows it.",
    )
    parser.add_argument("--port-base", type=port_base, default=None,
                        help="the base `tci up --port-base` was given: the services on "
                        "BASE+1..BASE+3, the console on BASE (default: TCI_*_URL and "
                        "TCI_CONSOLE_PORT)")  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="where they run (default 127.0.0.1)")
    args = parser.parse_args(argv)
    settings = ConsoleSettings()
    urls, console_url = addresses(settings, args.port_base, args.host)
    try:
        book = load_book(urls, settings.jwt_secret, settings.today())
    except httpx.TransportError as failed:
        sys.exit(f"python -m console.demo: the services do not answer at "
                 f"{', '.join(urls.values())} ({failed}): start them first (`make up`, or "
                 "`tci up --port-base BASE` and --port-base BASE here)")  # fmt: skip
    print(f"loaded: {len(book.policies)} policies, {len(book.buyers)} underwriting buyers, "
          f"{len(book.referred)} referred requests, claims {sorted(book.claims)}, "
          f"cases {sorted(book.cases)}")  # fmt: skip
    print(f"open the console at {console_url}")


if __name__ == "__main__":
    main()
