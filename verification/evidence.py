"""Evidence files: checked by content, re-encoded, stored privately.

A file is accepted only if its bytes say it is a JPEG, PNG or PDF, whatever
its name claims.  Images are decoded (at reduced size: a photo of a document
needs no more than MAX_SIDE pixels) and re-encoded with Pillow without any
metadata: EXIF (including location data), comments, XMP and ICC profiles are
dropped, and an HTML or script payload hidden after a valid image header does
not survive.  PDFs are rewritten by qpdf (evidence_pdf.py) without active content
(JavaScript, automatic and launch actions, embedded files, forms' XFA) or
document metadata.  Files live under PRIVATE_ROOT with random names and are
only ever served as attachments by a permission-checked view.
"""

import hashlib
import io
import math
import secrets
import time
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from django.conf import settings
from django.utils.translation import gettext as _
from PIL import ExifTags, Image, UnidentifiedImageError

MAX_BYTES = 10 * 1024 * 1024
MAX_FILES_PER_FLAG = 5
# A phone photo is ~12 Mpx; anything far beyond is a decompression bomb.
MAX_PIXELS = 50_000_000
# Longest side of a stored image.  Decoding at reduced size and skipping PNG optimisation keep a
# 7000 × 7000 upload well under a second of CPU (it took 5–8 s with optimize=True at full size).
MAX_SIDE = 2500
# The pixels the images of one upload may decode to, together (a JPEG counts at the reduced size it is
# decoded at, a PNG at full size: PNG cannot be decoded smaller).  Decoding is most of the work, so this
# bounds a flag's CPU, not just a file's: one 7000 × 7000 PNG (~0.6 s), or five 12-Mpx phone photos, but not
# five such PNGs (bench/evidence_upload.py).
MAX_DECODED_PIXELS_PER_UPLOAD = 60_000_000
# An orphan (a file whose row was never committed) older than this is swept by retention_purge.
ORPHAN_SECONDS = 24 * 3600

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


# EXIF orientation → the transpose that shows the photo upright (as ImageOps.exif_transpose does).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _bounded(image: Image.Image, pil_format: str) -> Image.Image:
    """The decoded image, at most MAX_SIDE on its longest side, upright, in a mode we save."""
    # Read before decoding: the metadata goes, but its rotation must be applied, or a portrait
    # phone photo of an ID card would be stored lying on its side.
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    if pil_format == "JPEG":
        # The JPEG decoder scales by 1/2, 1/4 or 1/8 while decoding (never below the size asked for).
        image.draft("RGB", (MAX_SIDE, MAX_SIDE))
    image.load()
    if image.mode == "P" or image.mode == "1" or image.mode.startswith("I;"):
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif pil_format == "JPEG" and image.mode != "RGB":
        image = image.convert("RGB")
    factor = math.ceil(max(image.size) / MAX_SIDE)
    if factor > 1:
        image = image.reduce(factor)  # box filter: fast, and fine for a downscale
    if orientation in _UPRIGHT:
        image = image.transpose(_UPRIGHT[orientation])
    # Nothing of the original's metadata reaches the encoder: Pillow writes im.info["comment"]
    # (JPEG COM segment) and ICC profiles back unless told otherwise.
    image.info = {}
    return image


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
                image = _bounded(image, pil_format)
                out = io.BytesIO()
                if pil_format == "JPEG":
                    image.save(out, "JPEG", quality=88)
                else:
                    image.save(out, "PNG", compress_level=3)
                return out.getvalue()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise EvidenceError(_("图片尺寸过大")) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            if isinstance(exc, EvidenceError):
                raise
            raise EvidenceError(_("图片已损坏，无法读取")) from None


def _decoded_pixels(upload) -> int:
    """How many pixels _bounded will decode this file to, from its header; 0 for anything else."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(upload) as image:  # reads the header only
                if image.format == "JPEG":
                    image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # as _bounded does: only the size changes
                return image.width * image.height if image.format in ("JPEG", "PNG") else 0
    except Exception:  # not an image, or one store_upload refuses with its own message
        return 0
    finally:
        upload.seek(0)


def check_upload_cost(uploads) -> None:
    """Refuse, before anything is decoded, images that together would cost more than one large PNG."""
    pixels = [n for n in map(_decoded_pixels, uploads) if n]
    # A single image over the limits gets _reencode's own message.
    if len(pixels) > 1 and sum(pixels) > MAX_DECODED_PIXELS_PER_UPLOAD:
        raise EvidenceError(_("这些图片合计尺寸过大，请缩小图片后再上传"))


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
    else:
        from .evidence_pdf import sanitised_pdf  # pikepdf (qpdf) is loaded only when a PDF arrives

        data = sanitised_pdf(data)
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


def sweep_orphans(known_names, *, now=None) -> int:
    """Delete stored files that no row names and that are older than ORPHAN_SECONDS.

    Files are written before their rows' transaction and deleted if it fails; this catches what that
    cannot (an outer transaction rolled back, a killed worker).
    """
    folder = evidence_dir()
    if not folder.exists():
        return 0
    cutoff = (now or time.time()) - ORPHAN_SECONDS
    known = set(known_names)
    count = 0
    for path in folder.glob("??/*"):
        if path.is_file() and path.name not in known and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            count += 1
    return count
