#!/usr/bin/env python
"""Benchmark dispatching one reminder stage to 50,000 students: delivery rows plus queued work.

    .venv/bin/python bench/dispatch_reminders.py [--students 50000] [--database-url URL] [--redis-url URL] [--json]

Builds a school on a fresh PostgreSQL database through the real roster import
(``students.demo.generate_roster`` + ``write_roster_xlsx``, then ``manage.py
import_roster``) and one campaign over every cohort with
``verification.services.campaign_save``: every student is "not started".  The
Redis database is flushed and no worker runs.  Then it times
``notices.reminders.stage_dispatch`` for the campaign's "when it opens" stage:
one Delivery row per student, committed, and the ids queued in chunks on the
real broker by the outbox (``notices.outbox``).

References measured in the same run, once before and once after ours
(averaged; docs/performance.md §1): COPY of the same 50,000 rows into a copy
of the delivery table with its indexes, and a pipelined raw LPUSH of 50,000
messages (what one message per student costs at the broker's own speed).  Also shown: ``bulk_create`` of the same rows (the
ORM way, rolled back) and ``.delay()`` one by one, measured on 2,000 tasks and
scaled to 50,000.  Goal: the dispatch under 30 s.  Peak memory is that of
the dispatch alone (the process's VmHWM, reset just before it).  The database
is dropped afterwards; the Redis database (default /9) is flushed before and
after: never point ``--redis-url`` at a database in use.
"""

import argparse
import base64
import datetime
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_roster import OUT, PYTHON, ROOT, drop_database, fresh_database, row, run

DELAY_SAMPLE = 2_000


def setup_django(env: dict):
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "registrar_portal.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def build_school(students: int, env: dict):
    from students.demo import generate_roster, write_roster_xlsx

    with tempfile.TemporaryDirectory() as folder:
        roster = Path(folder) / f"roster-{students}.xlsx"
        say(f"Generating {students} students and the roster .xlsx")
        write_roster_xlsx(generate_roster(students), roster)
        say("manage.py import_roster")
        seconds, _mb, out = run([PYTHON, "manage.py", "import_roster", roster, "--format", "json"], env)
    report = json.loads(out)
    assert report["created"] == students and not report["errors"], out[:500]
    return seconds


def campaign_create():
    from django.utils import timezone

    from students.models import Cohort
    from verification import services
    from verification.models import Campaign

    now = timezone.now()
    return services.campaign_save(
        campaign=Campaign(
            name="2025级新生学籍核对",
            opens_at=now - datetime.timedelta(hours=1),
            closes_at=now + datetime.timedelta(days=14),
        ),
        cohorts=list(Cohort.objects.all()),
    )


def queued_ids(client, queue: str) -> tuple[int, int]:
    """(messages, delivery ids inside them): every row must be in exactly one message."""
    messages = client.lrange(queue, 0, -1)
    ids = set()
    total = 0
    for raw in messages:
        envelope = json.loads(raw)
        args = json.loads(base64.b64decode(envelope["body"]))[0]
        total += len(args[0])
        ids.update(args[0])
    assert total == len(ids), "an id was queued twice"
    return len(messages), len(ids)


def copy_reference(stage, rows: int) -> float:
    """COPY the same rows into a copy of the delivery table (same indexes), then drop it."""
    from django.db import connection, transaction
    from django.utils import timezone

    from notices.models import Delivery
    from verification.models import Checklist

    student_ids = list(Checklist.objects.filter(campaign_id=stage.campaign_id).values_list("student_id", flat=True))
    assert len(student_ids) == rows
    now = timezone.now().isoformat()
    table = Delivery._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE bench_delivery (LIKE {table} INCLUDING ALL) ON COMMIT DROP")
        start = time.perf_counter()
        buffer = io.StringIO()
        for student_id in student_ids:
            buffer.write(f"{stage.campaign_id}\t{stage.pk}\t{student_id}\temail\tpending\t0\t{now}\t{now}\t\n")
        buffer.seek(0)
        cursor.cursor.copy_expert(
            "COPY bench_delivery (campaign_id, stage_id, student_id, channel, status, attempts, "
            "next_attempt_at, created_at, last_error) FROM STDIN",
            buffer,
        )
        elapsed = time.perf_counter() - start
    return elapsed


def bulk_create_reference(stage) -> float:
    """The ORM way: one Python object per student, ``bulk_create``; rolled back."""
    from django.db import transaction
    from django.utils import timezone

    from notices.models import Delivery
    from verification.models import Checklist

    now = timezone.now()
    with transaction.atomic():
        start = time.perf_counter()
        student_ids = list(Checklist.objects.filter(campaign_id=stage.campaign_id).values_list("student_id", flat=True))
        Delivery.objects.bulk_create(
            (
                Delivery(campaign_id=stage.campaign_id, stage_id=stage.pk, student_id=s, next_attempt_at=now)
                for s in student_ids
            ),
            batch_size=5000,
        )
        elapsed = time.perf_counter() - start
        transaction.set_rollback(True)
    return elapsed


def lpush_reference(client, count: int) -> float:
    """Raw pipelined LPUSH of one small task-sized message per student."""
    payload = json.dumps({"body": base64.b64encode(b"[[1], {}, {}]").decode(), "headers": {}}).encode()
    start = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for n in range(count):
        pipe.lpush("bench-reference", payload)
        if n % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    elapsed = time.perf_counter() - start
    client.delete("bench-reference")
    return elapsed


def delay_reference(count: int) -> float:
    """``.delay()`` one task at a time (what a message per student would cost), to a throwaway queue."""
    from notices.tasks import deliveries_send

    start = time.perf_counter()
    for n in range(count):
        deliveries_send.apply_async(([n],), queue="bench-delay-reference")
    return time.perf_counter() - start


def reset_peak():
    """Start a new peak-memory window for this process (Linux: VmHWM restarts from the current RSS)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def say(text: str):
    print(text, file=sys.stderr)


def measure(students: int, database_url: str, redis_url: str) -> list[dict]:
    """Run in a process of its own: it sets Django up in-process with the bench's database."""
    OUT.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": database_url, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING"}
    fresh_database(database_url)
    try:
        run([PYTHON, "manage.py", "migrate", "-v", "0"], env)
        setup_django(env)
        import redis

        client = redis.Redis.from_url(redis_url)
        try:
            client.flushdb()
            result = _measure(students, env, client)
        finally:
            client.flushdb()
            client.close()
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(database_url)
    (OUT / f"dispatch-{students}.json").write_text(json.dumps(result, indent=2))
    return [
        row("dispatch_reminders", students, result["dispatch_s"], "copy+lpush", result["reference_s"], "s",
            result["peak_mb"], **{k: v for k, v in result.items() if k not in {"students", "dispatch_s", "peak_mb"}})
    ]  # fmt: skip


def _measure(students: int, env: dict, client) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from notices import outbox, reminders
    from notices.models import Delivery, ReminderStage
    from registrar_portal.celery import app

    assert not app.conf.task_always_eager, "REDIS_URL must switch Celery to the real broker"
    import_s = build_school(students, env)
    start = time.perf_counter()
    campaign = campaign_create()
    campaign_s = time.perf_counter() - start
    assert campaign.checklists.count() == students
    stage = next(s for s in reminders.reminder_plan_ensure(campaign=campaign) if s.kind == ReminderStage.Kind.OPENS)
    queue = app.conf.task_default_queue
    client.delete(queue)

    # Interleaved: the references once before and once after ours, averaged.
    say("references: COPY and raw LPUSH (before)")
    copy_runs = [copy_reference(stage, students)]
    lpush_runs = [lpush_reference(client, students)]
    say(f"stage_dispatch for {students} students")
    reset_peak()
    with CaptureQueriesContext(connection) as queries:
        start = time.perf_counter()
        written = reminders.stage_dispatch(stage_id=stage.pk)
        dispatch_s = time.perf_counter() - start
    dispatch_peak_mb = peak_mb()
    rows = Delivery.objects.filter(stage=stage).count()
    messages, ids_queued = queued_ids(client, queue)
    assert written == rows == ids_queued == students, (written, rows, ids_queued)
    say("references: COPY and raw LPUSH (after), bulk_create, .delay() one by one")
    copy_runs.append(copy_reference(stage, rows))
    lpush_runs.append(lpush_reference(client, rows))
    other_stage = next(s for s in ReminderStage.objects.filter(campaign=campaign).exclude(pk=stage.pk))
    bulk_s = bulk_create_reference(other_stage)
    delay_sample_s = delay_reference(DELAY_SAMPLE)
    client.delete("bench-delay-reference")
    copy_s, lpush_s = sum(copy_runs) / 2, sum(lpush_runs) / 2
    reference_s = copy_s + lpush_s
    return {
        "students": students,
        "import_roster_s": round(import_s, 2),
        "campaign_save_s": round(campaign_s, 2),
        "dispatch_s": round(dispatch_s, 3),
        "peak_mb": dispatch_peak_mb,
        "delivery_rows": rows,
        "messages_queued": messages,
        "chunk": outbox.CHUNK,
        "queries": len(queries.captured_queries),
        "reference_copy_s": round(copy_s, 3),
        "reference_lpush_s": round(lpush_s, 3),
        "reference_s": round(reference_s, 3),
        "orm_bulk_create_s": round(bulk_s, 3),
        "delay_one_by_one_scaled_s": round(delay_sample_s * rows / DELAY_SAMPLE, 2),
        "goal_s": 30,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=50_000)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DISPATCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rollcheck_bench_dispatch"
        ),
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_DISPATCH_REDIS_URL", "redis://127.0.0.1:6379/9"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    (result,) = measure(args.students, args.database_url, args.redis_url)
    if args.json:
        print(json.dumps(result))
        return
    print(f"import_roster (setup)                 {result['import_roster_s']:7.2f} s")
    print(f"campaign_save (setup, checklists)     {result['campaign_save_s']:7.2f} s")
    print(
        f"stage_dispatch                        {result['ours']:7.3f} s  {result['delivery_rows']} rows, "
        f"{result['messages_queued']} messages queued, {result['queries']} queries, peak {result['peak_mb']} MB"
    )
    print(f"reference: COPY {result['delivery_rows']} rows             {result['reference_copy_s']:7.3f} s")
    print(f"reference: raw LPUSH, pipelined       {result['reference_lpush_s']:7.3f} s")
    print(f"ratio dispatch / (COPY + LPUSH)       {result['ratio']:7.2f}×  (load {result['load_average']})")
    print(f"for comparison: bulk_create same rows {result['orm_bulk_create_s']:7.3f} s")
    print(
        f"for comparison: .delay() per student  {result['delay_one_by_one_scaled_s']:7.2f} s "
        f"(measured on {DELAY_SAMPLE}, scaled)"
    )
    print("goal: stage_dispatch < 30 s at 50,000 students")


if __name__ == "__main__":
    main()
