"""Every partner flow, run over real HTTP through clients generated from the services' OpenAPI
documents, using only the generated code: its `AuthenticatedClient`, its operations, its model
classes and enums; every error answer parses to the named `Problem` / `ValidationProblem`."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from io import BytesIO
from typing import Any

import pytest

from shared.calendar import today as business_today
from tests.clients.conftest import Clients
from tests.conftest import unique

pytestmark = pytest.mark.e2e

# A PDF's signature, then bytes that are not UTF-8: a download must give them back unchanged.
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n\xff\xfe\x00\x80 trailer\n%%EOF\n"
# The trade contract is named in Chinese, as our first users name theirs.
CONTRACT_NAME = "贸易合同.pdf"


def day(offset: int) -> dt.date:
    """A date `offset` days from the business day (the services' own clock: Asia/Shanghai)."""
    return business_today("Asia/Shanghai") + dt.timedelta(days=offset)


@dataclass
class Flow:
    """What the flow made so far, and who acts in it."""

    clients: Clients
    holder_id: str = field(default_factory=lambda: unique("ph"))
    bank_id: str = field(default_factory=lambda: unique("bank"))
    policy: Any = None
    trade_buyer: Any = None  # its limit is asked for and granted at once
    large_buyer: Any = None  # its limit is referred to an underwriter
    claim_buyer: Any = None  # a limit since long ago; its invoices go unpaid
    claim: Any = None
    documents: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # id: (name, content)

    def as_(self, service: str, role: str, party: str | None = None) -> Any:
        return self.clients.client(service, role, party)

    def holder(self, service: str) -> Any:
        return self.as_(service, "policyholder", self.holder_id)

    def money(self, service: str, amount: str, model: str = "PositiveMoney") -> Any:
        """Euros as the generated money `model` of `service` (each request field names its own:
        `PositiveMoney`, `NonNegativeMoney` or `MoneyModel`)."""
        models = getattr(self.clients, service).models
        return getattr(models, model)(amount=amount, currency=models.CurrencyCode.EUR)


def answer(response: Any, status: int, model: Any) -> Any:
    """The parsed answer of a generated `sync_detailed` call, checked for its status and type."""
    assert response.status_code == status, response.content
    assert isinstance(response.parsed, model), (type(response.parsed), response.content)
    return response.parsed


def problem(response: Any, status: int, kind: str, model: Any) -> Any:
    """An error answer, parsed by the generated client to its named problem model, each of its
    members declared (a member the model does not name is left untyped)."""
    parsed = answer(response, status, model)
    assert (parsed.type_, parsed.status) == (kind, status), response.content
    # A member the model does not declare is either dropped or kept untyped: neither will do.
    sent = set(json.loads(response.content))
    undeclared = sent - set(parsed.to_dict()) | set(getattr(parsed, "additional_properties", {}))
    assert not undeclared, f"{kind}: members {model.__name__} does not declare: {undeclared}"
    return parsed


def every_item(page: Any, model: Any) -> list[Any]:
    """Every item of a list, page after page: `page(cursor)` is a generated list call."""
    items: list[Any] = []
    cursor = None
    while True:
        parsed = answer(page(cursor), 200, model)
        items.extend(parsed.items)
        if not parsed.next_cursor:
            return items
        cursor = parsed.next_cursor


# ---------------------------------------------------------------- underwriting


def underwriter_creates_a_policy_and_buyers(flow: Flow) -> None:
    u = flow.clients.underwriting
    m, uw = u.models, flow.as_("underwriting", "underwriter")
    body = m.PolicyCreate(
        policyholder_id=flow.holder_id, currency=m.CurrencyCode.EUR, start_date=day(-200),
        end_date=day(165), cover_type=m.CoverType.WHOLE_TURNOVER,
        max_liability=flow.money("underwriting", "5000000"), premium_rate_pct="0.35",
        deductible=flow.money("underwriting", "5000", "NonNegativeMoney"),
    )  # fmt: skip
    # The default percentages travel as the generated defaults, and are accepted.
    assert (body.indemnity_pct, body.political_indemnity_pct) == ("90", "90")
    created = u.api.underwriting.create_policy.sync_detailed(client=uw, body=body)
    flow.policy = answer(created, 201, m.PolicyRead)
    assert Decimal(flow.policy.indemnity_pct) == 90 and flow.policy.start_date == day(-200)
    assert flow.policy.max_liability.amount == "5000000.00"
    indicators = m.IndicatorsIn(
        current_ratio="2.5", dso_days="40", dso_prior_year_days="40", overdue_ratio="0.01",
        litigation_count=0, management_changes_12m=0,
        equity=flow.money("underwriting", "50000000", "MoneyModel"),
    )  # fmt: skip

    def register(name: str, with_indicators: bool) -> Any:
        buyer = m.BuyerCreate(name=name, country=m.CountryCode.DE,
                              registration_number=unique("HRB"),
                              indicators=indicators if with_indicators else None)  # fmt: skip
        registered = u.api.underwriting.register_buyer.sync_detailed(client=uw, body=buyer)
        return answer(registered, 201, m.BuyerRead)

    flow.trade_buyer = register("Trade GmbH", True)
    flow.large_buyer = register("Large GmbH", True)
    flow.claim_buyer = register("Claim GmbH", False)
    assert flow.trade_buyer.grade <= 3 and flow.trade_buyer.legal_form is m.LegalForm.COMPANY
    # The claim's buyer has had a limit since long before its invoices were shipped.
    recorded = u.api.underwriting.record_external_limit.sync_detailed(
        flow.policy.id, client=uw, body=m.ExternalLimitCreate(
            buyer_id=flow.claim_buyer.id, amount=flow.money("underwriting", "100000"),
            effective_from=day(-200), payment_terms_days=90, reason="migrated"))  # fmt: skip
    assert answer(recorded, 201, m.RecordedLimitRead).amount_in_force.amount == "100000.00"


def holder_requests_limits_and_declares_invoices(flow: Flow) -> Any:
    """Answer the request that was referred to an underwriter."""
    u = flow.clients.underwriting
    m, holder = u.models, flow.holder("underwriting")

    def request(buyer: Any, amount: str) -> Any:
        body = m.LimitRequestCreate(buyer_id=buyer.id, amount=flow.money("underwriting", amount),
                                    payment_terms_days=60)  # fmt: skip
        requested = u.api.underwriting.request_limit.sync_detailed(
            flow.policy.id, client=holder, body=body)  # fmt: skip
        return answer(requested, 201, m.LimitRequestRead)

    approved = request(flow.trade_buyer, "50000")
    assert approved.status is m.LimitRequestStatus.APPROVED
    assert approved.decided_amount.amount == "50000.00"
    referred = request(flow.large_buyer, "1500000")  # above the grade's auto-approval ceiling
    assert referred.status is m.LimitRequestStatus.REFERRED and referred.decided_amount is None
    invoices = [
        m.InvoiceDeclaration(
            number=number,
            buyer_id=buyer.id,
            amount=flow.money("underwriting", amount),
            shipment_date=day(ship),
            due_date=day(due),
        )
        for number, buyer, amount, ship, due in (
            ("INV-1", flow.claim_buyer, "80000", -100, -40),
            ("INV-2", flow.claim_buyer, "40000", -90, -30),
            ("INV-3", flow.trade_buyer, "20000", 0, 60),
        )
    ]
    declared = u.api.underwriting.declare_receivables.sync_detailed(
        flow.policy.id, client=holder, body=m.DeclarationCreate(invoices=invoices))  # fmt: skip
    assert answer(declared, 201, m.DeclarationRead).created == 3
    return referred


def underwriter_decides_the_referred_request(flow: Flow, referred: Any) -> None:
    u = flow.clients.underwriting
    m, uw = u.models, flow.as_("underwriting", "underwriter")
    list_requests = u.api.underwriting.list_limit_requests.sync_detailed
    referred_only = m.LimitRequestStatus.REFERRED
    queue = every_item(
        lambda cursor: list_requests(client=uw, status=referred_only, cursor=cursor),
        m.LimitRequestList,
    )
    assert referred.id in [r.id for r in queue]
    body = m.DecisionCreate(
        decision=m.UnderwriterAct.PARTIALLY_APPROVE,
        amount=flow.money("underwriting", "1200000", "MoneyModel"),
        reason="most of it",
    )
    decide = u.api.underwriting.decide_limit_request.sync_detailed
    decided = answer(decide(referred.id, client=uw, body=body), 200, m.LimitRequestRead)
    assert decided.status is m.LimitRequestStatus.PARTIALLY_APPROVED
    assert decided.decided_amount.amount == "1200000.00" and decided.limit_id
    again = decide(referred.id, client=uw, body=m.DecisionCreate(
        decision=m.UnderwriterAct.REFUSE, reason="changed my mind"))  # fmt: skip
    problem(again, 409, "already-decided", m.Problem)


def bank_checks_coverage(flow: Flow) -> None:
    u = flow.clients.underwriting
    m, uw = u.models, flow.as_("underwriting", "underwriter")
    assigned = u.api.underwriting.assign_policy.sync_detailed(
        flow.policy.id, client=uw, body=m.AssignmentCreate(bank_id=flow.bank_id))  # fmt: skip
    answer(assigned, 201, m.AssignmentRead)
    bank = flow.as_("underwriting", "bank", flow.bank_id)

    def item(buyer_id: str, amount: str, ship: int, due: int) -> Any:
        return m.CoverageCheckCreate(policy_id=flow.policy.id, buyer_id=buyer_id,
                                     invoice_amount=flow.money("underwriting", amount),
                                     shipment_date=day(ship), due_date=day(due))  # fmt: skip

    single = u.api.coverage.check_coverage.sync_detailed(
        client=bank, body=item(flow.trade_buyer.id, "70000", 1, 61))  # fmt: skip
    covered = answer(single, 200, m.CoverageRead)
    assert covered.covered and not covered.fully_covered
    # The 50,000 limit less the 20,000 invoice declared and not yet paid.
    assert covered.exposure.amount == "20000.00"
    assert covered.covered_amount.amount == "30000.00"
    assert covered.insured_amount.amount == "27000.00"  # the policy's default 90 %
    assert covered.reasons == [m.CoverageReason.PARTIALLY_COVERED]
    items = [item(flow.trade_buyer.id, "10000", 1, 61), item("buy_unknown", "1", 1, 61),
             item(flow.trade_buyer.id, "0", 1, 61)]  # fmt: skip
    batch = u.api.coverage.check_coverage_batch.sync_detailed(
        client=bank, body=m.CoverageBatchCreate(items=items))  # fmt: skip
    first, second, third = answer(batch, 200, m.CoverageBatchRead).results
    assert isinstance(first, m.CoverageRead) and first.fully_covered
    assert first.covered_amount.amount == "10000.00"
    assert isinstance(second, m.CoverageItemError) and second.index == 1
    assert isinstance(second.error, m.ValidationProblem)
    assert (second.error.type_, second.error.status) == ("not-found", 404)
    # An item's field errors are typed, and name the item in the batch's body.
    assert isinstance(third, m.CoverageItemError) and third.error.type_ == "validation"
    [field] = third.error.errors
    assert isinstance(field, m.FieldError)
    assert field.loc == ["body", "items", 2, "invoice_amount", "amount"]
    # A business rule refuses a due date before its shipment date: a 422 of its own type.
    refused = u.api.coverage.check_coverage.sync_detailed(
        client=bank, body=item(flow.trade_buyer.id, "100", 10, 5))  # fmt: skip
    problem(refused, 422, "due-before-shipment", m.ValidationProblem)


# ---------------------------------------------------------------- claims


def holder_notifies_files_and_documents_a_claim(flow: Flow) -> None:
    c = flow.clients.claims
    m, holder = c.models, flow.holder("claims")
    invoices = [
        m.InvoiceIn(
            number=number,
            amount=flow.money("claims", amount),
            shipment_date=day(ship),
            due_date=day(due),
        )
        for number, amount, ship, due in (
            ("INV-1", "80000", -100, -40),
            ("INV-2", "40000", -90, -30),
        )
    ]
    notified = c.api.claims.notify_overdue.sync_detailed(client=holder, body=m.NotificationCreate(
        policy_id=flow.policy.id, buyer_id=flow.claim_buyer.id,
        kind=m.NotificationKind.OVERDUE, invoices=invoices))  # fmt: skip
    answer(notified, 201, m.NotificationRead)
    filed = c.api.claims.file_claim.sync_detailed(client=holder, body=m.ClaimCreate(
        policy_id=flow.policy.id, buyer_id=flow.claim_buyer.id, cause=m.ClaimCause.INSOLVENCY,
        event_date=day(-5), invoices=invoices))  # fmt: skip
    flow.claim = answer(filed, 201, m.ClaimRead)
    assert flow.claim.status is m.ClaimStatus.DOCUMENTS_PENDING
    assert flow.claim.missing_documents and all(
        isinstance(kind, m.DocumentKind) for kind in flow.claim.missing_documents
    )
    # The handler cannot assess a claim whose documents are missing: a business rule's 422.
    handler = flow.as_("claims", "claims_handler")
    early = c.api.claims.assess.sync_detailed(flow.claim.id, client=handler)
    refused = problem(early, 422, "documents-missing", m.ValidationProblem)
    assert refused.errors is c.types.UNSET
    for kind in flow.claim.missing_documents:
        name = CONTRACT_NAME if kind is m.DocumentKind.TRADE_CONTRACT else f"{kind.value}.pdf"
        content = PDF + kind.value.encode()
        upload = m.BodyAddDocument(kind=kind, file=c.types.File(
            payload=BytesIO(content), file_name=name, mime_type="application/pdf"))  # fmt: skip
        added = c.api.claims.add_document.sync_detailed(flow.claim.id, client=holder, body=upload)
        uploaded = answer(added, 201, m.DocumentUploadRead)
        assert (uploaded.kind, uploaded.filename, uploaded.size) == (kind, name, len(content))
        flow.documents[uploaded.id] = (name, content)
    assert uploaded.missing_documents == [] and uploaded.claim_status is m.ClaimStatus.UNDER_REVIEW


def handler_assesses_approves_and_pays(flow: Flow) -> None:
    c = flow.clients.claims
    m, handler = c.models, flow.as_("claims", "claims_handler")
    assessed = answer(c.api.claims.assess.sync_detailed(flow.claim.id, client=handler), 200,
                      m.ClaimRead)  # fmt: skip
    assert assessed.status is m.ClaimStatus.ASSESSED
    assert isinstance(assessed.assessment, m.AssessmentRead)
    assert assessed.indemnity.amount == "85000.00"
    decide = c.api.claims.decide.sync_detailed
    approve = m.DecisionCreate(decision=m.ClaimDecision.APPROVE, reason="ok")
    approved = answer(decide(flow.claim.id, client=handler, body=approve), 200, m.ClaimRead)
    assert approved.status is m.ClaimStatus.APPROVED
    twice = decide(flow.claim.id, client=handler, body=m.DecisionCreate(
        decision=m.ClaimDecision.REJECT, reason="no"))  # fmt: skip
    assert problem(twice, 409, "already-decided", m.Problem).status_now == "approved"
    paid = answer(c.api.claims.pay.sync_detailed(flow.claim.id, client=handler), 200, m.ClaimRead)
    assert paid.status is m.ClaimStatus.PAID and paid.paid_on == day(0)


# ---------------------------------------------------------------- collections


def collector_reads_the_case_and_records_a_payment(flow: Flow) -> None:
    k = flow.clients.collections
    m, collector = k.models, flow.as_("collections", "collector")
    # The claims service opens the case through its outbox: wait for it on the generated list.
    deadline, cases = time.monotonic() + 20, list[Any]()
    while not cases and time.monotonic() < deadline:
        listed = k.api.collections.list_cases.sync_detailed(client=collector,
                                                            claim_id=flow.claim.id)  # fmt: skip
        cases = answer(listed, 200, m.CaseList).items
        if not cases:
            time.sleep(0.2)
    [listed_case] = cases
    read = k.api.collections.get_case.sync_detailed(listed_case.id, client=collector)
    case = answer(read, 200, m.CaseRead)
    assert case.claim_id == flow.claim.id and case.status is m.CaseStatus.OPEN
    assert case.outstanding.amount == "120000.00" and case.insurer_share_pct == "70.8333"
    assert isinstance(case.stage, m.CaseStage) and isinstance(case.ladder, m.LadderName)
    body = m.PaymentCreate(amount=flow.money("collections", "20000"), received_on=day(0))
    recorded = k.api.collections.record_payment.sync_detailed(case.id, client=collector, body=body)
    payment = answer(recorded, 201, m.PaymentRead)
    assert payment.outstanding_after.amount == "100000.00"
    assert payment.case_status is m.CaseStatus.OPEN


def holder_downloads_a_document_back(flow: Flow) -> None:
    c = flow.clients.claims
    holder = flow.holder("claims")
    for document_id, (name, content) in flow.documents.items():
        if name == CONTRACT_NAME:
            downloaded = c.api.claims.download_document.sync_detailed(
                flow.claim.id, document_id, client=holder)  # fmt: skip
            assert answer(downloaded, 200, c.types.File).payload.read() == content
            assert "filename*=UTF-8''" in downloaded.headers["content-disposition"]


def test_every_partner_flow_runs_through_the_generated_clients(clients: Clients) -> None:
    flow = Flow(clients)
    underwriter_creates_a_policy_and_buyers(flow)
    referred = holder_requests_limits_and_declares_invoices(flow)
    underwriter_decides_the_referred_request(flow, referred)
    bank_checks_coverage(flow)
    holder_notifies_files_and_documents_a_claim(flow)
    handler_assesses_approves_and_pays(flow)
    collector_reads_the_case_and_records_a_payment(flow)
    holder_downloads_a_document_back(flow)


# ---------------------------------------------------------------- errors


def test_each_error_answer_parses_to_its_named_problem_model(clients: Clients) -> None:
    u, c, k = clients.underwriting, clients.claims, clients.collections
    m = u.models
    body = m.PolicyCreate(
        policyholder_id=unique("ph"), currency=m.CurrencyCode.EUR, start_date=day(0),
        end_date=day(364), cover_type=m.CoverType.NAMED_BUYERS,
        max_liability=m.PositiveMoney(amount="1000000", currency=m.CurrencyCode.EUR),
        premium_rate_pct="0.5",
    )  # fmt: skip
    create = u.api.underwriting.create_policy.sync_detailed
    unsigned = clients.client("underwriting", "underwriter", bearer="not-a-token")
    problem(create(client=unsigned, body=body), 401, "unauthorized", m.Problem)
    bank = clients.client("underwriting", "bank", unique("bank"))
    problem(create(client=bank, body=body), 403, "forbidden", m.Problem)
    underwriter = clients.client("underwriting", "underwriter")
    policy = answer(create(client=underwriter, body=body), 201, m.PolicyRead)
    stranger = clients.client("underwriting", "policyholder", unique("ph"))
    hidden = u.api.underwriting.get_policy.sync_detailed(policy.id, client=stranger)
    problem(hidden, 404, "not-found", m.Problem)
    body.premium_rate_pct = "101"
    invalid = problem(create(client=underwriter, body=body), 422, "validation", m.ValidationProblem)
    [error] = invalid.errors
    assert isinstance(error, m.FieldError) and error.loc[-1] == "premium_rate_pct"
    unknown_claim = c.api.claims.get_claim.sync_detailed(
        "clm_unknown", client=clients.client("claims", "claims_handler"))  # fmt: skip
    problem(unknown_claim, 404, "not-found", c.models.Problem)
    unknown_case = k.api.collections.get_case.sync_detailed(
        "case_unknown", client=clients.client("collections", "collector"))  # fmt: skip
    problem(unknown_case, 404, "not-found", k.models.Problem)


def test_the_generator_printed_no_warning_for_any_service(clients: Clients) -> None:
    for generated in clients.generated.values():
        assert generated.output.strip() == f"Generating {generated.package.__path__[0]}", (
            generated.output
        )


def test_the_probes_and_each_webhook_parse_with_the_generated_models(clients: Clients) -> None:
    """`/healthz` is a typed answer, `/metrics` text; every event type a webhook delivers has its
    generated model, which parses a delivery (an event as the feed lists it, the same body)."""
    import httpx

    from tests.conftest import token

    for service, generated in clients.generated.items():
        package = generated.package
        health = package.api.operations.healthz.sync_detailed(
            client=clients.client(service, "service")
        )
        assert answer(health, 200, package.models.Health).status == "ok"
        scraped = package.api.operations.prometheus_metrics.sync_detailed(
            client=clients.client(service, "service"))  # fmt: skip
        assert scraped.status_code == 200 and isinstance(scraped.parsed, str)
        document = httpx.get(f"{clients.services.urls[service]}/openapi.json", timeout=30).json()
        models = {}
        for event_type, hook in document["webhooks"].items():
            ref = hook["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            models[event_type] = getattr(package.models, ref.rsplit("/", 1)[1])
        feed = httpx.get(f"{clients.services.urls[service]}/v1/events?limit=500", timeout=30,
                         headers={"Authorization": f"Bearer {token('service')}"})  # fmt: skip
        assert feed.status_code == 200, feed.text
        for delivered in feed.json()["items"]:
            parsed = models[delivered["type"]].from_dict(delivered)
            assert (parsed.id, parsed.type_) == (delivered["id"], delivered["type"])
            # Every member of the payload is a typed attribute of the model (none left over).
            assert set(parsed.data.to_dict()) == set(delivered["data"]), delivered["type"]
            assert not getattr(parsed.data, "additional_properties", {}), delivered["type"]
