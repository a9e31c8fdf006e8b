"""CPU time of storing one large evidence image (verification/evidence.py), vs the old full-size re-encode.

    .venv/bin/python bench/evidence_upload.py

No database needed.  Goal: well under 1 s of CPU per file for a 7000 × 7000 PNG (the old code, decoding at
full size and saving with optimize=True, took 5–8 s on the reference machine).
"""

import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registrar_portal.settings_test")

import django

django.setup()

from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.test import override_settings  # noqa: E402
from PIL import Image, ImageDraw, ImageOps  # noqa: E402

from verification import evidence  # noqa: E402


def document(size) -> Image.Image:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for y in range(0, size[1], 97):
        draw.line((0, y, size[0], size[1] - y), fill=(y % 251, 40, 90), width=5)
    return image


def encoded(size, fmt) -> bytes:
    out = io.BytesIO()
    document(size).save(out, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return out.getvalue()


def old_reencode(data: bytes, fmt: str) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        image = ImageOps.exif_transpose(image)
        out = io.BytesIO()
        if fmt == "JPEG":
            image.convert("RGB").save(out, "JPEG", quality=90, optimize=True)
        else:
            image.save(out, "PNG", optimize=True)


def cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main():
    cases = [("PNG 7000×7000", (7000, 7000), "PNG"), ("JPEG 6000×4000", (6000, 4000), "JPEG")]
    with tempfile.TemporaryDirectory() as private, override_settings(PRIVATE_ROOT=Path(private)):
        for label, size, fmt in cases:
            data = encoded(size, fmt)
            name = "scan.png" if fmt == "PNG" else "scan.jpg"
            ours = min(cpu(lambda: evidence.store_upload(SimpleUploadedFile(name, data))) for _ in range(3))  # noqa: B023
            old = cpu(lambda: old_reencode(data, fmt))  # noqa: B023
            print(f"{label} ({len(data) / 1e6:.1f} MB): store_upload {ours:.2f} s CPU, old re-encode {old:.2f} s")


if __name__ == "__main__":
    main()
