"""README.md's first example, run as a reader runs it: the shell block with the curl requests,
executed by bash against the services started as processes, on whatever day the test runs. Only
the address (`localhost:8001`, where `make up` serves underwriting) and the policyholder (`ph-1`,
made unique so the example can run beside other tests) are substituted; `.venv/bin/tci` is this
interpreter's own."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.conftest import ROOT, Services, unique

ADDRESS, POLICYHOLDER = "localhost:8001", "ph-1"
# Each curl answer is followed by its status on a line of its own, for the test to read.
STATUS_AFTER_EACH_ANSWER = """curl() { command curl -w '\\n%{http_code}\\n' "$@"; }\n"""


def first_example() -> str:
    """The first `sh` block of README.md that makes a request."""
    blocks: list[str] = re.findall(r"^```sh\n(.*?)^```", (ROOT / "README.md").read_text(),
                                   re.S | re.M)  # fmt: skip
    return next(block for block in blocks if "curl " in block)


def a_year_from(day: dt.date) -> dt.date:
    """The last day of a year that starts on `day`, as `date -d '+1 year -1 day'` counts it
    (29 February goes on to 1 March, then a day back)."""
    try:
        following = day.replace(year=day.year + 1)
    except ValueError:
        following = dt.date(day.year + 1, 3, 1)
    return following - dt.timedelta(days=1)


def answers_of(output: str) -> list[tuple[int, Any]]:
    """(status, JSON body) of each request, in order."""
    parts = re.split(r"\n(\d{3})\n", output)
    assert parts[-1].strip() == "", output
    return [(int(status), json.loads(body)) for body, status in zip(parts[0:-1:2], parts[1::2],
                                                                       strict=True)]  # fmt: skip


def test_the_first_example_holds_no_fixed_date() -> None:
    example = first_example()
    assert re.findall(r"\d{4}-\d{2}-\d{2}", example) == []
    assert "$(date -I)" in example


@pytest.mark.e2e
def test_the_first_example_works_against_the_services_on_the_day_it_runs(
    services: Services, tmp_path: Path
) -> None:
    example = first_example()
    assert ADDRESS in example and f'"{POLICYHOLDER}"' in example  # what is substituted
    policyholder = unique("ph-readme")
    script = example.replace(ADDRESS, services.urls["underwriting"]).replace(
        POLICYHOLDER, policyholder
    )
    venv = Path(sys.prefix)
    assert (venv / "bin" / "tci").exists(), f"no tci in {venv}: run the tests in the project's venv"
    (tmp_path / ".venv").symlink_to(venv)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TCI_ENV": "development",
           "TCI_JWT_SECRET": DEVELOPMENT_JWT_SECRET}  # fmt: skip
    before = dt.date.today()
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", STATUS_AFTER_EACH_ANSWER + script],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    after = dt.date.today()
    assert run.returncode == 0, run.stderr
    (created_status, policy), (listed_status, listed) = answers_of(run.stdout)

    assert created_status == 201, policy
    start = dt.date.fromisoformat(policy["start_date"])
    assert start in (before, after)  # `date -I`: the machine's day, as `date.today()` reads it
    assert policy["end_date"] == a_year_from(start).isoformat()
    assert (policy["policyholder_id"], policy["currency"], policy["max_liability"]) == (
        policyholder, "EUR", {"amount": "5000000.00", "currency": "EUR"})  # fmt: skip
    assert policy["indemnity_pct"]  # the defaults of domain.md filled in

    assert listed_status == 200, listed
    assert [p["id"] for p in listed["items"]] == [policy["id"]]


def test_a_year_ends_the_day_before_its_anniversary() -> None:
    assert a_year_from(dt.date(2026, 11, 24)) == dt.date(2027, 11, 23)
    assert a_year_from(dt.date(2028, 2, 29)) == dt.date(2029, 2, 28)
    assert a_year_from(dt.date(2027, 1, 1)) == dt.date(2027, 12, 31)


def test_the_client_example_holds_no_fixed_date() -> None:
    """The generated-client example asks about a shipment relative to the day it is run, so that
    it answers as it says on any day (a fixed date passes, and then it is not covered)."""
    blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)
    [example] = [block for block in blocks if "check_coverage" in block]
    assert re.findall(r"date\(\d{4}", example) == []
    assert "shipment_date=date.today() + timedelta(" in example
