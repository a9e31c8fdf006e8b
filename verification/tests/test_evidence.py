"""Evidence uploads: checked by content, re-encoded, stored privately, downloaded only by those allowed."""

import io
import re

import pytest
from django.conf import settings
from django.urls import reverse
from PIL import ExifTags, Image

from students.tests.factories import valid_id_number
from verification import evidence as evidence_files
from verification.models import Evidence, Flag

from .factories import jpeg_bytes, pdf_bytes, png_bomb_bytes, png_bytes, upload
from .pages import flag, flag_url, html

pytestmark = pytest.mark.django_db

TEN_MB = 10 * 1024 * 1024


def stored_files():
    folder = evidence_files.evidence_dir()
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def submit(client, campaign, me, *files, code="XB", claimed="女"):
    return flag(client, campaign, code, claimed, version=me.version, explanation="见附件", files=files)


def assert_refused(response, message):
    assert response.status_code == 200
    assert message in html(response)
    assert not Flag.objects.exists() and not Evidence.objects.exists()
    assert stored_files() == []


IDENTITY_CLAIMS = {
    "XM": "王晓明",
    "XB": "女",
    "CSRQ": "2007-03-15",
    "SFZH": valid_id_number(77),
    "MZ": "回族",
}


@pytest.mark.parametrize("code", IDENTITY_CLAIMS)
def test_identity_fields_need_evidence(me_client, me, campaign, code):
    page = html(me_client.get(flag_url(campaign, code)))
    assert 'type="file"' in page and "需要准备的证明材料" in page

    refused = flag(me_client, campaign, code, IDENTITY_CLAIMS[code], version=me.version)
    assert_refused(refused, "身份信息的更正需要上传证明材料")

    flag(me_client, campaign, code, IDENTITY_CLAIMS[code], version=me.version, files=[upload("a.png", png_bytes())])
    assert Flag.objects.get().field_code == code


def test_other_fields_take_no_upload(me_client, me, campaign):
    page = html(me_client.get(flag_url(campaign, "BH")))
    assert 'type="file"' not in page and "需要准备的证明材料" not in page

    flag(me_client, campaign, "BH", "计算2502", version=me.version)
    assert Flag.objects.get().field_code == "BH"


def test_html_behind_a_png_header_is_refused(me_client, me, campaign):
    disguised = b"\x89PNG\r\n\x1a\n<html><script>alert(document.cookie)</script></html>"

    refused = submit(me_client, campaign, me, upload("photo.png", disguised, "image/png"))

    assert_refused(refused, "图片已损坏，无法读取")


def test_a_script_appended_to_a_real_png_does_not_survive_re_encoding(me_client, me, campaign):
    polyglot = png_bytes() + b"<script>alert(1)</script>"

    submit(me_client, campaign, me, upload("photo.png", polyglot, "image/png"))

    (path,) = stored_files()
    data = path.read_bytes()
    assert b"<script>" not in data
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (32, 24)


def test_a_pdf_named_jpg_is_kept_as_a_pdf(me_client, me, campaign):
    submit(me_client, campaign, me, upload("户籍证明.jpg", pdf_bytes(), "image/jpeg"))

    item = Evidence.objects.get()
    assert (item.content_type, item.original_name) == ("application/pdf", "户籍证明.pdf")
    assert item.storage_name.endswith(".pdf")
    response = me_client.get(reverse("verification:evidence_download", args=[item.pk]))
    assert response["Content-Type"] == "application/pdf"
    assert "%E6%88%B7%E7%B1%8D%E8%AF%81%E6%98%8E.pdf" in response["Content-Disposition"]


def test_a_text_file_named_png_is_refused(me_client, me, campaign):
    refused = submit(me_client, campaign, me, upload("身份证.png", b"just some text, not an image\n", "image/png"))

    assert_refused(refused, "“身份证.png”不是 JPEG、PNG 或 PDF 文件")


def test_a_truncated_pdf_is_refused(me_client, me, campaign):
    refused = submit(me_client, campaign, me, upload("证明.pdf", pdf_bytes().replace(b"%%EOF", b""), "application/pdf"))

    assert_refused(refused, "PDF 文件不完整")


def test_a_file_over_10_mb_is_refused_and_10_mb_is_accepted(me_client, me, campaign):
    body = pdf_bytes()
    exactly = body[:-6] + b" " * (TEN_MB - len(body)) + body[-6:]
    assert len(exactly) == TEN_MB
    too_big = body[:-6] + b" " * (TEN_MB + 1 - len(body)) + body[-6:]

    refused = submit(me_client, campaign, me, upload("scan.pdf", too_big, "application/pdf"))
    assert_refused(refused, "“scan.pdf”超过 10 MB")

    submit(me_client, campaign, me, upload("scan.pdf", exactly, "application/pdf"))
    assert Evidence.objects.get().size == TEN_MB


def test_more_than_five_files_are_refused(me_client, me, campaign):
    files = [upload(f"page{n}.png", png_bytes(size=(8 + n, 8)), "image/png") for n in range(6)]

    refused = submit(me_client, campaign, me, *files)

    assert_refused(refused, "每个报错最多上传 5 个文件")


def test_amending_cannot_bring_a_flag_past_five_files(me_client, me, campaign):
    submit(me_client, campaign, me, *[upload(f"a{n}.png", png_bytes(size=(8 + n, 8))) for n in range(3)])
    assert len(stored_files()) == 3

    response = submit(me_client, campaign, me, *[upload(f"b{n}.png", png_bytes(size=(20 + n, 8))) for n in range(3)])

    assert "每个报错最多上传 5 个文件" in html(response)
    assert Evidence.objects.count() == 3 and len(stored_files()) == 3


def test_a_decompression_bomb_is_refused(me_client, me, campaign):
    bomb = png_bomb_bytes()
    assert len(bomb) < 2048

    refused = submit(me_client, campaign, me, upload("bomb.png", bomb, "image/png"))

    assert_refused(refused, "图片尺寸过大")


def test_an_image_just_over_the_pixel_limit_is_refused(me_client, me, campaign):
    # 8000 × 6300 = 50.4 Mpx: below Pillow's own bomb limit, above ours.
    refused = submit(me_client, campaign, me, upload("huge.png", png_bomb_bytes(8000, 6300), "image/png"))

    assert_refused(refused, "图片尺寸过大")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("../../etc/passwd.png", "passwd.png"),
        ("..\\..\\Windows\\win.png", "win.png"),
        ('<img src=x onerror="alert(1)">.png', "img src=x onerror=alert(1).png"),
    ],
)
def test_a_file_name_with_a_path_is_stored_under_a_random_name(me_client, me, campaign, name, expected):
    submit(me_client, campaign, me, upload(name, png_bytes(), "image/png"))

    item = Evidence.objects.get()
    assert item.original_name == expected
    assert re.fullmatch(r"[0-9a-f]{32}\.png", item.storage_name)
    (path,) = stored_files()
    assert path.name == item.storage_name
    assert path.resolve().is_relative_to((settings.PRIVATE_ROOT / "evidence").resolve())
    assert not path.resolve().is_relative_to(settings.STATIC_ROOT)


def test_location_data_is_stripped_from_photos(me_client, me, campaign):
    original = jpeg_bytes(gps=True)
    with Image.open(io.BytesIO(original)) as image:
        assert image.getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the phone did record a location

    submit(me_client, campaign, me, upload("身份证.jpg", original, "image/jpeg"))

    (path,) = stored_files()
    with Image.open(path) as image:
        assert image.format == "JPEG"
        assert not image.getexif()
        assert not image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert b"Exif" not in path.read_bytes() and b"RollCheckPhone" not in path.read_bytes()


def test_a_rotated_phone_photo_stays_upright_after_its_exif_is_dropped(me_client, me, campaign):
    # Landscape pixels with "rotate 90° clockwise" in EXIF: a portrait photo as phones save it.
    submit(me_client, campaign, me, upload("户口簿.jpg", jpeg_bytes(size=(40, 20), orientation=6), "image/jpeg"))

    (path,) = stored_files()
    with Image.open(path) as image:
        assert image.size == (20, 40)
        assert ExifTags.Base.Orientation not in image.getexif()


# ---------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------


@pytest.fixture
def evidence(me_client, me, campaign):
    submit(me_client, campaign, me, upload("身份证.png", png_bytes(), "image/png"))
    return Evidence.objects.get()


def download(client, item):
    return client.get(reverse("verification:evidence_download", args=[item.pk]))


def test_the_download_is_an_attachment_that_is_never_sniffed(me_client, evidence):
    response = download(me_client, evidence)

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "image/png"
    body = b"".join(response.streaming_content)
    assert body == evidence_files.path_of(evidence.storage_name).read_bytes()
    with Image.open(io.BytesIO(body)) as image:
        assert image.size == (32, 24)


def test_who_may_download_evidence(client, evidence, secretary, other_secretary, registrar, other_student):
    from .factories import student_with_account

    client.force_login(secretary)
    assert download(client, evidence).status_code == 200
    client.force_login(registrar)
    assert download(client, evidence).status_code == 200
    client.force_login(other_secretary)
    assert download(client, evidence).status_code == 404
    client.force_login(student_with_account(department=evidence.flag.checklist.student.department).user)
    assert download(client, evidence).status_code == 404
    client.logout()
    response = download(client, evidence)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
