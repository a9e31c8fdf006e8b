"""Queueing work: one safe way, so a broker that is down never turns a committed request into an error."""

import re
from pathlib import Path

import pytest

from registrar_portal.celery import app, enqueue

ROOT = Path(__file__).resolve().parents[2]
ran = []


@app.task(name="registrar_portal.tests.test_celery.note")
def note(value):
    ran.append(value)
    return value


@pytest.fixture(autouse=True)
def _clean():
    ran.clear()
    yield
    ran.clear()


def test_with_the_broker_refusing_connections_enqueue_logs_and_answers_false(broker_down, caplog):
    assert enqueue(note, "lost") is False
    assert "could not queue registrar_portal.tests.test_celery.note" in caplog.text
    assert "Connection refused" in caplog.text
    assert ran == []


@pytest.mark.django_db
def test_delay_on_commit_with_the_broker_down_does_not_raise_after_the_commit(
    broker_down, caplog, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        note.delay_on_commit("after commit")
    assert len(callbacks) == 1  # it ran, and raised nothing
    assert "could not queue registrar_portal.tests.test_celery.note" in caplog.text


def test_in_process_enqueue_runs_the_task_at_once():
    assert enqueue(note, "here") is True
    assert ran == ["here"]


# What publishes to the broker (``delay_on_commit`` is safe: SafeTask routes it through ``enqueue``).
DIRECT = re.compile(r"\.(delay|apply_async|send_task)\(")
SKIP = {"bench", "e2e", "node_modules", "var", "static", "staticfiles", "locale", "templates", "docs"}


def test_no_code_queues_a_task_except_through_the_safe_helper():
    """Tests and benches may; the portal's own code goes through ``enqueue`` / ``enqueue_on_commit``."""
    offenders = []
    folders = [f for f in ROOT.iterdir() if f.is_dir() and not f.name.startswith(".") and f.name not in SKIP]
    for path in sorted(path for folder in folders for path in folder.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if "tests" in relative.parts:
            continue
        if relative == Path("registrar_portal/celery.py"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if DIRECT.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == []
