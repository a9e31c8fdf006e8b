#!/usr/bin/env python
"""Benchmark the roster import against the floor: calamine reading the file plus a COPY upsert of its rows.

    .venv/bin/python bench/import_roster.py [--students 50000] [--database-url URL] [--json]

Generates a roster with shared strings (as Excel saves files), then, each in
its own process so that peak memory is that process's own, and interleaved:

- for comparison, a bare floor: python-calamine reads every row and one COPY
  into a temporary table plus ``INSERT … ON CONFLICT`` writes them as text into
  a table of text columns with only a unique key (no encryption, no indexes);
- ``import_roster`` on a fresh database (every student created);
- the floor of a fresh import (issue 16's reference): calamine reads the same
  rows and one COPY into a staging table plus ``INSERT … ON CONFLICT DO UPDATE``
  upserts them, with the columns the import writes (ID number encrypted, its
  keyed hash, the group ids), into a table shaped like students_student (same
  indexes, constraints and foreign keys); for comparison, the same rows COPYed
  straight into that (empty) table, which a fresh import may do;
- the floor of an unchanged re-import: calamine reading the file, and
  ``import_roster`` again (every student unchanged), twice in turns (the
  quicker of each counts).

Goals (docs/performance.md): fresh ≤ 1.5× its floor, unchanged ≤ 1.5× the
read, peak ≤ 300 MB at 50,000 students and ≤ 600 MB at 200,000.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PYTHON = sys.executable

READ = """
import sys, time, python_calamine
start, cpu = time.perf_counter(), time.process_time()
sheet = python_calamine.CalamineWorkbook.from_path(sys.argv[1]).get_sheet_by_index(0)
rows = sum(1 for _ in sheet.iter_rows())
print(time.perf_counter() - start, time.process_time() - cpu)
"""

# The import as the command runs it, timed inside the process: Django's own start-up (about 0.8 s on this
# machine, the same for every command) is reported apart, as the process's wall time.
IMPORT = """
import json, os, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registrar_portal.settings")
django.setup()
from students.services import roster_import
start, cpu = time.perf_counter(), time.process_time()
report = roster_import(path=sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
                  "report": report.as_dict()}, ensure_ascii=False))
"""

# For comparison only: the rows as text, COPY + ON CONFLICT into a bare table (what the import cannot legally be:
# no encrypted ID, no keyed hash, none of the students table's indexes and foreign keys).
READ_AND_COPY = """
import io, sys, time, psycopg2, python_calamine
start = time.perf_counter()
sheet = python_calamine.CalamineWorkbook.from_path(sys.argv[1]).get_sheet_by_index(0)
rows = sheet.iter_rows()
header = [str(c) for c in next(rows)]
key = header.index("XH")
columns = [f"c{i}" for i in range(len(header))]
def text(cell):
    s = cell if isinstance(cell, str) else str(cell)
    return s.replace("\\\\", "\\\\\\\\").replace("\\t", "\\\\t").replace("\\n", "\\\\n")
out = io.StringIO()
for row in rows:
    out.write("\\t".join(text(c) for c in row))
    out.write("\\n")
out.seek(0)
connection = psycopg2.connect(sys.argv[2])
with connection, connection.cursor() as cursor:
    cols = ", ".join(columns)
    cursor.execute(f"CREATE TABLE IF NOT EXISTS bench_floor ({', '.join(c + ' text' for c in columns)}, "
                   f"UNIQUE (c{key}))")
    cursor.execute(f"CREATE TEMPORARY TABLE floor_rows ON COMMIT DROP AS SELECT {cols} FROM bench_floor WITH NO DATA")
    cursor.copy_expert(f"COPY floor_rows ({cols}) FROM STDIN", out)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
    cursor.execute(f"INSERT INTO bench_floor ({cols}) SELECT {cols} FROM floor_rows "
                   f"ON CONFLICT (c{key}) DO UPDATE SET {updates}")
print(time.perf_counter() - start)
"""

# The floor of a fresh import, as issue 16 defines it: calamine reads every row; the same rows go, with the same
# columns the import writes (the ID number as its Fernet token, its keyed hash, the group ids), by one COPY into a
# temporary staging table and one ``INSERT … ON CONFLICT (学号) DO UPDATE`` into a table shaped like
# students_student (every index, unique and check constraint and foreign key; no triggers), committed.
# Its only shortcuts are what a floor may take: cells are written as read (no normalising, no findings), and the
# group ids of a row are one dict look-up by 学号, prepared before the clock starts from the students just imported.
FLOOR = """
import os, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registrar_portal.settings")
django.setup()
import python_calamine
from django.db import connection, models, transaction
from django.utils import timezone
from students import crypto
from students import fields as roll_fields
from students.models import Student
with connection.cursor() as cursor:
    cursor.execute("DROP TABLE IF EXISTS bench_students")
    cursor.execute("CREATE TABLE bench_students (LIKE students_student INCLUDING ALL)")
    cursor.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                   "WHERE conrelid = 'students_student'::regclass AND contype = 'f'")
    for (definition,) in cursor.fetchall():
        cursor.execute(f"ALTER TABLE bench_students ADD {definition}")
    cursor.execute("SELECT student_number, concat_ws(E'\\\\t', department_id, coalesce(major_id::text, '\\\\N'), "
                   "coalesce(cohort_id::text, '\\\\N'), coalesce(class_group_id::text, '\\\\N')) FROM students_student")
    placements = dict(cursor.fetchall())
placement_columns = ["department_id", "major_id", "cohort_id", "class_group_id"]
start = time.perf_counter()
sheet = python_calamine.CalamineWorkbook.from_path(sys.argv[1]).get_sheet_by_index(0)
rows = sheet.iter_rows()
header = next(rows)
keys = [roll_fields.resolve_header(cell) for cell in header]
taken = [(i, key) for i, key in enumerate(keys) if key and key != "id_number"]
id_index, number_index = keys.index("id_number"), keys.index("student_number")
dates = [n for n, (_i, key) in enumerate(taken) if isinstance(Student._meta.get_field(key), models.DateField)]
fields = {f.attname: f for f in Student._meta.concrete_fields if f.attname != "id"}
now = timezone.now().isoformat()
rest = [name for name in fields if name not in {k for _i, k in taken} | {"id_number", "id_number_hash", *placement_columns}]
def default(name):
    if name in ("created_at", "updated_at"):
        return now
    value = fields[name].get_default()
    return "\\\\N" if value is None else ("t" if value is True else "f" if value is False else str(value))
suffix = "\\t".join(default(name) for name in rest)
columns = ", ".join([*(k for _i, k in taken), "id_number", "id_number_hash", *placement_columns, *rest])
def cell(value):
    return value if value.__class__ is str else str(value)
class Stream:
    def __init__(self, chunks):
        self.chunks = iter(chunks)
    def read(self, size=-1):
        return next(self.chunks, "")
    readline = read
def chunks():
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == 2000:
            yield lines(batch)
            batch = []
    if batch:
        yield lines(batch)
def lines(batch):
    tokens = crypto.encrypt_many([cell(row[id_index]) for row in batch])
    out = []
    for row, token in zip(batch, tokens):
        texts = [cell(row[i]) for i, _key in taken]
        line = "\\x00".join(texts)
        if "\\\\" in line or "\\t" in line or "\\n" in line or "\\r" in line:
            line = line.translate(ESCAPES)
        for n in dates:  # an empty date is NULL
            if not texts[n]:
                texts = line.split("\\x00")
                texts[n] = "\\\\N"
                line = "\\x00".join(texts)
        line = line.replace("\\x00", "\\t")
        plain = cell(row[id_index])
        out.append(f"{line}\\t{token}\\t{crypto.keyed_hash(plain)}\\t{placements[cell(row[number_index])]}\\t{suffix}")
    return "\\n".join(out) + "\\n"
ESCAPES = str.maketrans({"\\\\": "\\\\\\\\", "\\t": "\\\\t", "\\n": "\\\\n", "\\r": "\\\\r"})
updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns.split(", "))
with transaction.atomic(), connection.cursor() as cursor:
    if sys.argv[2] == "copy":  # for comparison: COPY straight into the (empty) table, as a fresh import may
        cursor.copy_expert(f"COPY bench_students ({columns}) FROM STDIN", Stream(chunks()))
    else:
        cursor.execute(f"CREATE TEMPORARY TABLE floor_rows ON COMMIT DROP AS SELECT {columns} FROM bench_students "
                       "WITH NO DATA")
        cursor.copy_expert(f"COPY floor_rows ({columns}) FROM STDIN", Stream(chunks()))
        cursor.execute(f"INSERT INTO bench_students ({columns}) SELECT {columns} FROM floor_rows "
                       f"ON CONFLICT (student_number) DO UPDATE SET {updates}")
    staged = cursor.rowcount
elapsed = time.perf_counter() - start
with connection.cursor() as cursor:
    cursor.execute("DROP TABLE bench_students")
print(elapsed, staged)
"""


def run(args, env) -> tuple[float, int, str]:
    """Wall time, peak RSS in MB and stdout of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait4 reports this child's own peak memory, not the largest of all children.
    _pid, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    stdout, stderr = process.stdout.read(), process.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(map(str, args))} failed:\n{stderr[-3000:]}")
    return elapsed, usage.ru_maxrss // 1024, stdout


def fresh_database(url: str):
    import psycopg2

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"refusing to drop {name!r}: a benchmark database name contains 'bench'")
    admin = psycopg2.connect(
        host=parsed.hostname,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        dbname="postgres",
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def drop_database(url: str):
    import psycopg2

    parsed = urlparse(url)
    admin = psycopg2.connect(
        host=parsed.hostname,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        dbname="postgres",
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{parsed.path.lstrip("/")}" WITH (FORCE)')
    admin.close()


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def row(name, students, ours, reference, reference_value, unit, peak_mb, **extra) -> dict:
    ratio = ours / reference_value if unit == "s" else reference_value and ours / reference_value
    return {
        "name": name,
        "students": students,
        "ours": round(ours, 3),
        "reference": reference,
        "reference_value": round(reference_value, 3),
        "unit": unit,
        "ratio": round(ratio, 2),
        "peak_mb": peak_mb,
        "load_average": load_average(),
        **extra,
    }


def measure(students: int, database_url: str) -> list[dict]:
    OUT.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": database_url, "REDIS_URL": "", "LOG_LEVEL": "WARNING"}
    roster = OUT / f"roster-{students}.xlsx"
    if not roster.exists():
        run([PYTHON, "manage.py", "seed_demo", "--students", str(students), "--xlsx", roster, "--roster-only"], env)
    fresh_database(database_url)
    try:
        run([PYTHON, "manage.py", "migrate", "-v", "0"], env)
        bare_wall, _mb, bare_s = run([PYTHON, "-c", READ_AND_COPY, roster, database_url], env)
        first_wall, first_mb, first_out = run([PYTHON, "-c", IMPORT, roster], env)
        # After the import: the floor's rows take the group ids the import created.
        _wall, floor_mb, floor_out = run([PYTHON, "-c", FLOOR, roster, "upsert"], env)
        _wall, _mb, copy_out = run([PYTHON, "-c", FLOOR, roster, "copy"], env)
        # An unchanged re-import and its floor take a few seconds each: two turns, interleaved, and the
        # quicker of each, so that one burst of the shared machine's load does not decide the ratio.
        reads, agains = [], []
        for _turn in range(2):
            reads.append(run([PYTHON, "-c", READ, roster], env))
            agains.append(run([PYTHON, "-c", IMPORT, roster], env))
        read_wall, read_mb, read_out = min(reads, key=lambda result: float(result[2].split()[0]))
        read_s, read_cpu = (float(value) for value in read_out.split())
        again_wall, again_mb, again_out = min(agains, key=lambda result: json.loads(result[2])["seconds"])
        # The command itself, end to end, once: what an operator waits for.
        command_wall, _mb, _out = run([PYTHON, "manage.py", "import_roster", roster, "--format", "json"], env)
    finally:
        drop_database(database_url)
    first, again = json.loads(first_out), json.loads(again_out)
    floor_s, floor_rows = floor_out.split()
    copy_s, copy_rows = copy_out.split()
    assert int(floor_rows) == int(copy_rows) == students, (floor_out, copy_out)
    assert first["report"]["created"] == students and not first["report"]["errors"], first_out[:500]
    assert again["report"]["unchanged"] == students, again_out[:500]
    assert again["report"]["warnings"] == first["report"]["warnings"], "a re-import reports what the import did"
    return [
        row("import_fresh", students, first["seconds"], "calamine+copy-upsert", float(floor_s), "s", first_mb,
            reference_peak_mb=floor_mb, wall_s=round(first_wall, 2),
            bare_reference_value=round(float(bare_s), 3), bare_ratio=round(first["seconds"] / float(bare_s), 2),
            copy_reference_value=round(float(copy_s), 3), copy_ratio=round(first["seconds"] / float(copy_s), 2)),
        row("import_unchanged", students, again["seconds"], "calamine", read_s, "s", again_mb,
            reference_peak_mb=read_mb, wall_s=round(again_wall, 2), reference_wall_s=round(read_wall, 2),
            command_wall_s=round(command_wall, 2),
            # CPU time of each process (the import's database server apart): steadier than wall time under load.
            cpu_s=round(again["cpu_seconds"], 3), reference_cpu_s=round(read_cpu, 3),
            cpu_ratio=round(again["cpu_seconds"] / read_cpu, 2)),
    ]  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=50_000)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rollcheck_bench"),
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = measure(args.students, args.database_url)
    (OUT / f"import_roster-{args.students}.json").write_text(json.dumps(results, indent=2))
    for result in results:
        if args.json:
            print(json.dumps(result))
        else:
            print(
                f"{result['name']:18} ours {result['ours']:7.2f} s  {result['reference']:14} "
                f"{result['reference_value']:7.2f} s  ratio {result['ratio']:5.2f}×  peak {result['peak_mb']} MB  "
                f"(load {result['load_average']})"
            )
    if not args.json:
        fresh = results[0]
        print(
            f"{'':18} for comparison, the same rows as text COPYed into a bare table (no indexes, no encryption): "
            f"{fresh['bare_reference_value']:.2f} s, ratio {fresh['bare_ratio']:.2f}×"
        )
        print(
            f"{'':18} the same floor with a COPY straight into the empty table instead of staging + ON CONFLICT: "
            f"{fresh['copy_reference_value']:.2f} s, ratio {fresh['copy_ratio']:.2f}×"
        )
        again = results[1]
        print(
            f"{'':18} unchanged, CPU time: ours {again['cpu_s']:.2f} s, calamine {again['reference_cpu_s']:.2f} s, "
            f"ratio {again['cpu_ratio']:.2f}×"
        )
        print("times inside each process (Django's start-up apart: see wall_s in --json)")
        print("goal: ratio ≤ 1.5× both, peak ≤ 300 MB at 50,000 students (≤ 600 MB at 200,000)")


if __name__ == "__main__":
    main()
