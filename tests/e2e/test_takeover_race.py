"""A paid claim's message takes the policyholder's mandate over while the buyer's payments are being
recorded on it, over collections as a real process on PostgreSQL: however they interleave, every
recovery the claim's indemnity did not deduct is shared with the insurer to the cent (before the
takeover: shared again by it; after: shared as the subrogation case's), and the case owes what
the claim left unpaid less those recoveries."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter

import httpx
import pytest

from shared.calendar import today as business_today
from tests.builders import money
from tests.conftest import Services, auth, unique

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

COLLECTOR = auth("collector")
RECOVERIES = 20  # of 1,000 each, fired with the takeover among them


def day(offset: int) -> str:
    return (business_today("Asia/Shanghai") + dt.timedelta(days=offset)).isoformat()


async def test_recoveries_racing_the_takeover_of_their_mandate_are_all_shared(
    services: Services,
) -> None:
    """The claim counted 30,000 recovered on A and paid 76,000 against 50,000 + 40,000 unpaid.
    Each 1,000 recovered after it is fee 100, insurer 900 × 76,000 / 90,000 = 760, policyholder
    140, whether it was recorded before the takeover or after."""
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
        claim_id = unique("clm")
        takeover = {"creditor_id": creditor, "buyer_id": buyer["id"], "debtor_country": "DE",
                    "claim_id": claim_id, "indemnity_paid": money("76000.00"),
                    "invoices": [{**invoices[0], "amount": money("50000.00"),
                                  "recovered_in_collections": money("30000.00")},
                                 {**invoices[1], "recovered_in_collections": money("0.00")}]}  # fmt: skip
        requests = [cases.post(f"/v1/cases/{case_id}/payments", headers=COLLECTOR,
                               json={"amount": money("1000"), "received_on": day(0)})
                    for _ in range(RECOVERIES)]  # fmt: skip
        requests.insert(RECOVERIES // 2, cases.post("/v1/cases", headers=auth("service"),
                                                    json=takeover))  # fmt: skip
        answers = await asyncio.gather(*requests)
        assert Counter(a.status_code for a in answers) == {201: RECOVERIES + 1}, [
            a.text for a in answers if a.status_code != 201
        ]
        taken = (await cases.get(f"/v1/cases/{case_id}", headers=COLLECTOR)).json()
    shared_again = [a for a in taken["activities"] if "shared again" in (a["note"] or "")]
    print(f"\n{RECOVERIES} recoveries raced the takeover: {len(shared_again)} recorded before it "
          f"and shared again by it, {RECOVERIES - len(shared_again)} after")  # fmt: skip
    assert taken["claim_id"] == claim_id
    splits = Counter((p["amount"]["amount"], p["allocation"]["fee"]["amount"],
                      p["allocation"]["insurer"]["amount"],
                      p["allocation"]["policyholder"]["amount"]) for p in taken["payments"])  # fmt: skip
    assert splits == {("30000.00", "3000.00", "0.00", "27000.00"): 1,
                      ("1000.00", "100.00", "760.00", "140.00"): RECOVERIES}  # fmt: skip
    assert taken["outstanding"] == money(f"{90000 - 1000 * RECOVERIES}.00")
