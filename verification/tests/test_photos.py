"""Photos on the card: the student sees, confirms or flags them, and photo flags reach CHSI as a zip.

A photo is checked like a field (students.fields.PHOTO_FIELDS): the same
services, the same review chain; its flag carries a reason instead of a value
and may bring a new photo as evidence.
"""

import io
import re
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from students.models import AccessEvent, Photo
from students.photos.services import photos_import
from students.tests.test_photos import jpeg, package
from verification import services
from verification.models import Checklist, Export, FieldCheck, Flag
from verification.tests.pages import html

pytestmark = pytest.mark.django_db

S = Flag.Status


def give_photo(tmp_path, student, kind="admission", **image):
    report = photos_import(path=package(tmp_path, {f"{student.student_number}.jpg": jpeg(**image)}), kind=kind)
    assert report.matched + report.replaced == 1, report.as_dict()
    return Photo.objects.get(student=student, kind=kind)


def row(page: str, code: str) -> str:
    match = re.search(rf'<li id="field-{code}".*?</li>', page, re.S)
    assert match, f"no row {code}"
    return match.group(0)


def checklist_url(campaign):
    return reverse("verification:checklist", args=[campaign.pk])


def test_the_card_shows_the_admission_photo_first_and_the_student_confirms_it(tmp_path, me_client, me, campaign):
    photo = give_photo(tmp_path, me)

    page = html(me_client.get(checklist_url(campaign)))

    codes = re.findall(r'<li id="field-([A-Z]+)"', page)
    assert codes[:2] == ["LQZP", "XM"]  # where CHSI's card shows it: above the name
    image = row(page, "LQZP")
    assert reverse("students:photo", args=[me.pk, "admission"]) in image
    # Lazy, with its box reserved (120 px wide, 120×160 scaled): the page does not jump when it arrives.
    assert 'loading="lazy"' in image and 'width="120"' in image and 'height="160"' in image
    assert "找不到录取照片" not in page

    me_client.post(reverse("verification:field_confirm", args=[campaign.pk, "LQZP"]), {"record_version": me.version})
    answer = FieldCheck.objects.get(checklist__student=me, field_code="LQZP")
    assert answer.status == FieldCheck.Status.CONFIRMED
    assert photo.sha256[:8] in answer.seen_value  # which picture the student looked at


def test_without_an_admission_photo_the_student_is_told_it_does_not_matter_and_can_finish(
    me_client, me, campaign, checklist
):
    page = html(me_client.get(checklist_url(campaign)))

    assert 'id="field-LQZP"' not in page
    assert "找不到录取照片不影响新生学籍核对" in page
    services.checklist_confirm_all(checklist_id=checklist.pk, record_version=me.version, by=me.user)
    assert Checklist.objects.get(pk=checklist.pk).state == Checklist.State.CONFIRMED


def test_a_photo_flag_needs_a_reason_and_an_explanation_but_no_value(tmp_path, me_client, me, campaign):
    give_photo(tmp_path, me)
    url = reverse("verification:field_flag", args=[campaign.pk, "LQZP"])

    form_page = html(me_client.get(url))
    assert reverse("students:photo", args=[me.pk, "admission"]) in form_page
    for reason in ("不是本人", "照片不清晰", "其他人的照片"):
        assert reason in form_page
    refused = me_client.post(url, {"record_version": me.version, "claimed_value": "不是本人"})
    assert refused.status_code == 200 and not Flag.objects.exists()  # the explanation is missing
    refused = me_client.post(url, {"record_version": me.version, "claimed_value": "张三", "explanation": "x"})
    assert refused.status_code == 200 and not Flag.objects.exists()  # not one of the reasons


def test_a_photo_flag_goes_through_the_review_chain_to_the_chsi_photo_zip(
    tmp_path, client, me_client, me, campaign, secretary, registrar
):
    give_photo(tmp_path, me)
    give_photo(tmp_path, me, kind="graduation", size=(480, 640))
    new_photo = jpeg(size=(480, 640), color=(30, 60, 220))

    response = me_client.post(
        reverse("verification:field_flag", args=[campaign.pk, "LQZP"]),
        {
            "record_version": me.version,
            "claimed_value": "其他人的照片",
            "explanation": "照片上是同宿舍的同学",
            "evidence": SimpleUploadedFile("me.jpg", new_photo, content_type="image/jpeg"),
        },
    )
    assert response.status_code == 302
    flag = Flag.objects.get(checklist__student=me, field_code="LQZP")
    assert (flag.status, flag.claimed_value, flag.evidence.count()) == (S.SUBMITTED, "其他人的照片", 1)
    assert "其他人的照片" in row(html(me_client.get(checklist_url(campaign))), "LQZP")

    # The department sees the student's photos side by side with the new one, and forwards the flag.
    client.force_login(secretary)
    queue = html(client.get(reverse("workspace:review_queue")))
    assert reverse("students:photo", args=[me.pk, "admission"]) in queue
    assert reverse("students:photo", args=[me.pk, "graduation"]) in queue
    assert reverse("verification:evidence_download", args=[flag.evidence.get().pk]) in queue
    assert "其他人的照片" in queue and "照片上是同宿舍的同学" in queue
    services.flag_transition(flag_id=flag.pk, to=S.FORWARDED, by=secretary)
    # Not the department's export: the zip carries full ID numbers.
    assert client.post(reverse("exports:photo_corrections_zip")).status_code in (403, 404)

    client.force_login(registrar)
    services.flag_transition(flag_id=flag.pk, to=S.ACCEPTED, by=registrar)
    assert "其他人的照片" in html(client.get(reverse("workspace:correction_queue")))
    response = client.post(reverse("exports:photo_corrections_zip"), {"campaign": campaign.pk})

    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert "no-store" in response["Cache-Control"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = archive.namelist()
    member = f"录取照片/{me.id_number}.jpg"  # named by 身份证号, as CHSI expects
    assert member in names and len([n for n in names if n.endswith(".jpg")]) == 1
    with Image.open(io.BytesIO(archive.read(member))) as sent:
        assert (sent.format, sent.size) == ("JPEG", (480, 640))  # the new photo, not the 120×160 one on file
    sheet = next(n for n in names if n.endswith(".xlsx"))
    assert archive.read(sheet).startswith(b"PK")
    export = Export.objects.get(kind="photo-corrections")
    assert (export.requested_by, export.row_count) == (registrar, 1)
    assert AccessEvent.objects.filter(action=AccessEvent.Action.EXPORT, user=registrar, rows=1).exists()


def test_a_photo_flag_without_a_new_photo_resubmits_the_photo_on_file(
    tmp_path, client, me, checklist, secretary, registrar
):
    photo = give_photo(tmp_path, me)
    flag = services.field_flag(
        checklist_id=checklist.pk,
        field_code="LQZP",
        claimed_value="照片不清晰",
        explanation="看不清",
        record_version=me.version,
        by=me.user,
    )
    services.flag_transition(flag_id=flag.pk, to=S.FORWARDED, by=secretary)
    client.force_login(registrar)

    response = client.post(reverse("exports:photo_corrections_zip"), {})
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))

    import hashlib

    assert hashlib.sha256(archive.read(f"录取照片/{me.id_number}.jpg")).hexdigest() == photo.sha256


def test_staff_see_the_graduation_photo_against_its_specification(tmp_path, client, me, campaign, secretary):
    give_photo(tmp_path, me)
    give_photo(tmp_path, me, kind="graduation", size=(300, 400), color=(240, 240, 240))
    client.force_login(secretary)

    page = html(client.get(reverse("workspace:student_record", args=[me.pk]) + f"?campaign={campaign.pk}"))

    assert reverse("students:photo", args=[me.pk, "admission"]) in page
    assert reverse("students:photo", args=[me.pk, "graduation"]) in page
    assert "尺寸应为 480×640 像素，实为 300×400" in page
    assert "背景看起来不是蓝色" in page


def confirm_photo(client, campaign, student, code="LQZP"):
    student.refresh_from_db()
    return client.post(
        reverse("verification:field_confirm", args=[campaign.pk, code]), {"record_version": student.version}
    )


def test_a_new_photo_reopens_the_confirmed_photo_and_the_student_confirms_it_again(
    tmp_path, me_client, me, campaign, checklist, django_capture_on_commit_callbacks
):
    old = give_photo(tmp_path, me)
    services.checklist_confirm_all(checklist_id=checklist.pk, record_version=me.version, by=me.user)
    finished_at = Checklist.objects.get(pk=checklist.pk).finished_at
    stale_version = me.version

    with django_capture_on_commit_callbacks(execute=True):
        new = give_photo(tmp_path, me, color=(200, 30, 30))

    answer = FieldCheck.objects.get(checklist=checklist, field_code="LQZP")
    assert answer.status == FieldCheck.Status.REOPENED
    assert old.sha256[:8] in answer.previous_value  # which picture the student had confirmed
    assert FieldCheck.objects.get(checklist=checklist, field_code="XM").status == FieldCheck.Status.CONFIRMED
    reopened = Checklist.objects.get(pk=checklist.pk)
    # Finished once, then reopened: the first finish stays (the progress history never drops).
    assert reopened.state == Checklist.State.IN_PROGRESS and reopened.finished_at == finished_at
    page = html(me_client.get(checklist_url(campaign)))
    image = row(page, "LQZP")
    assert "照片已更新，请查看新照片并重新核对。" in image
    # A new photo is a new address, so the browser cannot show the old one from its cache.
    assert f"?v={new.sha256[:12]}" in image and old.sha256[:12] not in image
    assert me_client.get(reverse("students:photo", args=[me.pk, "admission"])).getvalue() == jpeg(color=(200, 30, 30))

    # A page opened before the import showed the old photo: its answer is refused.
    me_client.post(reverse("verification:field_confirm", args=[campaign.pk, "LQZP"]), {"record_version": stale_version})
    assert FieldCheck.objects.get(pk=answer.pk).status == FieldCheck.Status.REOPENED

    confirm_photo(me_client, campaign, me)
    answer.refresh_from_db()
    assert answer.status == FieldCheck.Status.CONFIRMED and new.sha256[:8] in answer.seen_value
    assert Checklist.objects.get(pk=checklist.pk).state == Checklist.State.CONFIRMED
    assert "照片已更新" not in row(html(me_client.get(checklist_url(campaign))), "LQZP")


def test_the_identical_photo_again_reopens_nothing(tmp_path, me, checklist):
    give_photo(tmp_path, me)
    services.checklist_confirm_all(checklist_id=checklist.pk, record_version=me.version, by=me.user)
    version = Photo.objects.get(student=me).student.version

    report = photos_import(path=package(tmp_path, {f"{me.student_number}.jpg": jpeg()}, "again.zip"), kind="admission")

    assert (report.matched, report.replaced, report.unchanged) == (0, 0, 1)
    assert FieldCheck.objects.get(checklist=checklist, field_code="LQZP").status == FieldCheck.Status.CONFIRMED
    assert Checklist.objects.get(pk=checklist.pk).state == Checklist.State.CONFIRMED
    me.refresh_from_db()
    assert me.version == version  # an open page stays valid


def test_a_new_photo_answers_a_photo_flag_and_the_student_looks_again(tmp_path, me_client, me, checklist, secretary):
    give_photo(tmp_path, me)
    flag = services.field_flag(
        checklist_id=checklist.pk,
        field_code="LQZP",
        claimed_value="不是本人",
        explanation="照片上不是我",
        record_version=me.version,
        by=me.user,
    )
    services.flag_transition(flag_id=flag.pk, to=S.FORWARDED, by=secretary)

    give_photo(tmp_path, me, color=(10, 200, 10))

    flag.refresh_from_db()
    assert flag.status == S.CORRECTED
    assert flag.events.filter(note="照片导入带来了新照片").exists()
    assert FieldCheck.objects.get(checklist=checklist, field_code="LQZP").status == FieldCheck.Status.REOPENED
    assert Checklist.objects.get(pk=checklist.pk).state == Checklist.State.IN_PROGRESS


def test_a_first_photo_after_the_student_finished_is_one_more_thing_to_look_at(tmp_path, me, checklist):
    services.checklist_confirm_all(checklist_id=checklist.pk, record_version=me.version, by=me.user)
    assert Checklist.objects.get(pk=checklist.pk).state == Checklist.State.CONFIRMED

    give_photo(tmp_path, me)

    checklist = Checklist.objects.get(pk=checklist.pk)
    assert checklist.state == Checklist.State.IN_PROGRESS and checklist.finished_at is not None
