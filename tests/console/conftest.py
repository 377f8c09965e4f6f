"""The console as a real process beside the three services, the demo book loaded through their
APIs, and Debian's Chromium driven by Playwright (the tests are skipped, visibly, without it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.demo import Book, load_book
from console.main import create_app
from console.settings import ConsoleSettings
from console.upstream import SERVICE_NAMES
from console.web import HOME_OF_ROLE
from shared.calendar import today as business_today
from shared.http import ServiceClient
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.conftest import ROOT, Services, _free_port

CHROMIUM = os.environ.get("TCI_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "var" / "screenshots"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@dataclass
class Console:
    url: str
    services: dict[str, str]
    book: Book


@contextmanager
def console_process(port: int, env: dict[str, str], log_prefix: str) -> Iterator[str]:
    """`python -m console` on `port` with `env`, its URL once `/healthz` answers (its log shown
    if it does not start within 30 s); stopped on leaving."""
    log = tempfile.NamedTemporaryFile(prefix=log_prefix, suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "console"], env=env, cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the console did not start:\n{Path(log.name).read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@asynccontextmanager
async def console_with_services(
    service: Callable[[httpx.Request], httpx.Response],
) -> AsyncIterator[httpx.AsyncClient]:
    """The console in process, read in zh-CN, with the three services it calls answered by
    `service` (which sees, and may record, every request the console makes of them)."""
    settings = ConsoleSettings(TCI_ENV="development", TCI_JWT_SECRET=DEVELOPMENT_JWT_SECRET)
    app = create_app(settings)
    app.state.clients = {
        name: ServiceClient(f"http://{name}.test", jwt_secret=DEVELOPMENT_JWT_SECRET,
                            caller_name="console", transport=httpx.MockTransport(service))
        for name in SERVICE_NAMES
    }  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://console.test",
                                 headers={"Accept-Language": "zh-CN"}) as client:  # fmt: skip
        yield client


@pytest.fixture(scope="session")
def console(services: Services) -> Iterator[Console]:
    """`python -m console` on a free port, knowing the services by their test URLs, with the
    demo book loaded."""
    port = _free_port()
    env = {**os.environ, "TCI_CONSOLE_PORT": str(port), "TCI_JWT_SECRET": DEVELOPMENT_JWT_SECRET,
           "TCI_UNDERWRITING_URL": services.urls["underwriting"],
           "TCI_CLAIMS_URL": services.urls["claims"],
           "TCI_COLLECTIONS_URL": services.urls["collections"], "TCI_LOG_LEVEL": "WARNING"}  # fmt: skip
    with console_process(port, env, "tci-console-") as url:
        book = load_book(services.urls, DEVELOPMENT_JWT_SECRET, business_today("Asia/Shanghai"))
        yield Console(url, services.urls, book)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one module: Playwright's sync API runs its own event loop, which must be
    gone before the suite's asyncio tests run again."""
    missing = browser_missing()
    if missing:
        pytest.skip(f"browser tests skipped: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox"])  # fmt: skip
        yield launched
        launched.close()


class Page:
    """A browser tab for one person, in one language, that records console errors."""

    def __init__(self, browser: Any, console: Console, locale: str) -> None:
        self.context = browser.new_context(locale=locale, viewport={"width": 1366, "height": 800},
                                           extra_http_headers={"Accept-Language": locale},
                                           accept_downloads=True)  # fmt: skip
        self.page = self.context.new_page()
        self.console = console
        self.errors: list[str] = []
        self.page.on("console", self._console_message)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _console_message(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def open(self, path: str) -> Any:
        self.page.goto(self.console.url + path)
        return self.page

    def sign_in(self, role: str, name: str) -> Any:
        page = self.open("/sign-in")
        page.locator(f"input[name=role][value={role}]").check()
        page.locator("#name").fill(name)
        page.locator("form.card button[type=submit]").click()
        page.wait_for_url(f"**{HOME_OF_ROLE[role]}")
        page.wait_for_load_state("networkidle")
        return page

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def tab(browser: Any, console: Console) -> Iterator[Any]:
    """Open tabs with `tab(locale)`; at the end no page has logged a console error."""
    opened: list[Page] = []

    def open_tab(locale: str = "en-GB") -> Page:
        opened.append(Page(browser, console, locale))
        return opened[-1]

    yield open_tab
    errors = [error for page in opened for error in page.errors]
    for page in opened:
        page.context.close()
    assert errors == [], errors
