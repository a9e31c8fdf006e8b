"""Settings and the Celery app, as an operator starting the portal meets them.

The settings are checked in a subprocess running the real settings module
(not the test one), so what is asserted is what ``manage.py`` does on a
server.  The settings also read ``<project root>/.env`` without overriding
variables already set, so the subprocess sets every variable it relies on
explicitly (empty where it means "unset"): a developer's ``.env`` cannot
change the outcome.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from celery.contrib.django.task import DjangoTask
from django.db import transaction

from registrar_portal.celery import app

ROOT = Path(__file__).resolve().parents[2]
CLEARED = ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "ID_NUMBER_KEYS", "ID_NUMBER_HASH_KEY")
PRODUCTION_KEYS = {
    "ID_NUMBER_KEYS": "8k1JbZxYQm3Yt1P8m6w2y9S0fZ4n7q5r1u3v6x8z0A4=",
    "ID_NUMBER_HASH_KEY": "a-separate-long-random-hash-key-" + "y" * 32,
}


def portal_env(tmp_path, **overrides) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in CLEARED}
    env.update(
        DJANGO_SETTINGS_MODULE="registrar_portal.settings",
        # Set but empty: an empty variable is "off"/"missing" to the settings, and
        # a set variable is never replaced by a value from .env.
        DEBUG="",
        SECRET_KEY="",
        ALLOWED_HOSTS="",
        ID_NUMBER_KEYS="",
        ID_NUMBER_HASH_KEY="",
        REDIS_URL="",
        # Nothing the check writes or reads depends on the current directory or the real database.
        DATABASE_URL=f"sqlite:///{tmp_path / 'check.sqlite3'}",
        PRIVATE_ROOT=str(tmp_path / "private"),
        STATIC_ROOT=str(tmp_path / "static"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(overrides)
    return env


def manage(tmp_path, *args, root=ROOT, env=None, **overrides) -> subprocess.CompletedProcess:
    if args[0] == "shell":
        args = (*args, "--no-imports")  # Django 5.2's shell otherwise announces its auto-imports on stdout
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=root,
        env=env if env is not None else portal_env(tmp_path, **overrides),
        capture_output=True,
        text=True,
        timeout=120,
    )


# ----------------------------------------------------------------------------
# DEBUG off refuses to start without a key and hosts
# ----------------------------------------------------------------------------


def test_debug_off_without_secret_key_refuses_to_start(tmp_path):
    result = manage(tmp_path, "check")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert "ImproperlyConfigured" in result.stderr


def test_debug_off_without_allowed_hosts_refuses_to_start(tmp_path):
    result = manage(tmp_path, "check", SECRET_KEY="a-long-random-production-key-" + "x" * 40)
    assert result.returncode != 0
    assert "ALLOWED_HOSTS" in result.stderr
    assert "SECRET_KEY must be set" not in result.stderr


def test_debug_off_with_key_and_hosts_starts(tmp_path):
    result = manage(
        tmp_path,
        "check",
        SECRET_KEY="a-long-random-production-key-" + "x" * 40,
        ALLOWED_HOSTS="rollcheck.example.edu.cn",
        **PRODUCTION_KEYS,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_debug_off_without_id_number_keys_refuses_to_start(tmp_path):
    """ID numbers are encrypted at rest: production must bring its own keys (docs/keys.md)."""
    result = manage(
        tmp_path,
        "check",
        SECRET_KEY="a-long-random-production-key-" + "x" * 40,
        ALLOWED_HOSTS="rollcheck.example.edu.cn",
    )
    assert result.returncode != 0
    assert "ID_NUMBER_KEYS" in result.stderr


@pytest.mark.parametrize("debug", ["0", "false", "off"])
def test_debug_spelled_off_still_refuses(tmp_path, debug):
    result = manage(tmp_path, "check", DEBUG=debug)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_debug_on_with_nothing_else_set_runs(tmp_path):
    result = manage(tmp_path, "check", DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_debug_on_falls_back_to_development_key_and_local_hosts(tmp_path):
    code = (
        "from django.conf import settings;"
        "print(settings.SECRET_KEY.startswith('django-insecure'));"
        "print(','.join(settings.ALLOWED_HOSTS))"
    )
    result = manage(tmp_path, "shell", "-c", code, DEBUG="1")
    assert result.returncode == 0, result.stderr
    insecure, hosts = result.stdout.split()
    assert insecure == "True"
    assert set(hosts.split(",")) == {"127.0.0.1", "localhost", "[::1]"}


# ----------------------------------------------------------------------------
# The .env file: read for what the environment leaves unset, never over it
# ----------------------------------------------------------------------------


def project_copy(tmp_path, dot_env: str | None) -> Path:
    """A copy of the project's settings package beside the real apps, with a .env of our choosing."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(
        ROOT / "registrar_portal", root / "registrar_portal", ignore=shutil.ignore_patterns("tests", "__pycache__")
    )
    shutil.copy(ROOT / "manage.py", root / "manage.py")
    for name in ("students", "verification", "notices", "templates", "static", "locale"):
        if (ROOT / name).exists():
            (root / name).symlink_to(ROOT / name)
    if dot_env is not None:
        (root / ".env").write_text(dot_env)
    return root


@pytest.fixture
def project_with_env_file(tmp_path):
    return project_copy(tmp_path, "DEBUG=1\nSECRET_KEY=from-dot-env\nALLOWED_HOSTS=dotenv.example\n")


def test_truly_unset_debug_means_off(tmp_path):
    """No DEBUG, SECRET_KEY or ALLOWED_HOSTS anywhere (environment or .env): refuses to start."""
    env = portal_env(tmp_path)
    for name in CLEARED:
        del env[name]
    result = manage(tmp_path, "check", root=project_copy(tmp_path, dot_env=None), env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_dot_env_supplies_unset_variables(tmp_path, project_with_env_file):
    env = portal_env(tmp_path)
    for name in CLEARED:
        del env[name]
    code = "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY, settings.ALLOWED_HOSTS)"
    result = manage(tmp_path, "shell", "-c", code, root=project_with_env_file, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True from-dot-env ['dotenv.example']"


def test_environment_wins_over_dot_env(tmp_path, project_with_env_file):
    # The same empty variables these tests use everywhere: .env's DEBUG=1 must not rescue them.
    result = manage(tmp_path, "check", root=project_with_env_file)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


# ----------------------------------------------------------------------------
# Celery
# ----------------------------------------------------------------------------

calls: list = []


@app.task(name="registrar_portal.tests.test_settings.remember")
def remember(value):
    calls.append(value)
    return value


@pytest.fixture
def no_calls():
    calls.clear()
    yield calls
    calls.clear()


def test_celery_tasks_have_delay_on_commit():
    assert issubclass(app.Task, DjangoTask)
    assert callable(app.Task.delay_on_commit)
    assert isinstance(remember, DjangoTask)


@pytest.mark.django_db
def test_delay_on_commit_runs_only_after_commit(no_calls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        remember.delay_on_commit("after commit")
        assert calls == []  # not yet: the transaction is still open
    assert calls == ["after commit"]


@pytest.mark.django_db
def test_delay_on_commit_never_runs_when_the_transaction_rolls_back(no_calls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            remember.delay_on_commit("rolled back")
            raise RuntimeError
    assert callbacks == []
    assert calls == []


CELERY_PROBE = """
from django.conf import settings
from registrar_portal.celery import app

@app.task(name="probe.add")
def add(x, y):
    return x + y

print(settings.CELERY_TASK_ALWAYS_EAGER, app.conf.task_always_eager, app.conf.broker_url.split(":")[0])
if app.conf.task_always_eager:
    print(add.delay(2, 3).get(timeout=5))
"""


def test_without_redis_url_tasks_run_in_process(tmp_path):
    result = manage(tmp_path, "shell", "-c", CELERY_PROBE, DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "memory", "5"]


def test_with_redis_url_tasks_go_to_the_broker(tmp_path):
    result = manage(tmp_path, "shell", "-c", CELERY_PROBE, DEBUG="1", REDIS_URL="redis://127.0.0.1:6379/15")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "redis"]
