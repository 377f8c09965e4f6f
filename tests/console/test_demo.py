"""`python -m console.demo` loads the book into the services it is told of and prints the address
of the console that shows it: the console's port from its settings (`TCI_CONSOLE_PORT`), or the
base port `tci up --port-base` was given (the console on the base, the services above it)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import httpx
import pytest

from console import demo
from console.demo import Book
from tests.conftest import ROOT, _free_port, auth
from tests.console.conftest import Console


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, str]]:
    """`load_book` replaced by one that only notes the services' URLs it was given."""
    given: dict[str, dict[str, str]] = {}

    def load_book(urls: dict[str, str], secret: str, today: dt.date) -> Book:
        given["urls"] = urls
        return Book()

    monkeypatch.setattr(demo, "load_book", load_book)
    for name in ("TCI_CONSOLE_PORT", "TCI_UNDERWRITING_URL", "TCI_CLAIMS_URL",
                 "TCI_COLLECTIONS_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    return given


def printed_address(capsys: pytest.CaptureFixture[str]) -> str:
    [line] = [x for x in capsys.readouterr().out.splitlines() if "open the console" in x]
    return line.split("open the console at ", 1)[1]


def test_the_console_address_printed_is_the_port_its_settings_give(
    loaded: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    demo.main([])
    assert printed_address(capsys) == "http://127.0.0.1:8000/"
    monkeypatch.setenv("TCI_CONSOLE_PORT", "8765")
    demo.main([])
    assert printed_address(capsys) == "http://127.0.0.1:8765/"
    assert loaded["urls"]["collections"] == "http://127.0.0.1:8003"


def test_with_the_port_base_of_tci_up_the_services_and_the_console_are_found_there(
    loaded: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("TCI_CONSOLE_PORT", "8765")  # the base given on the command line wins
    demo.main(["--port-base", "9100"])
    assert printed_address(capsys) == "http://127.0.0.1:9100/"
    assert loaded["urls"] == {"underwriting": "http://127.0.0.1:9101",
                              "claims": "http://127.0.0.1:9102",
                              "collections": "http://127.0.0.1:9103"}  # fmt: skip
    demo.main(["--port-base", "9100", "--host", "localhost"])
    assert printed_address(capsys) == "http://localhost:9100/"
    assert loaded["urls"]["claims"] == "http://localhost:9102"


def test_a_port_base_that_puts_a_port_outside_the_range_is_refused(
    loaded: dict[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        demo.main(["--port-base", "65534"])
    assert exited.value.code == 2 and "outside 1-65535" in capsys.readouterr().err
    assert loaded == {}


def test_without_the_services_the_demo_says_so_in_one_line_and_fails() -> None:
    base = _free_port() // 10 * 10 or 20000  # nothing listens on its services' ports (likely)
    ran = subprocess.run([sys.executable, "-m", "console.demo", "--port-base", str(base)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert ran.returncode != 0
    assert "Traceback" not in ran.stderr and len(ran.stderr.strip().splitlines()) == 1
    assert "do not answer" in ran.stderr and "make up" in ran.stderr


def test_the_readme_says_how_far_past_due_the_demos_cases_are(console: Console) -> None:
    days = [overdue for _, overdue, *_ in demo.CASES]
    said = f"collection cases {min(days)} to {max(days)} days\npast due"
    assert said in (ROOT / "README.md").read_text()
    for stage, overdue, *_ in demo.CASES:
        case = httpx.get(f"{console.services['collections']}/v1/cases/{console.book.cases[stage]}",
                         headers=auth("collector"), timeout=10).json()  # fmt: skip
        assert case["days_past_due"] == overdue, stage
