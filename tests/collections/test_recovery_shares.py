"""Recoveries after a paid claim are shared exactly: the fee rounded once, the insurer's part the
exact proportion it bore the loss (never a rounded percentage) rounded once, the policyholder's
part the rest, so the parts add up to the payment."""

from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction
from typing import Any

import httpx
import pytest

from services.collections import rules
from shared.money import Money
from tests.builders import make_buyer, money, ok
from tests.claims.test_api import INVOICES, complete, insured
from tests.conftest import auth, unique

FEE = D(10)
COLLECTOR = auth("collector")


def split(amount: str, share: rules.InsurerShare | None) -> tuple[str, str, str]:
    parts = rules.share_recovery(Money(D(amount), "EUR"), fee_pct=FEE, share=share)
    assert parts.fee + parts.insurer + parts.policyholder == Money(D(amount), "EUR")
    return (str(parts.fee.amount), str(parts.insurer.amount), str(parts.policyholder.amount))


def test_the_domain_example_shares_a_recovery_to_the_cent() -> None:
    """85,000 paid against 120,000 unpaid, a recovery of 33,333.33: fee 3,333.33, insurer
    21,250.00, policyholder 8,750.00 (a share rounded to 70.8333% gave 21,249.99 / 8,750.01)."""
    share = rules.InsurerShare(D("85000.00"), D("120000.00"))
    assert split("33333.33", share) == ("3333.33", "21250.00", "8750.00")


@pytest.mark.parametrize(
    ("recovery", "fee", "insurer", "policyholder"),
    [
        ("100.00", "10.00", "30.00", "60.00"),
        ("33.33", "3.33", "10.00", "20.00"),
        ("0.05", "0.01", "0.01", "0.03"),  # fee 0.005 rounds half-up
        ("0.25", "0.03", "0.07", "0.15"),
        ("20.45", "2.05", "6.13", "12.27"),  # fee 2.045 rounds half-up
        ("1000.01", "100.00", "300.00", "600.01"),
        ("99999.99", "10000.00", "30000.00", "59999.99"),
        ("0.01", "0.00", "0.00", "0.01"),
    ],
)
def test_a_third_borne_by_the_insurer_is_a_third_of_each_recovery_after_the_fee(
    recovery: str, fee: str, insurer: str, policyholder: str
) -> None:
    """100,000 paid against 300,000 unpaid: the insurer bore exactly one third."""
    share = rules.InsurerShare(D("100000.00"), D("300000.00"))
    assert split(recovery, share) == (fee, insurer, policyholder)


def test_each_part_is_the_exact_amount_rounded_once_and_the_parts_always_add_up() -> None:
    share = rules.InsurerShare(D("100000.00"), D("300000.00"))
    for cents in [*range(1, 400), 3333333, 123456789, 99999999, 100000001]:
        amount = D(cents).scaleb(-2)
        fee, insurer, policyholder = (D(x) for x in split(str(amount), share))
        exact_fee = Fraction(amount) / 10
        exact_insurer = (Fraction(amount) - Fraction(fee)) / 3
        assert abs(Fraction(fee) - exact_fee) <= Fraction(1, 200)
        assert abs(Fraction(insurer) - exact_insurer) <= Fraction(1, 200)
        assert fee + insurer + policyholder == amount


def test_a_percentage_with_any_number_of_decimals_is_taken_exactly() -> None:
    third = rules.InsurerShare.from_pct(D("33.33333333333333333333333333333333"))
    assert split("20.45", third) == ("2.05", "6.13", "12.27")
    assert rules.allocate(Money(D("33333.33"), "EUR"), fee_pct=FEE,
                          insurer_share_pct=D("50")).insurer == Money(D("15000.00"), "EUR")  # fmt: skip


def test_before_a_claim_the_recovery_after_the_fee_is_the_policyholders() -> None:
    assert split("33333.33", None) == ("3333.33", "0.00", "30000.00")


# ---------------------------------------------------------------- over the API


@pytest.fixture
async def cases(api: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[httpx.AsyncClient, str]:
    monkeypatch.setenv("TCI_FIXED_TODAY", "2027-06-10")
    client: httpx.AsyncClient = await api.open("collections")
    buyer = await make_buyer(api("underwriting"))
    return client, buyer["id"]


def subrogation(buyer_id: str, **share: Any) -> dict[str, Any]:
    return {"creditor_id": unique("ph"), "buyer_id": buyer_id, "debtor_country": "DE",
            "claim_id": unique("clm"),
            "invoices": [{"number": "INV-1", "amount": money("80000"), "due_date": "2027-04-30"},
                         {"number": "INV-2", "amount": money("40000"), "due_date": "2027-05-19"}],
            **share}  # fmt: skip


async def test_a_case_opened_with_the_indemnity_paid_shares_recoveries_exactly(
    cases: tuple[httpx.AsyncClient, str],
) -> None:
    client, buyer_id = cases
    case = ok(await client.post("/v1/cases", headers=auth("service"), json=subrogation(
        buyer_id, indemnity_paid=money("85000.00"))), 201)  # fmt: skip
    assert case["insurer_share_pct"] == "70.8333"  # shown rounded; shared exactly, by
    assert case["insurer_share"] == {"numerator": "85000", "denominator": "120000"}
    paid = ok(await client.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR,
                                json={"amount": money("33333.33"),
                                      "received_on": "2027-06-10"}), 201)  # fmt: skip
    assert paid["allocation"] == {"fee": money("3333.33"), "insurer": money("21250.00"),
                                  "policyholder": money("8750.00")}  # fmt: skip


async def test_a_case_opened_with_a_percentage_of_many_decimals_keeps_it_exactly(
    cases: tuple[httpx.AsyncClient, str],
) -> None:
    client, buyer_id = cases
    case = ok(await client.post("/v1/cases", headers=auth("service"), json=subrogation(
        buyer_id, insurer_share_pct="33.333333333333333333333333333333333333")), 201)  # fmt: skip
    assert case["insurer_share"] == {"numerator": "33.333333333333333333333333333333333333",
                                     "denominator": "100"}  # fmt: skip
    paid = ok(await client.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR,
                                json={"amount": money("20.45"), "received_on": "2027-06-10"}),
              201)  # fmt: skip
    assert paid["allocation"] == {"fee": money("2.05"), "insurer": money("6.13"),
                                  "policyholder": money("12.27")}  # fmt: skip


async def test_an_indemnity_paid_beyond_the_invoices_or_in_another_currency_is_refused(
    cases: tuple[httpx.AsyncClient, str],
) -> None:
    client, buyer_id = cases
    service = auth("service")
    beyond = await client.post("/v1/cases", headers=service,
                               json=subrogation(buyer_id, indemnity_paid=money("120000.01")))  # fmt: skip
    assert beyond.status_code == 422, beyond.text
    other = await client.post("/v1/cases", headers=service,
                              json=subrogation(buyer_id, indemnity_paid=money("10", "USD")))  # fmt: skip
    assert other.status_code == 422 and other.json()["type"] == "currency-mismatch"
    both = await client.post("/v1/cases", headers=service, json=subrogation(
        buyer_id, indemnity_paid=money("10"), insurer_share_pct="10"))  # fmt: skip
    assert both.status_code == 422


async def test_a_claim_paid_in_process_hands_collections_the_indemnity_and_its_case_splits_right(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claims sends the indemnity paid (85,000 against 120,000 unpaid), not a rounded share."""
    monkeypatch.setenv("TCI_FIXED_TODAY", "2027-06-10")
    claims = await api.open("claims")
    uw, collections = api("underwriting"), api("collections")
    policy, buyer = await insured(uw)
    holder = auth("policyholder", policy["policyholder_id"])
    handler = auth("claims_handler")
    claim = ok(await claims.post("/v1/claims", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
        "event_date": "2027-06-01", "invoices": INVOICES}), 201)  # fmt: skip
    claim = await complete(claims, claim, holder)
    assessed = ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=handler), 200)
    assert assessed["indemnity"] == money("85000.00")
    ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=handler,
                         json={"decision": "approve", "reason": "ok"}), 200)  # fmt: skip
    paid = ok(await claims.post(f"/v1/claims/{claim['id']}/payment", headers=handler), 200)
    case_id = paid["collection_case_id"]
    assert case_id
    recovered = ok(await collections.post(f"/v1/cases/{case_id}/payments", headers=COLLECTOR,
                                          json={"amount": money("33333.33"),
                                                "received_on": "2027-06-10"}), 201)  # fmt: skip
    assert recovered["allocation"] == {"fee": money("3333.33"), "insurer": money("21250.00"),
                                       "policyholder": money("8750.00")}  # fmt: skip


# ---------------------------------------------------------------- recoveries in sequence


def shared_in_sequence(
    amounts: list[str], share: rules.InsurerShare | None
) -> list[rules.Allocation]:
    """Each recovery shared knowing what the case's earlier recoveries were shared as."""
    earlier = rules.Shared.nothing("EUR")
    parts = []
    for amount in amounts:
        part = rules.share_recovery(Money(D(amount), "EUR"), fee_pct=FEE, share=share,
                                    earlier=earlier)  # fmt: skip
        assert part.fee + part.insurer + part.policyholder == Money(D(amount), "EUR")
        assert min(part.fee.amount, part.insurer.amount, part.policyholder.amount) >= 0
        earlier = earlier.plus(Money(D(amount), "EUR"), part)
        parts.append(part)
    return parts


def totals(parts: list[rules.Allocation]) -> tuple[str, str, str]:
    return tuple(str(sum((getattr(p, k).amount for p in parts), D("0.00")))  # type: ignore[return-value]
                 for k in ("fee", "insurer", "policyholder"))  # fmt: skip


def test_recoveries_in_sequence_are_shared_as_their_total_would_be_to_the_cent() -> None:
    """Three recoveries of 11,111.11 are the domain example's 33,333.33: together fee 3,333.33,
    insurer 21,250.00, policyholder 8,750.00 (each rounded on its own, the insurer had
    21,249.99)."""
    share = rules.InsurerShare(D("85000.00"), D("120000.00"))
    assert totals(shared_in_sequence(["11111.11"] * 3, share)) == ("3333.33", "21250.00", "8750.00")


def test_many_small_recoveries_take_the_fee_and_the_shares_of_their_total() -> None:
    """A hundred recoveries of one cent are one euro: fee 0.10, insurer a third of 0.90; each
    rounded on its own, the fee was nothing and the insurer's a cent each time."""
    third = rules.InsurerShare(D("100000.00"), D("300000.00"))
    assert totals(shared_in_sequence(["0.01"] * 100, third)) == ("0.10", "0.30", "0.60")
    ninety = rules.InsurerShare(D("9000.00"), D("10000.00"))
    assert totals(shared_in_sequence(["333.33"] * 30, ninety)) == ("999.99", "8099.92", "899.99")


def test_a_recovery_after_parts_rounded_otherwise_is_never_shared_below_nothing() -> None:
    """Parts recorded before (each recovery rounded on its own: ten fees of 0.01 on 0.05) may
    stand above the total's share: the next recovery's parts stay between nothing and itself."""
    third = rules.InsurerShare(D("100000.00"), D("300000.00"))
    earlier = rules.Shared(amount=Money(D("0.50"), "EUR"), fee=Money(D("0.10"), "EUR"),
                           insurer=Money(D("0.10"), "EUR"))  # fmt: skip
    part = rules.share_recovery(Money(D("0.05"), "EUR"), fee_pct=FEE, share=third, earlier=earlier)
    assert (part.fee.amount, part.insurer.amount, part.policyholder.amount) == (
        D("0.00"), D("0.05"), D("0.00"))  # fmt: skip


async def test_recoveries_recorded_one_after_another_share_the_cases_total_exactly(
    cases: tuple[httpx.AsyncClient, str],
) -> None:
    client, buyer_id = cases
    case = ok(await client.post("/v1/cases", headers=auth("service"), json=subrogation(
        buyer_id, indemnity_paid=money("85000.00"))), 201)  # fmt: skip
    for _ in range(3):
        ok(await client.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR,
                             json={"amount": money("11111.11"), "received_on": "2027-06-10"}),
           201)  # fmt: skip
    seen = ok(await client.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)
    parts = {k: sum(D(p["allocation"][k]["amount"]) for p in seen["payments"])
             for k in ("fee", "insurer", "policyholder")}  # fmt: skip
    assert parts == {"fee": D("3333.33"), "insurer": D("21250.00"), "policyholder": D("8750.00")}


async def test_a_taken_over_mandate_shares_only_what_it_recovers_after_the_claim(
    cases: tuple[httpx.AsyncClient, str],
) -> None:
    """Recovered on the mandate before the claim: the policyholder's after the fee; what the same
    case recovers after the claim is shared as if the case had started then."""
    client, buyer_id = cases
    creditor = unique("ph")
    body = subrogation(buyer_id)
    mandate = ok(await client.post("/v1/cases", headers=auth("policyholder", creditor), json={
        **{k: body[k] for k in ("buyer_id", "debtor_country", "invoices")},
        "creditor_id": creditor}), 201)  # fmt: skip
    ok(await client.post(f"/v1/cases/{mandate['id']}/payments", headers=COLLECTOR,
                         json={"amount": money("0.05"), "received_on": "2027-06-10"}), 201)  # fmt: skip
    taken = ok(await client.post("/v1/cases", headers=auth("service"), json={
        **body, "creditor_id": creditor, "indemnity_paid": money("85000.00")}), 201)  # fmt: skip
    assert taken["id"] == mandate["id"]
    for _ in range(3):
        ok(await client.post(f"/v1/cases/{mandate['id']}/payments", headers=COLLECTOR,
                             json={"amount": money("11111.11"), "received_on": "2027-06-10"}),
           201)  # fmt: skip
    seen = ok(await client.get(f"/v1/cases/{mandate['id']}", headers=COLLECTOR), 200)
    first, *after = seen["payments"]
    assert first["allocation"] == {"fee": money("0.01"), "insurer": money("0.00"),
                                   "policyholder": money("0.04")}  # fmt: skip
    parts = {k: sum(D(p["allocation"][k]["amount"]) for p in after)
             for k in ("fee", "insurer", "policyholder")}  # fmt: skip
    assert parts == {"fee": D("3333.33"), "insurer": D("21250.00"), "policyholder": D("8750.00")}


K1 = {"number": "K1", "amount": money("80000"), "due_date": "2026-10-15"}
K3 = {"number": "K3", "amount": money("20000"), "due_date": "2026-11-01"}


async def mandate_on_k1_and_k3(
    client: httpx.AsyncClient, buyer_id: str
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A policyholder's mandate on K1 (80,000, due 15 October) and K3 (20,000, due 1 November):
    its creditor, the case, and K1 (the invoice a claim takes it over on)."""
    creditor = unique("ph")
    opened = ok(await client.post("/v1/cases", headers=auth("policyholder", creditor), json={
        "creditor_id": creditor, "buyer_id": buyer_id, "debtor_country": "DE",
        "invoices": [K1, K3]}), 201)  # fmt: skip
    return creditor, opened, K1


async def test_a_taken_over_mandate_shares_with_the_insurer_only_what_it_recovers_on_the_claims_invoices(
    cases: tuple[httpx.AsyncClient, str],
) -> None:
    """The trial's case: a mandate on K1 (80,000, due 15 October) and K3 (20,000, due 1
    November); a claim on K1 alone takes it over with 90% to the insurer, both invoices still on
    it. 100,000 recovered: fee 10,000, insurer 90% of K1's 72,000 after the fee = 64,800,
    policyholder K1's remaining 7,200 and K3's 18,000 = 25,200 (not 81,000 and 9,000)."""
    client, buyer_id = cases
    creditor, opened, k1 = await mandate_on_k1_and_k3(client, buyer_id)
    taken = ok(await client.post("/v1/cases", headers=auth("service"), json={
        "creditor_id": creditor, "buyer_id": buyer_id, "debtor_country": "DE",
        "claim_id": unique("clm"), "invoices": [k1], "insurer_share_pct": "90"}), 201)  # fmt: skip
    assert taken["id"] == opened["id"] and taken["outstanding"] == money("100000.00")
    paid = ok(await client.post(f"/v1/cases/{opened['id']}/payments", headers=COLLECTOR,
                                json={"amount": money("100000"), "received_on": "2027-06-10"}),
              201)  # fmt: skip
    assert paid["allocation"] == {"fee": money("10000.00"), "insurer": money("64800.00"),
                                  "policyholder": money("25200.00")}  # fmt: skip


def test_only_the_part_credited_to_the_claims_invoices_is_shared_with_the_insurer() -> None:
    """100,000 of which 80,000 on the claim's invoices, 90% to the insurer: fee 10,000, insurer
    64,800, policyholder 25,200. In two recoveries (60,000 on the claim's invoices, then 20,000
    on them and 20,000 beside) the case's parts are the same to the cent."""
    ninety = rules.InsurerShare.from_pct(D(90))
    eur = lambda x: Money(D(x), "EUR")  # noqa: E731
    once = rules.share_recovery(eur("100000"), fee_pct=FEE, share=ninety, claimed=eur("80000"))
    assert once == rules.Allocation(eur("10000.00"), eur("64800.00"), eur("25200.00"))
    assert rules.claimed_part([("K1", D("80000")), ("K3", D("20000"))], {"K1"}) == D("80000")
    first = rules.share_recovery(eur("60000"), fee_pct=FEE, share=ninety, claimed=eur("60000"))
    assert first == rules.Allocation(eur("6000.00"), eur("48600.00"), eur("5400.00"))
    earlier = rules.Shared.nothing("EUR").plus(eur("60000"), first, eur("60000"))
    second = rules.share_recovery(eur("40000"), fee_pct=FEE, share=ninety, earlier=earlier,
                                  claimed=eur("20000"))  # fmt: skip
    assert second == rules.Allocation(eur("4000.00"), eur("16200.00"), eur("19800.00"))
    # Nothing on the claim's invoices: the insurer has nothing of it.
    beside = rules.share_recovery(eur("1000"), fee_pct=FEE, share=ninety,
                                  earlier=earlier.plus(eur("40000"), second, eur("20000")),
                                  claimed=eur("0"))  # fmt: skip
    assert beside == rules.Allocation(eur("100.00"), eur("0.00"), eur("900.00"))
    # All of it on the claim's invoices: exactly as a subrogation case shares it.
    assert rules.share_recovery(
        eur("33333.33"), fee_pct=FEE, share=ninety, claimed=eur("33333.33")
    ) == split_as_today("33333.33", ninety)


def split_as_today(amount: str, share: rules.InsurerShare) -> rules.Allocation:
    return rules.share_recovery(Money(D(amount), "EUR"), fee_pct=FEE, share=share)


async def test_a_taken_over_mandate_shares_what_it_recovered_after_the_claim_as_one_amount(
    cases: tuple[httpx.AsyncClient, str],
) -> None:
    """30,000 then nineteen recoveries of 1,000.01 on the mandate; the claim counted 30,500 of
    them on INV-1 and paid 76,000 against 49,500 + 40,000 unpaid. Recovered after it: 500.01 of
    the first 1,000.01 and all of the other eighteen, 18,500.19, then 100.00 once taken over.
    The insurer has the parts of 18,500.19 and then of 18,600.19 shared as one amount (14,138.69
    and 14,215.12), not the sum of each recovery's own (764.25 for each whole 1,000.01: 14,138.63,
    0.06 short); each recovery still adds up, its fee kept as recorded, and the fee of the
    19,100.19 recovered since the first 1,000.01 is that of their total, 1,910.02."""
    client, buyer_id = cases
    creditor = unique("ph")
    body = subrogation(buyer_id)
    mandate = ok(await client.post("/v1/cases", headers=auth("policyholder", creditor), json={
        **{k: body[k] for k in ("buyer_id", "debtor_country", "invoices")},
        "creditor_id": creditor}), 201)  # fmt: skip
    for amount in ["30000.00"] + ["1000.01"] * 19:
        ok(await client.post(f"/v1/cases/{mandate['id']}/payments", headers=COLLECTOR,
                             json={"amount": money(amount), "received_on": "2027-06-10"}), 201)  # fmt: skip
    first, second = body["invoices"]
    taken = ok(await client.post("/v1/cases", headers=auth("service"), json={
        **body, "creditor_id": creditor, "indemnity_paid": money("76000.00"),
        "invoices": [{**first, "amount": money("49500.00"),
                      "recovered_in_collections": money("30500.00")},
                     {**second, "recovered_in_collections": money("0.00")}]}), 201)  # fmt: skip
    assert taken["id"] == mandate["id"]
    share = rules.InsurerShare(D("76000.00"), D("89500.00"))

    def shared_as_one(amount: str) -> D:
        return rules.share_recovery(
            Money(D(amount), "EUR"), fee_pct=FEE, share=share
        ).insurer.amount

    def summed(case: dict[str, Any]) -> dict[str, D]:
        for p in case["payments"]:
            a = p["allocation"]
            assert sum(D(a[k]["amount"]) for k in ("fee", "insurer", "policyholder")) == D(
                p["amount"]["amount"])  # fmt: skip
        return {k: sum(D(p["allocation"][k]["amount"]) for p in case["payments"][1:])
                for k in ("fee", "insurer", "policyholder")}  # fmt: skip

    assert shared_as_one("18500.19") == D("14138.69")
    assert summed(taken)["insurer"] == D("14138.69")
    ok(await client.post(f"/v1/cases/{mandate['id']}/payments", headers=COLLECTOR,
                         json={"amount": money("100.00"), "received_on": "2027-06-10"}), 201)  # fmt: skip
    seen = ok(await client.get(f"/v1/cases/{mandate['id']}", headers=COLLECTOR), 200)
    assert shared_as_one("18600.19") == D("14215.12")
    assert summed(seen) == {"fee": D("1910.02"), "insurer": D("14215.12"),
                            "policyholder": D("2975.05")}  # fmt: skip
    assert seen["payments"][0]["allocation"]["insurer"] == money("0.00")


async def test_what_a_mandate_recovered_after_the_claim_counts_once_beside_an_invoice_outside_it(
    cases: tuple[httpx.AsyncClient, str],
) -> None:
    """A mandate on K1 (80,000) and K3 (20,000), three recoveries of 1,000.01 on K1; a claim on
    K1 alone counted 1,500 of them and takes it over with 90% to the insurer. Recovered after
    it on K1: 500.02 of the second and all of the third, then 10,000.05: 11,500.08, whose
    insurer's part shared as one amount is (11,500.08 − 1,150.01) × 90% = 9,315.06 (each shared
    on its own: 9,315.07). Then 86,999.92 pays the case in full, 66,999.92 of it on K1 and K3's
    20,000 the policyholder's after the fee: 78,500 recovered on K1 after the claim, the
    insurer's part (78,500 − 7,850) × 90% = 63,585; the 499.99 of the second the claim counted
    is none of it."""
    client, buyer_id = cases
    creditor, opened, k1 = await mandate_on_k1_and_k3(client, buyer_id)

    async def recover(amount: str) -> dict[str, Any]:
        return ok(await client.post(f"/v1/cases/{opened['id']}/payments", headers=COLLECTOR,
                                    json={"amount": money(amount), "received_on": "2027-06-10"}),
                  201)  # fmt: skip

    async def summed() -> dict[str, D]:
        seen = ok(await client.get(f"/v1/cases/{opened['id']}", headers=COLLECTOR), 200)
        assert seen["payments"][0]["allocation"]["insurer"] == money("0.00")
        return {k: sum(D(p["allocation"][k]["amount"]) for p in seen["payments"])
                for k in ("fee", "insurer", "policyholder")}  # fmt: skip

    def insurer_of(recovered_after_claim: str) -> D:
        return rules.share_recovery(Money(D(recovered_after_claim), "EUR"), fee_pct=FEE,
                                    share=rules.InsurerShare.from_pct(D(90))).insurer.amount  # fmt: skip

    for _ in range(3):
        await recover("1000.01")
    ok(await client.post("/v1/cases", headers=auth("service"), json={
        "creditor_id": creditor, "buyer_id": buyer_id, "debtor_country": "DE",
        "claim_id": unique("clm"), "insurer_share_pct": "90",
        "invoices": [{**k1, "amount": money("78500"),
                      "recovered_in_collections": money("1500")}]}), 201)  # fmt: skip
    await recover("10000.05")
    assert (await summed())["insurer"] == insurer_of("11500.08") == D("9315.06")
    assert (await recover("86999.92"))["case_status"] == "closed"
    assert await summed() == {"fee": D("10000.00"), "insurer": D("63585.00"),
                              "policyholder": D("26415.00")}  # fmt: skip
    assert insurer_of("78500.00") == D("63585.00")
