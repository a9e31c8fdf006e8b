"""Campaigns, checklists and the files students upload as evidence."""

import datetime
import io
import struct
import zlib

import factory
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import ExifTags, Image

from students.tests.factories import CohortFactory, StudentFactory, UserFactory
from verification import services
from verification.models import Campaign, Checklist

PASSWORD = "correct horse battery"  # UserFactory's


class CampaignFactory(factory.django.DjangoModelFactory):
    """An open campaign, saved through ``services.campaign_save`` so its checklists exist."""

    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"2025级新生学籍核对（{n}）")
    kind = Campaign.Kind.NEW_STUDENTS
    opens_at = factory.LazyFunction(lambda: timezone.now() - datetime.timedelta(days=1))
    closes_at = factory.LazyFunction(lambda: timezone.now() + datetime.timedelta(days=14))
    instructions = "请在 9 月 30 日前逐项核对。"

    @classmethod
    def _create(cls, model_class, *args, cohorts=None, by=None, **kwargs):
        cohorts = cohorts if cohorts is not None else [CohortFactory()]
        return services.campaign_save(campaign=model_class(*args, **kwargs), cohorts=cohorts, by=by)


class ChecklistFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Checklist
        django_get_or_create = ("campaign", "student")

    campaign = factory.SubFactory(CampaignFactory)
    student = factory.SubFactory(StudentFactory)


def student_with_account(**kwargs):
    """A 2025级本科 student who has claimed their account (username = 学号)."""
    kwargs.setdefault("cohort", CohortFactory())
    student = StudentFactory(**kwargs)
    student.user = UserFactory(username=student.student_number, first_name=student.name)
    student.save(update_fields=["user"])
    return student


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def png_bytes(size=(32, 24), color="white") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def jpeg_bytes(size=(40, 20), *, gps=False, orientation=None) -> bytes:
    """A JPEG as a phone saves it: optionally with GPS coordinates and a rotation tag."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "RollCheckPhone"
    if orientation:
        exif[ExifTags.Base.Orientation] = orientation
    if gps:
        location = exif.get_ifd(ExifTags.IFD.GPSInfo)
        location[ExifTags.GPS.GPSLatitudeRef] = "N"
        location[ExifTags.GPS.GPSLatitude] = (39.0, 54.0, 27.0)
        location[ExifTags.GPS.GPSLongitudeRef] = "E"
        location[ExifTags.GPS.GPSLongitude] = (116.0, 23.0, 17.0)
    image = Image.new("RGB", size, "white")
    image.paste((200, 0, 0), (0, 0, size[0] // 2, size[1]))
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def pdf_bytes() -> bytes:
    """One blank A4 page, written by hand (no cross-reference table: readers rebuild it)."""
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )


def pdf_with_active_content() -> bytes:
    """A one-page PDF that runs JavaScript on open, launches a program on page open, carries an
    embedded executable and a link to a website, with its author's name in the metadata."""
    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page()
    page = pdf.pages[0].obj
    script = pdf.make_indirect(pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS=pikepdf.String("app.alert(1)")))
    attachment = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Filespec,
            F=pikepdf.String("update.exe"),
            EF=pikepdf.Dictionary(F=pdf.make_stream(b"MZ-not-really-a-program")),
        )
    )
    pdf.Root.OpenAction = script
    pdf.Root.Names = pikepdf.Dictionary(
        JavaScript=pikepdf.Dictionary(Names=pikepdf.Array([pikepdf.String("init"), script])),
        EmbeddedFiles=pikepdf.Dictionary(Names=pikepdf.Array([pikepdf.String("update.exe"), attachment])),
    )
    page.AA = pikepdf.Dictionary(O=pikepdf.Dictionary(S=pikepdf.Name.Launch, F=pikepdf.String("cmd.exe")))

    def link(action):
        return pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Link, Rect=[0, 0, 99, 99], A=action)

    page.Annots = pikepdf.Array(
        [
            link(pikepdf.Dictionary(S=pikepdf.Name.URI, URI=pikepdf.String("http://evil.example/"))),
            link(pikepdf.Dictionary(S=pikepdf.Name.GoTo, D=pikepdf.Array([page, pikepdf.Name.Fit]))),
            pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.FileAttachment, FS=attachment),
        ]
    )
    pdf.docinfo["/Author"] = "RollCheckAuthor"
    out = io.BytesIO()
    pdf.save(out, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb_bytes(width=30_000, height=30_000) -> bytes:
    """A small file whose header declares a 900-megapixel greyscale image."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + _png_chunk(b"IEND", b"")
    )


def upload(name: str, data: bytes, content_type="application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)
