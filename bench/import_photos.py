#!/usr/bin/env python
"""Benchmark importing a photo package against just reading the zip's members.

    .venv/bin/python bench/import_photos.py [--students 50000] [--database-url URL] [--json]

Builds a school through the real roster import, writes a zip of one synthetic
~20 KB JPEG per student named by 学号 (as a CHSI package names them), then,
each in its own process so that peak memory is that process's own:

- the floor: reading every member of the zip (``ZipFile.read``), nothing else,
  measured before and after ours (interleaved: the machine may be shared, and
  the floor is the mean of the two);
- ``manage.py import_photos --kind admission`` (checks, hashing, appending the
  photos to a private pack file, upserting the rows).

Goal (issue 15): ratio ≤ 2, and peak memory flat in the number of photos (the
run at a fifth of the students is printed beside it for comparison).
"""

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from import_roster import OUT, PYTHON, ROOT, drop_database, fresh_database, row, run

READ_MEMBERS = """
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    total = sum(len(archive.read(member)) for member in archive.infolist())
print(total)
"""

# Written to a file: 50,000 numbers on stdout would fill the pipe while ``run`` waits for the child.
NUMBERS = (
    "from pathlib import Path; from students.models import Student; "
    "Path({path!r}).write_text('\\n'.join(Student.objects.values_list('student_number', flat=True)))"
)


def base_photos(count: int = 64) -> list[bytes]:
    """A few distinct 480×640 JPEGs of about 20 KB (noise keeps JPEG from compressing them to nothing)."""
    from PIL import Image

    photos = []
    rng = random.Random(7)
    for _ in range(count):
        image = Image.new("RGB", (480, 640), (40, 90, 200))
        noise = Image.frombytes("RGB", (120, 160), bytes(rng.randrange(256) for _ in range(120 * 160 * 3)))
        image.paste(noise.resize((150, 200)), (165, 220))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=70)
        photos.append(out.getvalue())
    return photos


def unique(photo: bytes, tag: str) -> bytes:
    """The same picture with a COM segment naming the student, so that every file differs."""
    comment = tag.encode()
    return photo[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + photo[2:]


def write_package(path, numbers: list[str]):
    photos = base_photos()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for index, number in enumerate(numbers):
            archive.writestr(f"{number}.jpg", unique(photos[index % len(photos)], number))


def timed(args, env) -> tuple[float, float, int, str]:
    """Wall time, CPU time (user + system), peak RSS in MB and stdout of one child process.

    CPU time is printed beside wall time because the machine may be shared: other work stretches
    the wall clock of both runs, but not the CPU each one needs.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=err, text=True)
        _pid, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            sys.exit(f"{' '.join(map(str, args))} failed:\n{err.read()[-3000:]}")
        out.seek(0)
        return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, out.read()


def measure(students: int, database_url: str) -> list[dict]:
    OUT.mkdir(parents=True, exist_ok=True)
    private = tempfile.mkdtemp(prefix="bench-photos-")
    env = {
        **os.environ, "DEBUG": "1", "DATABASE_URL": database_url, "REDIS_URL": "", "LOG_LEVEL": "WARNING",
        "PRIVATE_ROOT": private,
    }  # fmt: skip
    roster = OUT / f"roster-{students}.xlsx"
    package = OUT / f"photos-{students}.zip"
    if not roster.exists():
        run([PYTHON, "manage.py", "seed_demo", "--students", str(students), "--xlsx", roster, "--roster-only"], env)
    fresh_database(database_url)
    try:
        run([PYTHON, "manage.py", "migrate", "-v", "0"], env)
        run([PYTHON, "manage.py", "import_roster", roster, "--format", "json"], env)
        numbers_file = Path(private) / "numbers.txt"
        run([PYTHON, "manage.py", "shell", "-v", "0", "-c", NUMBERS.format(path=str(numbers_file))], env)
        numbers = numbers_file.read_text().split()
        write_package(package, numbers)
        package_mb = round(package.stat().st_size / 1024 / 1024)
        before = timed([PYTHON, "-c", READ_MEMBERS, package], env)
        ours_s, ours_cpu, ours_mb, out = timed(
            [PYTHON, "manage.py", "import_photos", package, "--kind", "admission", "--format", "json"], env
        )
        after = timed([PYTHON, "-c", READ_MEMBERS, package], env)
        read_s, read_cpu = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
        read_mb = max(before[2], after[2])
    finally:
        drop_database(database_url)
        shutil.rmtree(private, ignore_errors=True)
        package.unlink(missing_ok=True)
    report = json.loads(out)
    assert report["matched"] == students and not report["unmatched"], out[:500]
    return [
        row(
            "import_photos",
            students,
            ours_s,
            "zip-read",
            read_s,
            "s",
            ours_mb,
            reference_peak_mb=read_mb,
            cpu_s=round(ours_cpu, 2),
            reference_cpu_s=round(read_cpu, 2),
            cpu_ratio=round(ours_cpu / read_cpu, 2),
            package_mb=package_mb,
            reference_runs_s=[round(before[0], 2), round(after[0], 2)],
        )
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=50_000)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_PHOTOS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rollcheck_bench_photos"
        ),
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = measure(args.students // 5, args.database_url) + measure(args.students, args.database_url)
    (OUT / f"import_photos-{args.students}.json").write_text(json.dumps(results, indent=2))
    for result in results:
        if args.json:
            print(json.dumps(result))
        else:
            print(
                f"{result['students']:6d} photos ({result['package_mb']} MB): "
                f"ours {result['ours']:7.2f} s  zip read {result['reference_value']:6.2f} s  ratio {result['ratio']:4.2f}×  "
                f"CPU {result['cpu_s']:6.2f} s vs {result['reference_cpu_s']:5.2f} s  ratio {result['cpu_ratio']:4.2f}×  "
                f"peak {result['peak_mb']} MB (read {result['reference_peak_mb']} MB)  (load {result['load_average']})"
            )
    if not args.json:
        print("goal: ratio ≤ 2, peak memory flat in the number of photos")


if __name__ == "__main__":
    main()
