"""A coverage batch answers each item exactly as the single check answers it: covered, not covered
for each reason, unknown policies and buyers, another policyholder's policy, a bank's policy it is
not assigned to, and malformed items, for a policyholder, the staff and banks."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.underwriting import rules
from services.underwriting.coverage import batch_items
from services.underwriting.schemas import CoverageCheckCreate
from shared.contracts import money_json
from shared.money import Money
from shared.problems import Problem, validation_problem
from tests.builders import declared_on, make_buyer, make_policy, money, ok, request_limit
from tests.conftest import auth, unique

UW = auth("underwriter")
TODAY = "2027-01-10"


@pytest.fixture
async def pinned(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    """The underwriting API with today pinned to 10 January 2027."""
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    monkeypatch.setenv("TCI_UW_COVERAGE_BATCH_CHUNK", "7")  # several chunks, one item short
    client: httpx.AsyncClient = await api.open("underwriting")
    return client


@pytest.fixture
async def unthrottled(api: Any, monkeypatch: pytest.MonkeyPatch) -> httpx.AsyncClient:
    """`pinned`, with no rate limit: hundreds of single checks to compare a batch with."""
    monkeypatch.setenv("TCI_RATE_LIMIT", "")
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    monkeypatch.setenv("TCI_UW_COVERAGE_BATCH_CHUNK", "7")
    client: httpx.AsyncClient = await api.open("underwriting")
    return client


def weak_indicators() -> dict[str, Any]:
    """Grade 9 in Germany: a limit request on it is referred to an underwriter."""
    return {"current_ratio": "0.5", "dso_days": "40", "dso_prior_year_days": "40",
            "overdue_ratio": "0.2", "litigation_count": 3, "management_changes_12m": 0,
            "equity": money("50000000")}  # fmt: skip


async def books(uw: httpx.AsyncClient) -> dict[str, Any]:
    """One policyholder's policy and a buyer for each outcome of a check."""
    holder = unique("ph")
    policy = await make_policy(uw, holder=holder, start_date="2027-01-01", end_date="2027-12-31",
                               discretionary_limit=money("20000"),
                               covered_countries=["DE", "FR", "NL"])  # fmt: skip
    named = await make_policy(uw, holder=holder, currency="USD", cover_type="named_buyers",
                              max_liability=money("5000000", "USD"),
                              start_date="2027-01-01", end_date="2027-12-31")  # fmt: skip
    stranger = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31")
    b: dict[str, Any] = {}
    for name in ("limited", "exposed", "stopped", "withdrawn", "discretionary", "sanctioned"):
        b[name] = await make_buyer(uw)
    b["superseded"] = await make_buyer(uw, indicators=weak_indicators())
    b["foreign"] = await make_buyer(uw, country="US")
    b["individual"] = await make_buyer(uw, legal_form="individual")
    b["affiliate"] = await make_buyer(uw)
    b["named"] = await make_buyer(uw, country="FR")
    limits = {}
    for name, amount, terms in (("limited", "100000", 90), ("exposed", "30000", 120),
                                ("stopped", "50000", 120), ("withdrawn", "50000", 120)):  # fmt: skip
        limits[name] = (await request_limit(uw, policy, b[name]["id"], amount, terms))["limit_id"]
    holder_auth = auth("policyholder", holder)
    ok(await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder_auth, json={
        "invoices": [
            {"number": "X-1", "buyer_id": b["exposed"]["id"], "amount": money("20000"),
             "shipment_date": "2027-01-05", "due_date": "2027-03-05"},
            {"number": "X-2", "buyer_id": b["exposed"]["id"], "amount": money("12000.50"),
             "shipment_date": "2027-01-06", "due_date": "2027-03-06",
             "paid_amount": money("2000"), "paid_on": "2027-01-08"},
        ]}), 201)  # fmt: skip
    ok(await uw.post(f"/v1/buyers/{b['stopped']['id']}/signals", headers=UW, json={
        "kind": "overdue_notified", "observed_on": TODAY, "policy_id": policy["id"]}), 201)  # fmt: skip
    ok(await uw.post(f"/v1/buyers/{b['withdrawn']['id']}/signals", headers=UW, json={
        "kind": "insolvency_filing", "observed_on": TODAY, "details": "court filing"}), 201)  # fmt: skip
    ok(await uw.post("/v1/sanctions", headers=UW, json={
        "buyer_id": b["sanctioned"]["id"], "reason": "listed"}), 201)  # fmt: skip
    referred = await request_limit(uw, policy, b["superseded"]["id"], "30000")
    assert referred["status"] == "referred"
    ok(await uw.post(f"/v1/limit-requests/{referred['id']}/decision", headers=UW,
                     json={"decision": "refuse", "reason": "weak accounts"}), 200)  # fmt: skip
    ok(await uw.post(f"/v1/policies/{policy['id']}/limit-requests", headers=holder_auth, json={
        "buyer_id": b["affiliate"]["id"], "amount": money("10000"), "payment_terms_days": 60,
        "related_to_policyholder": True}), 201)  # fmt: skip
    bank = unique("bank")
    ok(await uw.post(f"/v1/policies/{policy['id']}/assignments", json={"bank_id": bank},
                     headers=UW), 201)  # fmt: skip
    return {"policy": policy, "named": named, "stranger": stranger, "buyers": b,
            "holder": holder, "bank": bank}  # fmt: skip


def items(books: dict[str, Any]) -> list[Any]:
    """Items with every outcome: answers for each reason, then errors, then malformed items."""
    policy, b = books["policy"]["id"], books["buyers"]

    def item(buyer: str, amount: str = "1000", ship: str = "2027-02-01", due: str = "2027-03-01",
             **extra: Any) -> dict[str, Any]:  # fmt: skip
        return {"policy_id": extra.pop("policy_id", policy), "buyer_id": b[buyer]["id"]
                if buyer in b else buyer, "invoice_amount": money(amount),
                "shipment_date": ship, "due_date": due, **extra}  # fmt: skip

    good = item("limited")
    return [
        good,                                                       # covered in full
        item("limited", "150000.25"),                               # partially covered
        item("limited", "1000", due="2027-06-01"),                  # credit period exceeded
        item("limited", "1000", ship="2026-12-20", due="2027-01-20"),  # policy inactive
        item("limited", "999.5"),                                   # one decimal
        item("limited", "1000.000"),                                # trailing zeros
        item("limited", "1000", ship="2027-01-10", due="2027-01-10"),  # shipped today, due today
        item("exposed", "5000"),                                    # headroom exhausted
        item("exposed", "5000", ship="2027-01-05"),                 # before the second invoice
        item("exposed", "5000", invoice_number="X-2"),              # the invoice itself excluded
        item("exposed", "5000", ship="2027-01-04"),                 # before any invoice
        item("stopped", "1000", ship="2027-01-11"),                 # stop-shipment
        item("stopped", "1000", ship="2027-01-10"),                 # on the day: no stop
        item("withdrawn", "1000", ship="2027-01-11"),               # limit withdrawn
        item("withdrawn", "1000", ship="2027-01-10"),               # the day before it applies
        item("discretionary", "30000"),                             # discretionary, partially
        item("superseded", "1000", ship="2027-02-01"),              # discretionary superseded
        item("superseded", "1000", ship="2027-01-09"),              # before the decision
        item("foreign", "1000"),                                    # country not covered
        item("individual", "1000"),                                 # not insurable
        item("affiliate", "1000"),                                  # an affiliate
        item("sanctioned", "1000"),                                 # sanctioned
        item("named", "1000", policy_id=books["named"]["id"],
             invoice_amount=money("1000", "USD")),                  # no limit (named buyers)
        item("named", "10.5", policy_id=books["named"]["id"],
             invoice_amount=money("10.5", "USD")),                  # no limit, in USD
        item("limited", "1000", invoice_number="ÄÖÜ-№1"),           # any storable text
        # errors of the books and of the caller
        item("limited", "1000", policy_id="pol_missing"),           # unknown policy
        item("buy_missing", "1000"),                                # unknown buyer
        item("limited", "1000", policy_id=books["stranger"]["id"]),  # another holder's policy
        item("limited", "1000", invoice_amount=money("1000", "USD")),  # currency mismatch
        item("limited", "1000", ship="2027-03-01", due="2027-02-01"),  # due before shipment
        item("named", "1000", policy_id=books["named"]["id"],
             invoice_amount=money("1000.5", "JPY")),                # JPY decimals, wrong currency
        # malformed items
        {"policy_id": policy},
        "not an object",
        None,
        [good],
        {**good, "extra": 1},
        {**good, "policy_id": "has space"},
        {**good, "policy_id": ""},
        {**good, "buyer_id": 7},
        {**good, "invoice_amount": {"amount": "1e3", "currency": "EUR"}},
        {**good, "invoice_amount": {"amount": "-5", "currency": "EUR"}},
        {**good, "invoice_amount": {"amount": "0", "currency": "EUR"}},
        {**good, "invoice_amount": {"amount": "0.00", "currency": "EUR"}},
        {**good, "invoice_amount": {"amount": 15000, "currency": "EUR"}},
        {**good, "invoice_amount": {"amount": 15000.5, "currency": "EUR"}},
        {**good, "invoice_amount": {"amount": "1.001", "currency": "EUR"}},
        {**good, "invoice_amount": {"amount": "1.00001", "currency": "EUR"}},
        {**good, "invoice_amount": {"amount": " 10", "currency": "EUR"}},
        {**good, "invoice_amount": {"amount": "1" * 30, "currency": "EUR"}},
        {**good, "invoice_amount": {"amount": "10", "currency": "XYZ"}},
        {**good, "invoice_amount": {"amount": "10", "currency": "eur"}},
        {**good, "invoice_amount": {"amount": "10", "currency": "XAU"}},
        {**good, "invoice_amount": {"amount": "10"}},
        {**good, "invoice_amount": {"amount": "10", "currency": "EUR", "x": 1}},
        {**good, "invoice_amount": "10 EUR"},
        {**good, "shipment_date": "2027-02-30"},
        {**good, "shipment_date": "1899-12-31"},
        {**good, "shipment_date": "2027-02-01T00:00:00"},
        {**good, "shipment_date": 1800000000},
        {**good, "due_date": None},
        {**good, "invoice_number": "x" * 101},
        {**good, "invoice_number": "nul\x00"},
        {**good, "invoice_number": 12},
        {**good, "invoice_number": None},
        {**good, "buyer_id": "b\x00"},
    ]  # fmt: skip


def in_item(index: int, loc: list[Any]) -> list[Any]:
    """A field of the single check's body as the same field of the batch's item `index`."""
    assert loc[0] == "body", loc
    return ["body", "items", index, *loc[1:]]


async def answers_match_single_checks(
    uw: httpx.AsyncClient, batch: list[Any], headers: dict[str, str]
) -> list[dict[str, Any]]:
    results = ok(await uw.post("/v1/coverage-checks/batch", json={"items": batch},
                               headers=headers), 200)["results"]  # fmt: skip
    assert len(results) == len(batch)
    for index, (item, result) in enumerate(zip(batch, results, strict=True)):
        single = await uw.post("/v1/coverage-checks", json=item, headers=headers)
        if single.status_code == 200:
            assert result == single.json(), (index, item)
            continue
        assert result["index"] == index, (index, item, result)
        error, problem = result["error"], single.json()
        assert error["status"] == single.status_code, (index, item, error, problem)
        assert error["type"] == problem["type"], (index, item, error, problem)
        if problem["type"] == "validation":
            # The item's own validation, located in the batch's body (the single check locates
            # it in its own); its messages name the item's model for an item not an object.
            try:
                CoverageCheckCreate.model_validate(item)
            except ValidationError as exc:
                located = [{**e, "loc": ("body", "items", index, *e["loc"])} for e in exc.errors()]
                assert error == validation_problem(located).body(), (index, item)
            else:
                raise AssertionError(f"item {index} is valid: {item!r}")
            assert [{k: v for k, v in e.items() if k != "msg"} for e in error["errors"]] == [
                {k: v for k, v in e.items() if k != "msg"} | {"loc": in_item(index, e["loc"])}
                for e in problem["errors"]
            ] or error["errors"][0]["type"] == "model_type", (index, item)
        else:
            single_error = {k: v for k, v in problem.items() if k != "instance"}
            if "loc" in single_error:
                single_error["loc"] = in_item(index, single_error["loc"])
            assert error == single_error, (index, item)
    return list(results)


async def test_a_batch_answers_every_item_as_the_single_check(pinned: httpx.AsyncClient) -> None:
    uw = pinned
    built = await books(uw)
    batch = items(built)
    holder = auth("policyholder", built["holder"])
    results = await answers_match_single_checks(uw, batch, holder)
    reasons = {reason for r in results if "reasons" in r for reason in r["reasons"]}
    assert reasons == {
        "policy_inactive", "country_not_covered", "buyer_not_insurable", "sanctioned",
        "stop_shipment", "credit_period_exceeded", "no_limit", "limit_withdrawn",
        "headroom_exhausted", "partially_covered", "discretionary_superseded",
    }  # fmt: skip
    assert results[0]["covered"] and results[0]["fully_covered"]
    statuses = {r["error"]["status"] for r in results if "error" in r}
    assert statuses == {404, 422}
    assert sum(1 for r in results if "error" in r and r["error"]["type"] == "validation") >= 30
    await answers_match_single_checks(uw, batch, UW)  # the staff see every policy
    await answers_match_single_checks(uw, batch, auth("bank", built["bank"]))
    stranger_bank = await answers_match_single_checks(uw, batch, auth("bank", unique("bank")))
    assert all("error" in r for r in stranger_bank)  # not assigned: no policy found


async def test_a_long_ledger_gives_each_item_its_own_exposure(
    unthrottled: httpx.AsyncClient,
) -> None:
    """Many receivables on one (policy, buyer), on a few shipment dates, unpaid, paid, partly
    paid and paid only after today; items over those dates, naming invoices of the ledger (each
    left out of its own exposure when shipped by then), of a neighbour, of another policy, or
    none: every item's exposure is the rule's, and each answer the single check's."""
    uw = unthrottled
    holder = unique("ph")
    policy = await make_policy(uw, holder=holder, start_date="2026-12-01", end_date="2027-12-31",
                               discretionary_limit=money("20000"))  # fmt: skip
    other = await make_policy(uw, start_date="2026-12-01", end_date="2027-12-31")
    buyer, neighbour = (await make_buyer(uw))["id"], (await make_buyer(uw))["id"]
    for on in (policy, other):
        assert (await request_limit(uw, on, buyer, "100000", 120))["status"] == "approved"
    first = dt.date(2026, 12, 20)
    ledger: list[dict[str, Any]] = []
    for n in range(60):
        ship = first + dt.timedelta(days=n % 9 * 3)  # nine dates, several invoices on each
        invoice = {"number": f"L-{n}", "buyer_id": buyer, "amount": money(f"{1000 + n * 37}.{n:02d}"),
                   "shipment_date": ship.isoformat(),
                   "due_date": (ship + dt.timedelta(days=60)).isoformat()}  # fmt: skip
        paid = {
            1: (f"{1000 + n * 37}.{n:02d}", ship + dt.timedelta(days=1)),  # in full
            2: ("400.25", ship + dt.timedelta(days=2)),  # in part
            3: ("300", dt.date(2027, 1, 20)),
        }.get(n % 5)  # after today: unpaid today
        if paid:
            invoice |= {"paid_amount": money(paid[0]), "paid_on": paid[1].isoformat()}
        ledger.append(invoice)
    aside = [{"number": "N-1", "buyer_id": neighbour, "amount": money("7000"),
              "shipment_date": "2026-12-21", "due_date": "2027-02-21"}]  # fmt: skip
    holder_auth = auth("policyholder", holder)
    with declared_on(uw, dt.date(2027, 1, 20)):  # the book as declared once its payments were made
        ok(await uw.post(f"/v1/policies/{policy['id']}/declarations", headers=holder_auth,
                         json={"invoices": ledger + aside}), 201)  # fmt: skip
    other_auth = auth("policyholder", other["policyholder_id"])
    ok(await uw.post(f"/v1/policies/{other['id']}/declarations", headers=other_auth, json={
        "invoices": [{**aside[0], "number": "O-1", "buyer_id": buyer}]}), 201)  # fmt: skip
    days = sorted({first + dt.timedelta(days=d) for d in range(-2, 30)} | {dt.date(2027, 3, 1)})
    numbers = [None, "L-0", "L-1", "L-2", "L-3", "L-13", "L-59", "N-1", "O-1", "NOPE"]
    batch = [
        {"policy_id": policy["id"], "buyer_id": buyer, "invoice_amount": money("5000"),
         "shipment_date": day.isoformat(), "due_date": (day + dt.timedelta(days=90)).isoformat(),
         **({} if number is None else {"invoice_number": number})}
        for day in days for number in numbers[: 3 + day.toordinal() % 8]
    ] + [{"policy_id": other["id"], "buyer_id": buyer, "invoice_amount": money("5000"),
          "shipment_date": "2027-01-05", "due_date": "2027-03-05", "invoice_number": "L-1"}]  # fmt: skip
    results = await answers_match_single_checks(uw, batch, UW)  # both policies
    receivables = [
        rules.Receivable(
            i["number"], Decimal(i["amount"]["amount"]), dt.date.fromisoformat(i["shipment_date"]),
            Decimal(i["paid_amount"]["amount"]) if "paid_amount" in i else Decimal(0),
            dt.date.fromisoformat(i["paid_on"]) if "paid_on" in i else None)
        for i in ledger
    ]  # fmt: skip
    today = dt.date.fromisoformat(TODAY)
    exposures = set()
    for item, result in zip(batch[:-1], results, strict=False):
        expected = rules.exposure(receivables, today=today, excluding=item.get("invoice_number"),
                                  shipment_date=dt.date.fromisoformat(item["shipment_date"]))  # fmt: skip
        assert result["exposure"] == money_json(Money.rounded_of(expected, "EUR")), item
        exposures.add(expected)
    assert len(exposures) > 30  # the dates and the exclusions tell the items apart
    assert results[-1]["exposure"] == money("7000.00")  # the other policy's ledger
    assert {r["covered"] for r in results} == {True, False}


# ---------------------------------------------------------------- the batch's validation

# Each field mostly as a client writes it, now and then odd.
AMOUNT = st.sampled_from(
    ["1", "999.5", "1000.000", "12345678901234", "0.01", "00012"]
) | st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("99999999"), places=4).map(str)
ODD_AMOUNT = st.sampled_from([
    "0", "0.00", "-5", "1.001", "1.0001", "1.00001", "123456789012345", "1e3", " 10", "10 ",
    "1_000", "١٠", "NaN", "", ".5", "5.", "1.10000",
]) | st.decimals(allow_nan=False, allow_infinity=False).map(str) | st.integers() | st.floats()  # fmt: skip
CURRENCY = st.sampled_from(["EUR", "JPY", "KWD", "CLF", "USD", "CHF"])
ODD_CURRENCY = st.sampled_from(["XAU", "XYZ", "eur", "EU", "", "EURO", None])
DAY = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2999, 12, 31)).map(
    lambda d: d.isoformat()
)
ODD_DAY = st.sampled_from([
    "1899-12-31", "3000-01-01", "2027-02-30", "2027-02-01T00:00:00", "2027-02-01T10:00:00",
    "20270201", "", 1800000000, 0, None, "2027-2-1",
]) | st.dates().map(lambda d: d.isoformat())  # fmt: skip
IDENT = st.sampled_from(["pol_1", "buy_2", "x" * 64, "A.b:c-d_e"])
ODD_IDENT = st.sampled_from(["", "has space", "ä", "x" * 65, "a\x00", 7, "a\n", None])
INVOICE = st.sampled_from(["INV-1", "", "x" * 100, "a b ~!"]) | st.none()
ODD_INVOICE = st.sampled_from(["x" * 101, "ÄÖÜ", "tab\there", "nul\x00", 12, "\ud800"])


@st.composite
def raw_items(draw: st.DrawFn) -> Any:
    """A batch item as a client might write it: mostly well formed, now and then a field odd,
    missing or extra, or not an object at all."""

    def field(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
        return draw(odd if draw(st.integers(0, 7)) == 0 else usual)

    money: dict[str, Any] = {"amount": field(AMOUNT, ODD_AMOUNT),
                             "currency": field(CURRENCY, ODD_CURRENCY)}  # fmt: skip
    item: dict[str, Any] = {
        "policy_id": field(IDENT, ODD_IDENT), "buyer_id": field(IDENT, ODD_IDENT),
        "invoice_amount": money, "shipment_date": field(DAY, ODD_DAY),
        "due_date": field(DAY, ODD_DAY),
    }  # fmt: skip
    if draw(st.booleans()):
        item["invoice_number"] = field(INVOICE, ODD_INVOICE)
    if draw(st.integers(0, 15)) == 0:
        money["extra"] = 1
    if draw(st.integers(0, 15)) == 0:
        del item[draw(st.sampled_from(sorted(item)))]
    if draw(st.integers(0, 15)) == 0:
        item[draw(st.sampled_from(["extra", "invoice_amount"]))] = draw(
            st.none() | st.integers() | st.text(max_size=3)
        )
    return item if draw(st.integers(0, 19)) else draw(st.none() | st.text(max_size=3))


def by_the_model(raw: Any) -> Any:
    """What the model alone makes of an item: its values (the amount with its exponent), or the
    problem its validation gives."""
    try:
        model = CoverageCheckCreate.model_validate(raw)
    except ValidationError as exc:  # located from the body, as the single check locates it
        return validation_problem([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]).body()
    return (*model.model_dump().values(), model.invoice_amount.amount.as_tuple())


def by_the_batch(parsed: Any) -> Any:
    if isinstance(parsed, Problem):
        return parsed.body()
    money = parsed.invoice_amount
    return (parsed.policy_id, parsed.buyer_id, {"amount": money.amount, "currency": money.currency},
            parsed.shipment_date, parsed.due_date, parsed.invoice_number, money.amount.as_tuple())  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(raw_items(), min_size=1, max_size=8))
def test_a_batch_validates_each_item_as_the_model_does(raws: list[Any]) -> None:
    parsed = batch_items(raws)
    assert [by_the_batch(p) for p in parsed] == [by_the_model(raw) for raw in raws]
