"""Debian's Chromium driven by Playwright, and the checks a person would notice on every page.

Used by the end-to-end tests (``e2e/test_*.py``) and by ``bin/screenshots``.
Playwright never downloads a browser here: it is always given Debian's
``/usr/bin/chromium`` (or ``$CHROMIUM``).
"""

import os
import re
from pathlib import Path

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",  # containers and CI runners have no user namespaces for the sandbox
    "--disable-gpu",
    "--disable-dev-shm-usage",  # /dev/shm is tiny in containers
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 860}

# Every visible input, select and textarea a person fills in must say what it is:
# an associated <label> with text, aria-label or aria-labelledby.
UNLABELLED_FIELDS_JS = """
() => {
  const skip = new Set(["hidden", "submit", "button", "reset", "image"]);
  const missing = [];
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.tagName === "INPUT" && skip.has((el.getAttribute("type") || "text").toLowerCase())) continue;
    if (!el.getClientRects().length) continue;  // not rendered
    const byLabel = Array.from(el.labels || []).some((label) => label.textContent.trim());
    const byAria = (el.getAttribute("aria-label") || "").trim() || el.getAttribute("aria-labelledby");
    if (!byLabel && !byAria) missing.push(el.outerHTML.slice(0, 160));
  }
  return missing;
}
"""
SCROLL_WIDTH_JS = "() => [document.documentElement.scrollWidth, window.innerWidth]"


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)


class Person:
    """One person in their own browser context (own cookies), watched for what they would notice.

    ``open`` and ``submit`` navigate and fail on an HTTP error; ``audit`` checks
    the page now shown: no console errors so far, every form field labelled,
    nothing scrolling sideways at 360 px, and the page in the expected language.
    """

    def __init__(
        self, browser, base_url, *, viewport=DESKTOP, shots_dir=None, name="person", mobile=False, user_agent=None
    ):
        self.base_url = base_url.rstrip("/")
        self.context = browser.new_context(
            user_agent=user_agent,  # None: Chromium's own; a campus app's in-app browser names itself
            viewport=viewport,
            device_scale_factor=1,
            is_mobile=mobile,
            has_touch=mobile,
            accept_downloads=True,
            locale="zh-CN",
        )
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.viewport = viewport
        self.name = name
        self.language = "zh-hans"
        self.brand = "学籍核对"
        self.errors: list[str] = []
        self.audited: list[str] = []
        self.shots_dir = Path(shots_dir) if shots_dir else None
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _console(self, message):
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location.get('url', '')})")

    # -- navigation --------------------------------------------------------
    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}{path}"

    def open(self, path: str):
        response = self.page.goto(self.url(path))
        assert response is not None and response.ok, f"{self.name}: GET {path} → {response and response.status}"
        return response

    def submit(self, locator):
        """Click something that loads a new page (a form post and its redirect, or a link)."""
        with self.page.expect_navigation() as navigation:
            locator.click()
        response = navigation.value
        assert response is None or response.ok, (
            f"{self.name}: {response.request.method} {response.url} → {response.status}"
        )
        return response

    def follow_menu(self, href: str):
        """Follow a link of the header navigation; staff links sit in <details> menus, opened first."""
        link = self.page.locator(f"header nav a[href='{href}']").first
        menu = self.page.locator("header nav details", has=self.page.locator(f"a[href='{href}']"))
        for index in range(menu.count()):
            if not menu.nth(index).evaluate("menu => menu.open"):
                menu.nth(index).locator("summary").click()
        return self.submit(link)

    def sign_in(self, username: str, password: str):
        self.open("/accounts/login/")
        self.audit("login")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.submit(self.page.locator("main form button[type=submit]"))
        assert "/accounts/login/" not in self.page.url, f"{self.name} could not sign in as {username}"

    # -- what a person notices --------------------------------------------
    def audit(self, label: str):
        page = self.page
        where = f"{self.name} on {label} ({page.url})"
        assert not self.errors, f"{where}: " + "; ".join(self.errors)
        unlabelled = page.evaluate(UNLABELLED_FIELDS_JS)
        assert not unlabelled, f"{where}: form fields without a label: {unlabelled}"
        if self.viewport["width"] != PHONE["width"]:
            page.set_viewport_size(PHONE)  # staff pages must work on a phone too
        try:
            scroll_width, inner_width = page.evaluate(SCROLL_WIDTH_JS)
        finally:
            if self.viewport["width"] != PHONE["width"]:
                page.set_viewport_size(self.viewport)
        assert scroll_width <= inner_width, f"{where}: scrolls sideways at 360 px ({scroll_width} > {inner_width})"
        assert page.get_attribute("html", "lang") == self.language, f"{where}: not in {self.language}"
        assert self.brand in page.locator("header .brand").inner_text(), f"{where}: brand is not “{self.brand}”"
        self.audited.append(label)
        if self.shots_dir:
            self.shots_dir.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^a-z0-9]+", "-", f"{self.name}-{len(self.audited):02d}-{label}".lower())
            page.screenshot(path=self.shots_dir / f"{name}.png", full_page=True)

    def close(self):
        self.context.close()
