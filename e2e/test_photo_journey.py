"""A student on a 360 px phone sees their 录取照片 on the card, where CHSI shows it, and confirms it.

The photo comes in through the real photo import (a zip named by 学号); the
browser loads it from its permission-checked address as a separate request.
With ``E2E_SCREENSHOTS=DIR`` the phone's screen is kept as
``DIR/student-photo-phone.png`` (the README's picture, docs/img/).
"""

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from students.photos.services import photos_import
from students.tests.factories import CohortFactory
from verification.models import Checklist, FieldCheck
from verification.tests.factories import PASSWORD, CampaignFactory, student_with_account

from .browser import PHONE, Person
from .test_journeys import answer_in_place

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("browser")]


def id_photo() -> bytes:
    """A synthetic 480×640 ID photo on a blue background: head and shoulders, nobody real."""
    image = Image.new("RGB", (480, 640), (62, 132, 214))
    draw = ImageDraw.Draw(image)
    draw.ellipse((70, 470, 410, 860), fill=(38, 42, 56))  # jacket
    draw.polygon([(200, 470), (240, 560), (280, 470)], fill=(245, 245, 245))  # collar
    draw.rectangle((208, 380, 272, 480), fill=(226, 186, 152))  # neck
    draw.ellipse((150, 170, 330, 410), fill=(236, 198, 164))  # face
    draw.chord((140, 130, 340, 330), 180, 360, fill=(34, 28, 24))  # hair
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def test_a_student_sees_their_photo_on_a_phone_and_confirms_it(
    chromium, live_server, transactional_db, tmp_path, shots_dir
):
    me = student_with_account(name="林晓雨", cohort=CohortFactory())
    campaign = CampaignFactory(name="2025级新生学籍核对", cohorts=[me.cohort])
    package = tmp_path / "录取照片.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr(f"{me.student_number}.jpg", id_photo())
    assert photos_import(path=package, kind="admission").matched == 1

    student = Person(chromium, live_server.url, viewport=PHONE, mobile=True, name="student", shots_dir=shots_dir)
    page = student.page
    try:
        student.sign_in(me.user.username, PASSWORD)
        student.open(f"/check/{campaign.pk}/")
        codes = page.eval_on_selector_all("li.check-row", "rows => rows.map((row) => row.id.slice(6))")
        assert codes[:2] == ["LQZP", "XM"], "the photo above the name, as on CHSI's card"

        photo = page.locator("#field-LQZP img")
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=photo.element_handle())
        assert photo.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [480, 640]
        box = photo.bounding_box()
        assert box["width"] == 120 and abs(box["height"] - 160) <= 1  # the card's photo box, the whole picture
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        assert "找不到录取照片" not in page.locator("main").inner_text()
        student.audit("checklist-with-photo")

        answer_in_place(student, "LQZP")

        answer = FieldCheck.objects.get(checklist__student=me, field_code="LQZP")
        assert answer.status == FieldCheck.Status.CONFIRMED
        assert answer.seen_value.startswith("480×640")  # which picture she looked at
        assert page.locator("#field-LQZP button.ok[aria-pressed=true]").count() == 1
        assert page.locator("#field-LQZP img").evaluate("img => img.complete && img.naturalWidth") == 480
        assert Checklist.objects.get(campaign=campaign, student=me).state == Checklist.State.IN_PROGRESS
        student.audit("photo-confirmed")
        if shots_dir:
            # The card from its heading: the photo, confirmed, above the name.
            page.evaluate("() => window.scrollTo(0, document.querySelector('.chsi-card').offsetTop - 8)")
            page.screenshot(path=Path(shots_dir) / "student-photo-phone.png")
    finally:
        student.close()
