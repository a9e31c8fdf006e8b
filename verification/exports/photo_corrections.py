"""Photo corrections for CHSI: the photos to resubmit, as a zip named by 身份证号, with a sheet listing them.

A photo flag that reached the registrar (the correction queue's statuses and
filters) is resubmitted with the new photo the student brought as evidence,
or else with the photo the school holds (for CHSI to look at again).  The
sheet alone is an ordinary export; ``build_zip`` adds the photos, one folder
per photo kind (录取照片/, 学历照片/), each file ``<身份证号>.jpg`` as CHSI expects.
"""

import io
import zipfile
from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from PIL import Image

from students import fields as roll_fields
from students.photos.services import photo_bytes

from .. import evidence as evidence_files
from ..filters import CorrectionFilter
from .base import Exporter, text
from .registry import register
from .writer import write_xlsx

IMAGE_TYPES = ("image/jpeg", "image/png")


@dataclass
class PhotoItem:
    flag: object
    field: roll_fields.RollField
    path: object  # the student's upload to send, or None
    photo: object  # else the school's photo (students.models.Photo), or None when it holds none
    source: str
    is_jpeg: bool

    @property
    def has_photo(self) -> bool:
        return self.path is not None or self.photo is not None

    def read(self) -> bytes | None:
        """The file to send as CHSI takes it (JPEG), or None when it is gone."""
        if self.path is None:
            return photo_bytes(self.photo) if self.photo is not None else None
        if not self.path.is_file():
            return None
        return self.path.read_bytes() if self.is_jpeg else _as_jpeg(self.path)

    @property
    def member_name(self) -> str:
        return f"{self.field.label}/{self.flag.checklist.student.id_number}.jpg"


def photo_items(user, params):
    """The photo flags of the correction queue (same filters) and the file each one resubmits."""
    flags = (
        CorrectionFilter.flags_of(user, params)
        .filter(field_code__in=[f.code for f in roll_fields.PHOTO_FIELDS])
        .prefetch_related("checklist__student__photos")
    )
    for flag in flags.iterator(chunk_size=500):
        field = flag.field
        # The newest image the student uploaded is the photo to send; a PDF is no photo.
        upload = next((e for e in reversed(list(flag.evidence.all())) if e.content_type in IMAGE_TYPES), None)
        if upload is not None:
            yield PhotoItem(
                flag,
                field,
                evidence_files.path_of(upload.storage_name),
                None,
                _("学生上传的新照片"),
                upload.content_type == "image/jpeg",
            )
            continue
        photo = getattr(flag.checklist.student, field.key)
        yield PhotoItem(flag, field, None, photo, _("学校现有照片") if photo is not None else _("无照片"), True)


@register
class PhotoCorrections(Exporter):
    key = "photo-corrections"
    label = gettext_lazy("照片更正清单")
    capability = "export.school_lists"
    form_class = CorrectionFilter

    @property
    def columns(self):
        return [
            text(_("文件名"), 34),
            text("XH", 14),
            text("XM", 10),
            text("SFZH", 21),
            text(_("照片"), 10),
            text(_("问题"), 14),
            text(_("说明"), 30),
            text(_("照片来源"), 16),
            text(_("状态"), 20),
        ]

    def filename_parts(self, user, params):
        parts = [_("照片更正")]
        if params.get("campaign"):
            parts.append(params["campaign"].name)
        return parts

    def estimate(self, user, params):
        return (
            CorrectionFilter.flags_of(user, params)
            .filter(field_code__in=[f.code for f in roll_fields.PHOTO_FIELDS])
            .count()
        )

    def rows(self, user, params):
        for item in photo_items(user, params):
            student = item.flag.checklist.student
            yield [
                item.member_name if item.has_photo else "",
                student.student_number,
                student.name,
                student.id_number,  # CHSI's file names are the full number: the list must match them
                str(item.field.label),
                item.flag.claimed_value,
                item.flag.explanation,
                item.source,
                item.flag.get_status_display(),
            ]


def _as_jpeg(path) -> bytes:
    """A PNG upload becomes a JPEG: CHSI takes JPEG only."""
    with Image.open(path) as image:
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=90)
        return out.getvalue()


def build_zip(exporter: PhotoCorrections, user, params, target, *, exported_by) -> int:
    """Write the zip (photos and 清单.xlsx) to ``target`` (a binary file); returns the number of photos."""
    count = 0
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for item in photo_items(user, params):
            data = item.read()
            if data is None:
                continue
            archive.writestr(item.member_name, data)
            count += 1
        sheet = io.BytesIO()
        write_xlsx(exporter, user, params, sheet, exported_by=exported_by)
        archive.writestr(_("清单") + ".xlsx", sheet.getvalue())
    return count
