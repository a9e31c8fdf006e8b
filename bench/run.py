#!/usr/bin/env python
"""Run every benchmark and print one table: our figure, the floor measured in the same run, the ratio.

    .venv/bin/python bench/run.py [--students N] [--json] [--database-url URL] [--redis-url URL] [--only NAME,...]

Each benchmark runs in a process of its own (``bench/<module>.py``'s
``measure()``), brings up what it needs and cleans up after itself: its own
PostgreSQL database, named after ``--database-url`` plus a suffix (for example
``rollcheck_bench_import``; a name without "bench" is refused) and dropped
afterwards; gunicorn on free loopback ports for the pages, stopped afterwards;
the Redis database of ``--redis-url`` (flushed: never point it at one in use)
for the reminder dispatch.  References are measured in the same run,
interleaved with ours (see each module's docstring).

``--only`` takes row names (``import_fresh``, ``page_checklist`` …) or module
names (``import_roster``, ``pages`` …); a module runs whole, so it prints all
its rows.  Output: one JSON object per row on stdout as soon as its module
finishes (the keys of the table plus each benchmark's details:
``reference_value`` is the floor, ``goal`` and ``goal_met`` the issue's goal,
``load_average`` the 1-minute load when the row was measured), then a Markdown
table of every row; ``--json`` leaves the table out.  Progress goes to stderr.
The ratio is ours / reference: lower is better for times (s, ms), higher is
better for throughput (req/s).  The machine is shared: note the load average
with each figure and rerun when it is high.
"""

import argparse
import contextlib
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable

# module → (rows it produces, database suffix, needs Redis), in the order they run.
BENCHMARKS = {
    "import_roster": (["import_fresh", "import_unchanged"], "import", False),
    "exports": (
        [
            "export_unverified",
            "export_chsi_corrections",
            "export_department_errors",
            "export_campaign_records",
            "export_findings",
            "export_access_log",
        ],
        "export",
        False,
    ),
    "dashboards": (["dashboard_school_ms", "dashboard_department_ms"], "dash", False),
    "pages": (["page_signed_in", "page_checklist", "page_school_dashboard"], "pages", False),
    "dispatch_reminders": (["dispatch_reminders"], "dispatch", True),
    "import_photos": (["import_photos"], "photos", False),
    "card_photo": (["card_with_photo_ms"], "card", False),
    "evidence_upload": (["evidence_png", "evidence_jpeg"], None, False),
}

# Goals of issue 16 (and of issue 15 for the photos): (text, test of a row).
GOALS = {
    "import_fresh": ("≤ 1.5×", lambda r: r["ratio"] <= 1.5),
    "import_unchanged": ("≤ 1.5×", lambda r: r["ratio"] <= 1.5),
    "export_unverified": ("≤ 1.2×", lambda r: r["ratio"] <= 1.2),
    "export_chsi_corrections": ("≤ 1.2×", lambda r: r["ratio"] <= 1.2),
    "export_department_errors": ("≤ 1.2×", lambda r: r["ratio"] <= 1.2),
    "export_campaign_records": ("≤ 1.2×", lambda r: r["ratio"] <= 1.2),
    "export_findings": ("≤ 1.2×", lambda r: r["ratio"] <= 1.2),
    "export_access_log": ("≤ 1.2×", lambda r: r["ratio"] <= 1.2),
    "dashboard_school_ms": ("≤ 15 ms", lambda r: r["ours"] <= 15),
    "dashboard_department_ms": ("≤ 15 ms", lambda r: r["ours"] <= 15),
    "page_signed_in": ("≥ 0.5×", lambda r: r["ratio"] >= 0.5),
    "page_checklist": ("≥ 0.6×", lambda r: r["ratio"] >= 0.6),
    "page_school_dashboard": ("≥ 150 req/s", lambda r: r["ours"] >= 150),
    "dispatch_reminders": ("< 30 s", lambda r: r["ours"] < 30),
    "import_photos": ("≤ 2×", lambda r: r["ratio"] <= 2),
    "card_with_photo_ms": ("≤ 1.1× without", lambda r: r["ratio"] <= 1.1),
    "evidence_png": ("< 1 s CPU", lambda r: r["ours"] < 1),
    "evidence_jpeg": ("< 1 s CPU", lambda r: r["ours"] < 1),
}
assert set(GOALS) == {row for rows, _s, _r in BENCHMARKS.values() for row in rows}, "every row has a goal"

# The Markdown table's columns: (key of a row, heading, right-aligned).
COLUMNS = [
    ("name", "benchmark", False), ("students", "students", True), ("ours", "ours", True),
    ("reference", "floor", False), ("reference_value", "floor value", True), ("unit", "unit", False),
    ("ratio", "ratio", True), ("peak_mb", "peak MB", True), ("load_average", "load", True),
    ("goal", "goal", False), ("goal_met", "met", False),
]  # fmt: skip


def database_url(base: str, suffix: str) -> str:
    parsed = urlparse(base)
    return urlunparse(parsed._replace(path=f"/{parsed.path.lstrip('/')}_{suffix}"))


def selected(only: str | None) -> list[str]:
    if not only:
        return list(BENCHMARKS)
    wanted = {name.strip() for name in only.split(",") if name.strip()}
    known = set(BENCHMARKS) | {r for rows, _s, _r in BENCHMARKS.values() for r in rows}
    if wanted - known:
        raise SystemExit(
            f"unknown benchmark(s): {', '.join(sorted(wanted - known))}; known: {', '.join(sorted(known))}"
        )
    return [module for module, (rows, _s, _r) in BENCHMARKS.items() if module in wanted or wanted & set(rows)]


def child(module_name: str, students: int, database: str, redis: str):
    """One benchmark in this process: its progress to stderr, its rows as JSON lines on stdout."""
    # The benchmark modules, and the project for those that use its code in this process (students.demo).
    sys.path[:0] = [str(BENCH), str(ROOT)]
    module = importlib.import_module(module_name)
    _rows, suffix, needs_redis = BENCHMARKS[module_name]
    args = [students] if suffix is None else [students, database]
    if needs_redis:
        args.append(redis)
    with contextlib.redirect_stdout(sys.stderr):
        results = module.measure(*args)
    for result in results:
        print(json.dumps(result, ensure_ascii=False), flush=True)


def run_one(module: str, args) -> list[dict]:
    _rows, suffix, _redis = BENCHMARKS[module]
    database = database_url(args.database_url, suffix or "unused")
    command = [PYTHON, __file__, "--child", module, str(args.students), database, args.redis_url]
    print(f"[{time.strftime('%H:%M:%S')}] {module} ({args.students} students)", file=sys.stderr, flush=True)
    start = time.monotonic()
    process = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
    print(f"[{time.strftime('%H:%M:%S')}] {module} done in {time.monotonic() - start:.0f} s", file=sys.stderr)
    if process.returncode != 0:
        print(f"{module} FAILED (exit {process.returncode})", file=sys.stderr)
        return []
    results = []
    for line in process.stdout.splitlines():
        with contextlib.suppress(ValueError):
            result = json.loads(line)
            if isinstance(result, dict) and "name" in result:
                goal, met = GOALS.get(result["name"], ("", None))
                results.append({**result, "goal": goal, "goal_met": met(result) if met else None})
    return results


def cell(result: dict, key: str) -> str:
    value = result.get(key)
    if key == "goal_met":
        return {True: "yes", False: "NO"}.get(value, "")
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return "" if value is None else str(value)


def print_table(results: list[dict]):
    """A Markdown table of every row (the README's and docs/performance.md's table)."""
    print("| " + " | ".join(heading for _key, heading, _right in COLUMNS) + " |")
    print("|" + "|".join("---:" if right else "---" for _key, _heading, right in COLUMNS) + "|")
    for result in results:
        print("| " + " | ".join(cell(result, key) for key, _heading, _right in COLUMNS) + " |")
    print()
    print(
        "ratio = ours / floor, both from the same run: lower is better for s and ms, higher for req/s; "
        f"load = 1-minute load average when the row was measured ({os.cpu_count()} cores)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=50_000)
    parser.add_argument("--json", action="store_true", help="one JSON object per benchmark row")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rollcheck_bench"),
        help="each benchmark uses this database name plus a suffix (_import, _export, …), dropped afterwards",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"),
        help="a Redis database the reminder bench may flush",
    )
    parser.add_argument("--only", help="comma-separated row or module names")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        module, students, database, redis = args.child
        return child(module, int(students), database, redis)
    if "bench" not in urlparse(args.database_url).path:
        raise SystemExit("--database-url: the database name must contain 'bench' (benchmarks drop their databases)")

    failed, results = [], []
    for module in selected(args.only):
        rows = run_one(module, args)
        if not rows:
            failed.append(module)
        for result in rows:
            results.append(result)
            print(json.dumps(result, ensure_ascii=False), flush=True)
    if not args.json:
        print()
        print_table(results)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
