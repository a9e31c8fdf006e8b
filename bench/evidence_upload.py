#!/usr/bin/env python
"""CPU time of storing one large evidence image (verification/evidence.py), vs the old full-size re-encode.

    .venv/bin/python bench/evidence_upload.py [--json]

No database needed (the test settings, a temporary private folder).  For a
7000 × 7000 PNG and a 6000 × 4000 JPEG: ``evidence.store_upload`` (best of
3) against the old code decoding at full size and saving with
``optimize=True``, in the same run.  Goal: well under 1 s of CPU per file (the
old code took 5–8 s on the reference machine).  Rows ``evidence_png`` and
``evidence_jpeg``; ``students`` does not apply (0).
"""

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))
from import_roster import row  # noqa: E402

CASES = [
    ("evidence_png", "PNG 7000×7000", (7000, 7000), "PNG"),
    ("evidence_jpeg", "JPEG 6000×4000", (6000, 4000), "JPEG"),
]


def document(size):
    from PIL import Image, ImageDraw

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
    from PIL import Image, ImageOps

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


def peak_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def measure(students: int = 0) -> list[dict]:
    """Sets Django up in this process (test settings): run it in a process of its own."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registrar_portal.settings_test")
    import django

    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import override_settings

    from verification import evidence

    results = []
    with tempfile.TemporaryDirectory() as private, override_settings(PRIVATE_ROOT=Path(private)):
        for name, label, size, fmt in CASES:
            data = encoded(size, fmt)
            upload = "scan.png" if fmt == "PNG" else "scan.jpg"
            ours = min(cpu(lambda: evidence.store_upload(SimpleUploadedFile(upload, data))) for _ in range(3))  # noqa: B023
            old = cpu(lambda: old_reencode(data, fmt))  # noqa: B023
            results.append(
                row(
                    name, 0, ours, "full-reencode", old, "s", peak_mb(), case=label, megabytes=round(len(data) / 1e6, 1)
                )
            )
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for result in measure():
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
        else:
            print(
                f"{result['case']} ({result['megabytes']} MB): store_upload {result['ours']:.2f} s CPU, "
                f"old re-encode {result['reference_value']:.2f} s  (load {result['load_average']})"
            )


if __name__ == "__main__":
    main()
