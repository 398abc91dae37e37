import os
import threading
import time
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(autouse=True, scope="module")
def allow_orm_beside_playwright():
    """Playwright's sync API runs an event loop in this thread; Django's
    async-safety check would then refuse the ORM calls the tests make. Set
    per module, so it spans the database flush after each test, and undone
    after it, so it never leaks into other tests (the deploy check refuses it)."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def browser(allow_orm_beside_playwright):
    """Per module, not per session: while Playwright runs, this thread has an
    event loop, and tests outside this folder must not run beside it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def quiet_server(transactional_db, live_server):
    """On teardown, wait until the live server has answered every request.
    Closing a page sends beacons (autosave, heartbeat); one still running
    when the test database is flushed deadlocks the flush."""
    yield live_server
    deadline = time.monotonic() + 10
    quiet_since = None
    while time.monotonic() < deadline:
        busy = any("process_request_thread" in t.name for t in threading.enumerate() if t.is_alive())
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 0.5:
            return
        time.sleep(0.05)


@pytest.fixture
def page(browser, quiet_server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.js_errors = errors
    yield page
    from playwright.sync_api import Error as PlaywrightError

    try:
        page.goto("about:blank")  # fire pagehide while the page can still send its beacons
    except PlaywrightError:
        pass  # the test closed the page itself
    context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
