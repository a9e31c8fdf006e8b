"""Evidence files: checked by content, re-encoded, stored privately.

A file is accepted only if its bytes say it is a JPEG, PNG or PDF, whatever
its name claims.  Images are decoded and re-encoded with Pillow: that drops
EXIF (including location data), and an HTML or script payload hidden after a
valid image header does not survive.  Files live under PRIVATE_ROOT with
random names and are only ever served as attachments by a permission-checked
view.
"""

import hashlib
import io
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from django.conf import settings
from django.utils.translation import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 10 * 1024 * 1024
MAX_FILES_PER_FLAG = 5
# A phone photo is ~12 Mpx; anything far beyond is a decompression bomb.
MAX_PIXELS = 50_000_000

_KINDS = (
    (b"\xff\xd8\xff", "image/jpeg", ".jpg", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png", "PNG"),
    (b"%PDF-", "application/pdf", ".pdf", None),
)


class EvidenceError(ValueError):
    pass


@dataclass
class StoredFile:
    storage_name: str
    original_name: str
    content_type: str
    size: int
    sha256: str


def evidence_dir() -> Path:
    return Path(settings.PRIVATE_ROOT) / "evidence"


def path_of(storage_name: str) -> Path:
    return evidence_dir() / storage_name[:2] / storage_name


def safe_name(name: str) -> str:
    """The last path component only, without control characters, at most 100 characters."""
    base = PureWindowsPath(PurePosixPath(name or "").name).name
    base = "".join(ch for ch in base if ch.isprintable() and ch not in '<>:"/\\|?*').strip(". ")
    return base[-100:] or "file"


def _reencode(data: bytes, pil_format: str) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as probe:
                if probe.format != pil_format:
                    raise EvidenceError(_("文件内容与图片格式不符"))
                if probe.width * probe.height > MAX_PIXELS:
                    raise EvidenceError(_("图片尺寸过大"))
                probe.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                # EXIF is dropped below, so apply its rotation first: otherwise a portrait
                # phone photo of an ID card would be stored lying on its side.
                image = ImageOps.exif_transpose(image)
                out = io.BytesIO()
                if pil_format == "JPEG":
                    image.convert("RGB").save(out, "JPEG", quality=90, optimize=True)
                else:
                    image.save(out, "PNG", optimize=True)
                return out.getvalue()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise EvidenceError(_("图片尺寸过大")) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            if isinstance(exc, EvidenceError):
                raise
            raise EvidenceError(_("图片已损坏，无法读取")) from None


def store_upload(upload) -> StoredFile:
    """Validate one uploaded file and write it to private storage."""
    if upload.size > MAX_BYTES:
        raise EvidenceError(_("“%(name)s”超过 10 MB") % {"name": safe_name(upload.name)})
    data = upload.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise EvidenceError(_("“%(name)s”超过 10 MB") % {"name": safe_name(upload.name)})
    kind = next((kind for kind in _KINDS if data.startswith(kind[0])), None)
    if kind is None:
        raise EvidenceError(_("“%(name)s”不是 JPEG、PNG 或 PDF 文件") % {"name": safe_name(upload.name)})
    _magic, content_type, extension, pil_format = kind
    if pil_format:
        data = _reencode(data, pil_format)
    elif b"%%EOF" not in data[-2048:]:
        raise EvidenceError(_("PDF 文件不完整"))
    storage_name = secrets.token_hex(16) + extension
    target = path_of(storage_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    original = safe_name(upload.name)
    stem = original.rsplit(".", 1)[0] if "." in original else original
    return StoredFile(
        storage_name=storage_name,
        original_name=stem + extension,
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def delete_file(storage_name: str):
    path_of(storage_name).unlink(missing_ok=True)
