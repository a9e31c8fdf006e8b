#!/usr/bin/env python
"""Benchmark the roster import against the floor: calamine reading the file plus a COPY upsert of its rows.

    .venv/bin/python bench/import_roster.py [--students 50000] [--database-url URL] [--json]

Generates a roster with shared strings (as Excel saves files), then, each in
its own process so that peak memory is that process's own, and interleaved:

- the floor of a fresh import: python-calamine reads every row (the reader the
  import uses) and one COPY into a temporary table plus ``INSERT … ON CONFLICT
  DO UPDATE`` writes the same rows as text into a table keyed by 学号;
- ``manage.py import_roster`` on a fresh database (every student created);
- for reference, the same floor with the portal's schema: COPY of the imported students into a table with
  the students table's indexes and foreign keys, plus encrypting their ID numbers;
- the floor of an unchanged re-import: calamine reading the file;
- ``manage.py import_roster`` again (every student unchanged).

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
start = time.perf_counter()
sheet = python_calamine.CalamineWorkbook.from_path(sys.argv[1]).get_sheet_by_index(0)
rows = sum(1 for _ in sheet.iter_rows())
print(time.perf_counter() - start)
"""

# The import as the command runs it, timed inside the process: Django's own start-up (about 0.8 s on this
# machine, the same for every command) is reported apart, as the process's wall time.
IMPORT = """
import json, os, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registrar_portal.settings")
django.setup()
from students.services import roster_import
start = time.perf_counter()
report = roster_import(path=sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - start, "report": report.as_dict()}, ensure_ascii=False))
"""

# Reads like the import (calamine), then writes the same rows as text with COPY + ON CONFLICT.
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

# The same floor with the portal's schema, for reference: the students just imported, copied by COPY into a
# table shaped like theirs (every index, check and foreign key, committed) plus encrypting their ID numbers
# (crypto.encrypt_many, Fernet tokens).  What no import into this schema can beat; the goal's reference
# stays the plain floor above.
SCHEMA_COPY = """
import io, os, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registrar_portal.settings")
django.setup()
from django.db import connection, transaction
from students import crypto
from students.models import Student
ids = list(Student.objects.values_list("id_number", flat=True))
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE bench_students (LIKE students_student INCLUDING ALL)")
    cursor.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                   "WHERE conrelid = 'students_student'::regclass AND contype = 'f'")
    for (definition,) in cursor.fetchall():
        cursor.execute(f"ALTER TABLE bench_students ADD {definition}")
    rows = io.StringIO()
    cursor.copy_expert("COPY students_student TO STDOUT", rows)
rows.seek(0)
start = time.perf_counter()
crypto.encrypt_many(ids)
encrypted = time.perf_counter()
with transaction.atomic(), connection.cursor() as cursor:
    cursor.copy_expert("COPY bench_students FROM STDIN", rows)
copied = time.perf_counter()
with connection.cursor() as cursor:
    cursor.execute("DROP TABLE bench_students")
print(encrypted - start, copied - encrypted)
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
        floor_wall, floor_mb, floor_s = run([PYTHON, "-c", READ_AND_COPY, roster, database_url], env)
        first_wall, first_mb, first_out = run([PYTHON, "-c", IMPORT, roster], env)
        _wall, _mb, schema_out = run([PYTHON, "-c", SCHEMA_COPY], env)
        read_wall, read_mb, read_s = run([PYTHON, "-c", READ, roster], env)
        again_wall, again_mb, again_out = run([PYTHON, "-c", IMPORT, roster], env)
        # The command itself, end to end, once: what an operator waits for.
        command_wall, _mb, _out = run([PYTHON, "manage.py", "import_roster", roster, "--format", "json"], env)
    finally:
        drop_database(database_url)
    first, again = json.loads(first_out), json.loads(again_out)
    encrypt_s, schema_copy_s = (float(value) for value in schema_out.split())
    schema_floor = float(read_s) + encrypt_s + schema_copy_s
    assert first["report"]["created"] == students and not first["report"]["errors"], first_out[:500]
    assert again["report"]["unchanged"] == students, again_out[:500]
    assert again["report"]["warnings"] == first["report"]["warnings"], "a re-import reports what the import did"
    return [
        row("import_fresh", students, first["seconds"], "calamine+copy", float(floor_s), "s", first_mb,
            reference_peak_mb=floor_mb, wall_s=round(first_wall, 2), reference_wall_s=round(floor_wall, 2),
            schema_reference_value=round(schema_floor, 3), schema_ratio=round(first["seconds"] / schema_floor, 2),
            schema_encrypt_s=round(encrypt_s, 3), schema_copy_s=round(schema_copy_s, 3)),
        row("import_unchanged", students, again["seconds"], "calamine", float(read_s), "s", again_mb,
            reference_peak_mb=read_mb, wall_s=round(again_wall, 2), reference_wall_s=round(read_wall, 2),
            command_wall_s=round(command_wall, 2)),
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
            f"{'':18} with the portal's schema: read + encrypting IDs {fresh['schema_encrypt_s']:.2f} s + COPY into its "
            f"indexes and foreign keys {fresh['schema_copy_s']:.2f} s = {fresh['schema_reference_value']:.2f} s, "
            f"ratio {fresh['schema_ratio']:.2f}×"
        )
        print("times inside each process (Django's start-up apart: see wall_s in --json)")
        print("goal: ratio ≤ 1.5× both, peak ≤ 300 MB at 50,000 students (≤ 600 MB at 200,000)")


if __name__ == "__main__":
    main()
