"""A headless Chromium for the end-to-end tests, against the portal served by ``live_server``.

Skipped without PostgreSQL or without Chromium on a laptop; with
``REQUIRE_SERVICES=1`` (CI) either one missing is a failure.
"""

import os
import shutil

import pytest

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def _missing(reason):
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium():
    """One browser per module; each person gets their own context (cookies) from it."""
    from django.db import connection

    from .browser import CHROMIUM, launch

    # Checked here too, before the browser starts: the root conftest's guard only runs per test.
    if connection.vendor != "postgresql":
        _missing("needs PostgreSQL: set DATABASE_URL=postgres://…")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        _missing(f"needs Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM=…)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("needs the playwright package (requirements-dev.txt)")
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        # Playwright's sync API runs an asyncio event loop in the test thread, and
        # Django refuses ORM calls from a thread with a running loop; the test code
        # (factories, assertions, the database flush) is plain synchronous code.
        # Only while the browser runs, so other tests keep Django's guard.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def shots_dir():
    """Set E2E_SCREENSHOTS=DIR to keep a full-page picture of every page a journey audits."""
    return os.environ.get("E2E_SCREENSHOTS") or None
