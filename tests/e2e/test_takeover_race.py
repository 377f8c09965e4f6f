"""A paid claim's message takes the policyholder's mandate over while the buyer's payments are being
recorded on it, over collections as a real process on PostgreSQL: however they interleave, every
recovery the claim's indemnity did not deduct is shared with the insurer to the cent (before the
takeover: shared again by it; after: shared as the subrogation case's), and the case owes what
the claim left unpaid less those recoveries."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.collections import rules
from shared.calendar import today as business_today
from shared.money import Money
from tests.builders import money
from tests.conftest import Services, auth, unique

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

COLLECTOR = auth("collector")
RECOVERIES = 20  # of 1,000 each, fired with the takeover among them


def day(offset: int) -> str:
    return (business_today("Asia/Shanghai") + dt.timedelta(days=offset)).isoformat()


async def race_the_takeover(services: Services, amount: str, recoveries: int,
                            at: int) -> dict[str, Any]:  # fmt: skip
    """A mandate on A (80,000) and B (40,000) with 30,000 recovered on A; `recoveries` payments
    of `amount` fired at once with the takeover of a claim that counted those 30,000 and paid
    76,000 against 50,000 + 40,000 unpaid (inserted at `at` among them): the case taken over
    (how many of the payments it shared again, recorded before it, is printed)."""
    async with httpx.AsyncClient(base_url=services.urls["underwriting"], timeout=60) as uw:
        buyer = (await uw.post("/v1/buyers", headers=auth("underwriter"), json={
            "name": "Race GmbH", "country": "DE", "registration_number": unique("HRB")})).json()  # fmt: skip
    creditor = unique("ph")
    invoices = [{"number": "A", "amount": money("80000"), "due_date": day(-40)},
                {"number": "B", "amount": money("40000"), "due_date": day(-20)}]  # fmt: skip
    async with httpx.AsyncClient(base_url=services.urls["collections"], timeout=120) as cases:
        opened = await cases.post("/v1/cases", headers=auth("policyholder", creditor), json={
            "creditor_id": creditor, "buyer_id": buyer["id"], "debtor_country": "DE",
            "invoices": invoices})  # fmt: skip
        assert opened.status_code == 201, opened.text
        case_id = opened.json()["id"]
        first = await cases.post(f"/v1/cases/{case_id}/payments", headers=COLLECTOR,
                                 json={"amount": money("30000"), "received_on": day(0)})  # fmt: skip
        assert first.status_code == 201, first.text
        takeover = {"creditor_id": creditor, "buyer_id": buyer["id"], "debtor_country": "DE",
                    "claim_id": unique("clm"), "indemnity_paid": money("76000.00"),
                    "invoices": [{**invoices[0], "amount": money("50000.00"),
                                  "recovered_in_collections": money("30000.00")},
                                 {**invoices[1], "recovered_in_collections": money("0.00")}]}  # fmt: skip
        requests = [cases.post(f"/v1/cases/{case_id}/payments", headers=COLLECTOR,
                               json={"amount": money(amount), "received_on": day(0)})
                    for _ in range(recoveries)]  # fmt: skip
        requests.insert(at, cases.post("/v1/cases", headers=auth("service"), json=takeover))
        answers = await asyncio.gather(*requests)
        assert Counter(a.status_code for a in answers) == {201: recoveries + 1}, [
            a.text for a in answers if a.status_code != 201
        ]
        taken = (await cases.get(f"/v1/cases/{case_id}", headers=COLLECTOR)).json()
    assert taken["claim_id"] == takeover["claim_id"]
    shared_again = [a for a in taken["activities"] if "shared again" in (a["note"] or "")]
    print(f"\n{recoveries} recoveries of {amount} raced the takeover: {len(shared_again)} "
          f"shared again by it, {recoveries - len(shared_again)} after")  # fmt: skip
    return taken  # type: ignore[no-any-return]


async def test_recoveries_racing_the_takeover_of_their_mandate_are_all_shared(
    services: Services,
) -> None:
    """The claim counted 30,000 recovered on A and paid 76,000 against 50,000 + 40,000 unpaid.
    Each 1,000 recovered after it is fee 100, insurer 900 × 76,000 / 90,000 = 760, policyholder
    140, whether it was recorded before the takeover or after."""
    taken = await race_the_takeover(services, "1000", RECOVERIES, RECOVERIES // 2)
    splits = Counter((p["amount"]["amount"], p["allocation"]["fee"]["amount"],
                      p["allocation"]["insurer"]["amount"],
                      p["allocation"]["policyholder"]["amount"]) for p in taken["payments"])  # fmt: skip
    assert splits == {("30000.00", "3000.00", "0.00", "27000.00"): 1,
                      ("1000.00", "100.00", "760.00", "140.00"): RECOVERIES}  # fmt: skip
    assert taken["outstanding"] == money(f"{90000 - 1000 * RECOVERIES}.00")


ODD_RECOVERIES = 30  # of 1,000.01 each: each shared on its own, the insurer has a cent too many


async def test_recoveries_racing_the_takeover_share_their_whole_total_to_the_cent(
    services: Services,
) -> None:
    """As above, with thirty recoveries of 1,000.01 fired with the takeover among them: those
    recorded before it are shared again by it, the rest after it, and together they are shared as
    their 30,000.30 is: fee 3,000.03, insurer 27,000.27 × 76,000 / 90,000 = 22,800.23,
    policyholder 4,200.04 (each shared on its own, the insurer had 760.01 each: 22,800.30)."""
    taken = await race_the_takeover(services, "1000.01", ODD_RECOVERIES, ODD_RECOVERIES // 3)
    before, *after_claim = taken["payments"]
    assert (before["amount"]["amount"], before["allocation"]["insurer"]["amount"]) == (
        "30000.00", "0.00")  # fmt: skip
    for p in after_claim:
        a = p["allocation"]
        assert sum(Decimal(a[k]["amount"]) for k in ("fee", "insurer", "policyholder")) == Decimal(
            p["amount"]["amount"]) == Decimal("1000.01")  # fmt: skip
    parts = {k: sum((Decimal(p["allocation"][k]["amount"]) for p in after_claim), Decimal(0))
             for k in ("fee", "insurer", "policyholder")}  # fmt: skip
    assert parts == {"fee": Decimal("3000.03"), "insurer": Decimal("22800.23"),
                     "policyholder": Decimal("4200.04")}  # fmt: skip
    whole = rules.share_recovery(Money(Decimal("30000.30"), "EUR"), fee_pct=Decimal(10),
                                 share=rules.InsurerShare(Decimal(76000), Decimal(90000)))  # fmt: skip
    assert parts == {"fee": whole.fee.amount, "insurer": whole.insurer.amount,
                     "policyholder": whole.policyholder.amount}  # fmt: skip
    assert taken["outstanding"] == money("59999.70")
