"""Take the README's pictures from a running demo portal (``bin/screenshots`` starts one).

    python -m e2e.screenshots --base-url http://127.0.0.1:PORT --student 学号 --out docs/screenshots

Signs in as the demo accounts (``manage.py seed_demo``), lets the demo student
confirm a few fields and flag one (so the phone card and the review queue show
both), and saves PNGs at device scale 1.  Every page is audited like in the
end-to-end tests, so a layout problem stops the pictures being taken.
"""

import argparse
import io
import sys
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from .browser import DESKTOP, PHONE, Person, launch

DEMO_PASSWORD = "rollcheck-demo"


def evidence_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (480, 320), (235, 238, 242)).save(out, "PNG")
    return out.getvalue()


def shoot(page, path: Path, *, max_height=None):
    """A full-page picture, cut at ``max_height`` pixels when the page is longer."""
    height = page.evaluate("document.documentElement.scrollHeight")
    clip = None
    if max_height and height > max_height:
        clip = {"x": 0, "y": 0, "width": page.viewport_size["width"], "height": max_height}
    page.screenshot(path=path, full_page=True, clip=clip)


def student_card(browser, base_url, student_number, out: Path):
    student = Person(browser, base_url, viewport=PHONE, mobile=True, name="student")
    page = student.page
    student.sign_in(student_number, DEMO_PASSWORD)
    if "/check/" not in page.url or page.locator("li.check-row").count() == 0:
        student.open("/check/")
        student.submit(page.locator("main h2 a").first)
    student.audit("checklist")
    for code in ("XM", "XB", "CSRQ"):
        student.submit(page.locator(f"#field-{code} button.ok"))
    if page.locator("#field-MZ .flag-status").count() == 0:
        student.submit(page.locator("#field-MZ a.button.bad"))
        page.select_option("#id_claimed_value", "回族")
        page.fill("#id_explanation", "户口簿上登记为回族")
        if page.locator("#id_evidence").count():
            page.set_input_files(
                "#id_evidence", files=[{"name": "户口簿.png", "mimeType": "image/png", "buffer": evidence_png()}]
            )
        student.submit(page.locator("main form button[type=submit]"))
    page.evaluate("window.scrollTo(0, 0)")
    student.audit("checklist-answered")
    # The top of the card: the status, the first answered fields and the flagged one.
    shoot(page, out / "student-phone.png", max_height=1180)
    student.close()


def department(browser, base_url, out: Path):
    secretary = Person(browser, base_url, viewport=DESKTOP, name="secretary")
    secretary.sign_in("secretary", DEMO_PASSWORD)
    secretary.open("/workspace/")
    secretary.audit("dashboard")
    shoot(secretary.page, out / "department-dashboard.png")
    secretary.open("/workspace/review/")
    secretary.audit("review-queue")
    # The filters, the bulk actions and the first flags; the whole queue would be very long.
    shoot(secretary.page, out / "review-queue.png", max_height=1300)
    secretary.close()


def school(browser, base_url, out: Path):
    registrar = Person(browser, base_url, viewport=DESKTOP, name="registrar")
    registrar.sign_in("registrar", DEMO_PASSWORD)
    registrar.open("/workspace/school/")
    registrar.audit("school")
    assert registrar.page.locator("figure.chart svg").count() == 1, "no progress chart on the school page"
    shoot(registrar.page, out / "school-progress.png")
    registrar.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--student", required=True, help="the demo student's 学号 (username)")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            student_card(browser, args.base_url, args.student, args.out)
            department(browser, args.base_url, args.out)
            school(browser, args.base_url, args.out)
        finally:
            browser.close()
    for path in sorted(args.out.glob("*.png")):
        print(f"{path}  {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    sys.exit(main())
