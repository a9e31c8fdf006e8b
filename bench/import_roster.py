#!/usr/bin/env python
"""Benchmark the roster import against openpyxl merely reading the same file.

    .venv/bin/python bench/import_roster.py [--students 50000] [--database-url URL]

Generates a roster with shared strings (as Excel saves files), measures
openpyxl's read-only read of it, then runs ``manage.py import_roster`` twice
on a fresh PostgreSQL database (first import: all created; second: all
unchanged), each in its own process so that peak memory is that process's own.
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

READ_WITH_OPENPYXL = """
import sys, openpyxl
wb = openpyxl.load_workbook(sys.argv[1], read_only=True)
rows = sum(1 for _ in wb.worksheets[0].iter_rows(values_only=True))
wb.close()
print(rows)
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
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=50_000)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rollcheck_bench"),
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": args.database_url, "REDIS_URL": "", "LOG_LEVEL": "WARNING"}
    roster = OUT / f"roster-{args.students}.xlsx"

    print(f"Generating {args.students} students → {roster.relative_to(ROOT)}")
    run([PYTHON, "manage.py", "seed_demo", "--students", str(args.students), "--xlsx", roster, "--roster-only"], env)
    fresh_database(args.database_url)
    run([PYTHON, "manage.py", "migrate", "-v", "0"], env)

    read_s, read_mb, rows = run([PYTHON, "-c", READ_WITH_OPENPYXL, roster], env)
    first_s, first_mb, first_out = run([PYTHON, "manage.py", "import_roster", roster, "--format", "json"], env)
    again_s, again_mb, again_out = run([PYTHON, "manage.py", "import_roster", roster, "--format", "json"], env)
    first, again = json.loads(first_out), json.loads(again_out)
    assert first["created"] == args.students and not first["errors"], first_out[:500]
    assert again["unchanged"] == args.students, again_out[:500]

    result = {
        "students": args.students,
        "openpyxl_read_s": round(read_s, 2),
        "openpyxl_read_peak_mb": read_mb,
        "import_s": round(first_s, 2),
        "import_peak_mb": first_mb,
        "import_ratio_to_read": round(first_s / read_s, 2),
        "reimport_s": round(again_s, 2),
        "reimport_peak_mb": again_mb,
        "reimport_ratio_to_read": round(again_s / read_s, 2),
        "warnings": len(first["warnings"]),
    }
    (OUT / f"import_roster-{args.students}.json").write_text(json.dumps(result, indent=2))
    print(f"openpyxl read-only, read only      {read_s:7.2f} s  {read_mb:5d} MB  ({int(rows) - 1} rows)")
    print(f"import_roster, first (all created) {first_s:7.2f} s  {first_mb:5d} MB  ratio {first_s / read_s:.2f}×")
    print(f"import_roster, again (unchanged)   {again_s:7.2f} s  {again_mb:5d} MB  ratio {again_s / read_s:.2f}×")
    print("goal: ratio ≤ 2.0× and peak < 400 MB at 50,000 students")


if __name__ == "__main__":
    main()
