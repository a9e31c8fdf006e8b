"""Photo packages: every bad member reported, a broken package refused whole, photos served only in scope."""

import io
import json
import os
import time
import zipfile
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from PIL import Image

from students import signals
from students.models import AccessEvent, Photo
from students.photos import services as photo_services
from students.photos.services import pack_path, path_of, photo_bytes, photo_spec_problems, photos_import
from students.tests.factories import StudentFactory

pytestmark = pytest.mark.django_db


def jpeg(size=(120, 160), color=(40, 90, 200), quality=85) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG", quality=quality)
    return out.getvalue()


def png(size=(120, 160)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "white").save(out, "PNG")
    return out.getvalue()


def package(tmp_path, members: dict, name="photos.zip", compression=zipfile.ZIP_STORED):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", compression) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


@pytest.fixture
def students(department):
    return [StudentFactory(department=department) for _ in range(3)]


def test_photos_named_by_any_key_are_matched_and_stored_privately(tmp_path, students):
    a, b, c = students
    report = photos_import(
        path=package(
            tmp_path,
            {f"{a.student_number}.jpg": jpeg(), f"dir/{b.id_number}.JPG": jpeg(), f"{c.exam_number}.jpg": jpeg()},
        ),
        kind="admission",
    )
    assert report.as_dict() == {"matched": 3, "replaced": 0, "unchanged": 0, "unmatched": [], "errors": []}
    photo = Photo.objects.get(student=b, kind="admission")
    assert (photo.width, photo.height) == (120, 160)
    assert photo_bytes(photo) == jpeg()
    assert pack_path(photo.pack).stat().st_mode & 0o777 == 0o600  # private to the portal's user


def test_a_second_package_reports_unchanged_and_replaced(tmp_path, students, django_capture_on_commit_callbacks):
    a, b, _c = students
    photos_import(
        path=package(tmp_path, {f"{a.student_number}.jpg": jpeg(), f"{b.student_number}.jpg": jpeg()}), kind="admission"
    )
    old = Photo.objects.get(student=b)
    with django_capture_on_commit_callbacks(execute=True):
        report = photos_import(
            path=package(
                tmp_path,
                {f"{a.student_number}.jpg": jpeg(), f"{b.student_number}.jpg": jpeg(color=(0, 0, 250))},
                "2.zip",
            ),
            kind="admission",
        )
    assert (report.matched, report.replaced, report.unchanged) == (0, 1, 1)
    # The replaced photo's bytes are gone (the pack held only the two: a's is still in use).
    assert jpeg() in pack_path(old.pack).read_bytes()
    assert pack_path(old.pack).read_bytes()[old.offset : old.offset + old.size] == bytes(old.size)
    assert Photo.objects.count() == 2


def test_every_bad_member_is_listed_with_its_reason_and_the_rest_imported(tmp_path, students, department):
    a, b, c = students
    twin1, twin2 = StudentFactory(department=department), StudentFactory(department=department)
    twin2.exam_number = twin1.exam_number
    twin2.save()
    members = {
        f"{a.student_number}.jpg": jpeg(),
        "notes.jpg": b"hello, not a photo",
        f"{b.student_number}.jpg": png(),  # a PNG renamed
        f"{c.student_number}.jpg": jpeg(size=(50, 50)),  # too small to be a photo
        "2099999999.jpg": jpeg(),  # nobody
        f"{twin1.exam_number}.jpg": jpeg(),  # two students
        f"{a.id_number}.jpg": jpeg(color=(1, 2, 3)),  # the same student again
        "big.jpg": b"\xff\xd8\xff" + b"\x00" * (2 * 1024 * 1024 + 10) + b"\xff\xd9",
    }
    report = photos_import(path=package(tmp_path, members), kind="admission")
    reasons = {item["file"]: item["reason"] for item in report.unmatched}
    assert report.matched == 1
    assert "非 JPEG" in reasons["notes.jpg"]
    assert "PNG" in reasons[f"{b.student_number}.jpg"]
    assert "尺寸" in reasons[f"{c.student_number}.jpg"]
    assert "没有对应的学生" in reasons["2099999999.jpg"]
    assert "2 名学生" in reasons[f"{twin1.exam_number}.jpg"]
    assert "同一名学生" in reasons[f"{a.id_number}.jpg"]
    assert "过大" in reasons["big.jpg"]
    assert report.errors == []


@pytest.mark.parametrize("bad", ["../escape.jpg", "/etc/passwd.jpg"])
def test_a_path_that_climbs_out_refuses_the_whole_package(tmp_path, students, bad):
    a = students[0]
    report = photos_import(path=package(tmp_path, {f"{a.student_number}.jpg": jpeg(), bad: jpeg()}), kind="admission")
    assert report.errors and "越出目录" in report.errors[0]["message"]
    assert report.matched == 0
    assert not Photo.objects.exists()


def test_a_zip_bomb_refuses_the_whole_package(tmp_path, students):
    a = students[0]
    path = package(
        tmp_path,
        {f"{a.student_number}.jpg": jpeg(), "bomb.jpg": b"\x00" * (20 * 1024 * 1024)},
        compression=zipfile.ZIP_DEFLATED,
    )
    report = photos_import(path=path, kind="admission")
    assert report.errors and "压缩炸弹" in report.errors[0]["message"]
    assert not Photo.objects.exists()
    assert not any(p.is_file() for p in (tmp_path / "private").rglob("*.jpg"))


def test_not_a_zip_is_an_error(tmp_path, students):
    path = tmp_path / "photos.zip"
    path.write_bytes(b"not a zip")
    assert photos_import(path=path, kind="admission").errors


def test_the_command_prints_the_stable_report_and_dry_run_writes_nothing(tmp_path, students):
    a = students[0]
    path = package(tmp_path, {f"{a.student_number}.jpg": jpeg(), "nobody.jpg": jpeg()})
    out = StringIO()
    call_command(
        "import_photos", str(path), "--kind", "graduation", "--key", "xh", "--dry-run", "--format", "json", stdout=out
    )
    report = json.loads(out.getvalue())
    assert report == {
        "matched": 1,
        "replaced": 0,
        "unchanged": 0,
        "unmatched": [{"file": "nobody.jpg", "reason": "没有对应的学生"}],
        "errors": [],
    }
    assert not Photo.objects.exists()


def test_graduation_photos_are_checked_against_the_specification(tmp_path, students):
    a, b, _c = students
    photos_import(
        path=package(
            tmp_path,
            {
                f"{a.student_number}.jpg": jpeg((480, 640), quality=60),
                f"{b.student_number}.jpg": jpeg((600, 800), (250, 250, 250)),
            },
        ),
        kind="graduation",
    )
    assert photo_spec_problems(Photo.objects.get(student=a)) == []
    problems = photo_spec_problems(Photo.objects.get(student=b))
    assert any("480×640" in p for p in problems)
    assert any("蓝色" in p for p in problems)


@pytest.fixture
def photographed(tmp_path, department, other_department):
    from verification.tests.factories import student_with_account

    own = student_with_account(department=department)
    other = student_with_account(department=other_department)
    photos_import(
        path=package(tmp_path, {f"{own.student_number}.jpg": jpeg(), f"{other.student_number}.jpg": jpeg()}),
        kind="admission",
    )
    return own, other


def test_a_student_sees_their_own_photo_privately_cached(client, photographed):
    own, other = photographed
    client.force_login(own.user)
    response = client.get(reverse("students:photo", args=[own.pk, "admission"]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "private, max-age=600"
    assert b"".join(response.streaming_content) == jpeg()
    assert client.get(reverse("students:photo", args=[other.pk, "admission"])).status_code == 404
    assert client.get(reverse("students:photo", args=[own.pk, "graduation"])).status_code == 404
    assert not AccessEvent.objects.filter(action=AccessEvent.Action.PHOTO_VIEW).exists()


def test_staff_see_photos_in_their_scope_only_and_each_view_is_logged(client, photographed, secretary):
    own, other = photographed
    client.force_login(secretary)
    assert client.get(reverse("students:photo", args=[own.pk, "admission"])).status_code == 200
    assert client.get(reverse("students:photo", args=[other.pk, "admission"])).status_code == 404
    event = AccessEvent.objects.get(action=AccessEvent.Action.PHOTO_VIEW)
    assert (event.user, event.student) == (secretary, own)


def test_anonymous_visitors_are_sent_to_sign_in(client, photographed):
    own, _other = photographed
    response = client.get(reverse("students:photo", args=[own.pk, "admission"]))
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_the_frame_header_is_read_from_baseline_and_progressive_jpegs_and_garbage_is_refused():
    from students.photos.services import photo_check

    out = io.BytesIO()
    Image.new("RGB", (480, 640), (40, 90, 200)).save(out, "JPEG", progressive=True, quality=70)
    assert photo_check(out.getvalue()) == (480, 640)
    assert photo_check(jpeg((300, 400))) == (300, 400)
    with pytest.raises(ValueError, match="照片无法读取"):
        photo_check(b"\xff\xd8\xff\xe0" + b"\x00\x10garbage-garbage" + b"\x01" * 200 + b"\xff\xd9")
    with pytest.raises(ValueError, match="照片无法读取"):
        photo_check(jpeg()[:20] + b"\xff\xd9")  # cut off before the frame header


def test_photos_imported_before_packs_are_still_served(client, students):
    """Rows from before pack files name a file of their own: served the same way, deleted with the row."""
    a = students[0]
    from verification.tests.factories import student_with_account

    me = student_with_account(department=a.department)
    path_of("ab" + "0" * 30 + ".jpg").parent.mkdir(parents=True)
    path_of("ab" + "0" * 30 + ".jpg").write_bytes(jpeg())
    Photo.objects.create(
        student=me, kind="admission", storage_name="ab" + "0" * 30 + ".jpg", sha256="0" * 64, width=120, height=160,
        size=len(jpeg()),
    )  # fmt: skip
    client.force_login(me.user)
    response = client.get(reverse("students:photo", args=[me.pk, "admission"]))
    assert response.status_code == 200 and b"".join(response.streaming_content) == jpeg()
    assert response["Cache-Control"] == "private, max-age=600"


def test_deleting_photos_overwrites_their_bytes_and_an_empty_pack_goes(
    tmp_path, students, django_capture_on_commit_callbacks
):
    a, b, _c = students
    red, green = jpeg(color=(200, 0, 0)), jpeg(color=(0, 200, 0))
    photos_import(
        path=package(tmp_path, {f"{a.student_number}.jpg": red, f"{b.student_number}.jpg": green}), kind="admission"
    )
    photo_a, photo_b = Photo.objects.get(student=a), Photo.objects.get(student=b)
    pack = pack_path(photo_a.pack)
    assert photo_a.pack == photo_b.pack and red in pack.read_bytes() and green in pack.read_bytes()

    with django_capture_on_commit_callbacks(execute=True):
        a.delete()  # a student removed: their photo goes with them (cascade)
    stored = pack.read_bytes()
    assert red not in stored and stored[photo_a.offset : photo_a.offset + photo_a.size] == bytes(photo_a.size)
    assert green in stored and photo_bytes(photo_b) == green

    with django_capture_on_commit_callbacks(execute=True):
        photo_b.delete()
    assert not pack.exists()  # no photo left in it


def test_a_failed_import_saves_nothing_and_leaves_no_pack_behind(tmp_path, students, monkeypatch):
    a, b, c = students
    photos_import(path=package(tmp_path, {f"{a.student_number}.jpg": jpeg()}), kind="admission")
    before = sorted(p.name for p in photo_services.packs_dir().iterdir())

    def downstream_fails(sender, added, **kwargs):
        if c.pk in added:
            raise RuntimeError("the database went away")

    # One photo at a time: the first photos are saved (and written to the pack) before the failure.
    monkeypatch.setattr(photo_services, "WRITE_BATCH", 1)
    signals.photos_imported.connect(downstream_fails)
    try:
        with pytest.raises(RuntimeError):
            photos_import(
                path=package(
                    tmp_path,
                    {
                        f"{a.student_number}.jpg": jpeg(color=(0, 0, 250)),
                        f"{b.student_number}.jpg": jpeg(),
                        f"{c.student_number}.jpg": jpeg(),
                    },
                    "2.zip",
                ),
                kind="admission",
            )
    finally:
        signals.photos_imported.disconnect(downstream_fails)
    assert sorted(p.name for p in photo_services.packs_dir().iterdir()) == before
    assert list(Photo.objects.values_list("student_id", flat=True)) == [a.pk]
    assert photo_bytes(Photo.objects.get()) == jpeg()  # a's photo was not replaced


def test_a_failure_while_writing_the_pack_aborts_the_import_and_leaves_nothing(tmp_path, students, monkeypatch):
    a, b, c = students
    photos_import(path=package(tmp_path, {f"{a.student_number}.jpg": jpeg()}), kind="admission")
    before = sorted(p.name for p in photo_services.packs_dir().iterdir())
    write = photo_services._PackWriter.write
    written = []

    def disk_full(self, data):
        # Hashing and writing run in the import's second thread: its failure must reach the caller.
        if len(written) == 2:
            raise OSError(28, "No space left on device")
        written.append(data)
        return write(self, data)

    # One photo per hand-off and per saved batch: rows are saved before the failure.
    monkeypatch.setattr(photo_services, "HAND_OFF", 1)
    monkeypatch.setattr(photo_services, "WRITE_BATCH", 1)
    monkeypatch.setattr(photo_services._PackWriter, "write", disk_full)
    members = {f"{s.student_number}.jpg": jpeg(color=(i * 50, 0, 250)) for i, s in enumerate(students)}
    with pytest.raises(OSError, match="No space left"):
        photos_import(path=package(tmp_path, members, "2.zip"), kind="admission")

    assert len(written) == 2
    assert sorted(p.name for p in photo_services.packs_dir().iterdir()) == before
    assert list(Photo.objects.values_list("student_id", flat=True)) == [a.pk]
    assert photo_bytes(Photo.objects.get()) == jpeg()  # a's photo was not replaced


def test_importing_the_identical_package_again_changes_nothing(tmp_path, students):
    path = package(tmp_path, {f"{s.student_number}.jpg": jpeg(color=(i * 50, 0, 200)) for i, s in enumerate(students)})
    photos_import(path=path, kind="admission")
    rows = list(Photo.objects.order_by("pk").values())
    packs = {p.name: p.read_bytes() for p in photo_services.packs_dir().iterdir()}

    report = photos_import(path=path, kind="admission")

    assert report.as_dict() == {"matched": 0, "replaced": 0, "unchanged": 3, "unmatched": [], "errors": []}
    assert list(Photo.objects.order_by("pk").values()) == rows
    assert {p.name: p.read_bytes() for p in photo_services.packs_dir().iterdir()} == packs


def test_the_scheduled_sweep_removes_packs_no_photo_names_once_a_day_old(tmp_path, students):
    photos_import(path=package(tmp_path, {f"{students[0].student_number}.jpg": jpeg()}), kind="admission")
    live = pack_path(Photo.objects.get().pack)
    stale, fresh = pack_path("a" * 32 + ".pack"), pack_path("b" * 32 + ".pack")
    stale.write_bytes(jpeg())
    fresh.write_bytes(jpeg())
    os.utime(stale, (time.time() - 2 * 86400,) * 2)
    os.utime(live, (time.time() - 2 * 86400,) * 2)

    assert photo_services.photos_sweep_orphans() == 1
    assert not stale.exists() and fresh.exists() and live.exists()


def test_a_damaged_member_refuses_the_whole_package_and_leaves_no_pack(tmp_path, students):
    a, b, _c = students
    path = package(tmp_path, {f"{a.student_number}.jpg": jpeg(), f"{b.student_number}.jpg": jpeg(color=(9, 9, 9))})
    raw = bytearray(path.read_bytes())
    raw[raw.rindex(jpeg(color=(9, 9, 9))[-40:])] ^= 0xFF  # a flipped byte inside b's photo: its CRC fails
    path.write_bytes(bytes(raw))

    report = photos_import(path=path, kind="admission")

    assert report.errors and "已损坏" in report.errors[0]["message"] and b.student_number in report.errors[0]["message"]
    assert not Photo.objects.exists()
    assert not any(photo_services.packs_dir().glob("*.pack"))
