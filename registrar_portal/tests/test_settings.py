"""Settings and the Celery app, as an operator starting the portal meets them.

The real settings module (not the test one) is run in a clean environment, so what is asserted is what
``manage.py`` gets on a server: in this process (``portal_settings``) where only the values matter, and in a
subprocess (``manage``) where starting the portal and its system checks is the point, since each subprocess
costs a Django start-up.  The settings also read ``<project root>/.env`` without overriding variables already
set, so the environment sets every variable the settings rely on explicitly (empty where it means "unset"): a
developer's ``.env`` cannot change the outcome.
"""

import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from celery import Celery
from celery.contrib.django.task import DjangoTask
from django.conf import global_settings
from django.core.exceptions import ImproperlyConfigured
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


def portal_settings(tmp_path, *, root=ROOT, env=None, **overrides) -> dict:
    """What ``django.conf.settings`` would hold under this environment: Django's defaults overlaid with what
    ``<root>/registrar_portal/settings.py`` sets, run in this process.  It raises what the module raises."""
    environment = env if env is not None else portal_env(tmp_path, **overrides)
    with mock.patch.dict(os.environ, environment, clear=True):  # .env values it reads vanish with the patch
        module = runpy.run_path(str(root / "registrar_portal" / "settings.py"))
    values = {name: getattr(global_settings, name) for name in dir(global_settings) if name.isupper()}
    values.update((name, value) for name, value in module.items() if name.isupper())
    return values


# ----------------------------------------------------------------------------
# DEBUG off refuses to start without a key and hosts
# ----------------------------------------------------------------------------


def test_debug_off_without_secret_key_refuses_to_start(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        portal_settings(tmp_path)


def test_debug_off_without_allowed_hosts_refuses_to_start(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="ALLOWED_HOSTS") as refused:
        portal_settings(tmp_path, SECRET_KEY="a-long-random-production-key-" + "x" * 40)
    assert "SECRET_KEY must be set" not in str(refused.value)


def test_debug_off_with_key_and_hosts_starts(tmp_path):
    """The settings load; manage.py check --deploy runs on them in test_security (one start-up for both)."""
    values = portal_settings(
        tmp_path,
        SECRET_KEY="a-long-random-production-key-" + "x" * 40,
        ALLOWED_HOSTS="rollcheck.example.edu.cn",
        **PRODUCTION_KEYS,
    )
    assert values["DEBUG"] is False
    assert values["ALLOWED_HOSTS"] == ["rollcheck.example.edu.cn"]
    assert values["ID_NUMBER_KEYS"] == [PRODUCTION_KEYS["ID_NUMBER_KEYS"]]


def test_debug_off_without_id_number_keys_refuses_to_start(tmp_path):
    """ID numbers are encrypted at rest: production must bring its own keys (docs/keys.md)."""
    with pytest.raises(ImproperlyConfigured, match="ID_NUMBER_KEYS"):
        portal_settings(
            tmp_path, SECRET_KEY="a-long-random-production-key-" + "x" * 40, ALLOWED_HOSTS="rollcheck.example.edu.cn"
        )


@pytest.mark.parametrize("debug", ["0", "false", "off"])
def test_debug_spelled_off_still_refuses(tmp_path, debug):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        portal_settings(tmp_path, DEBUG=debug)


def test_debug_on_with_nothing_else_set_runs(tmp_path):
    result = manage(tmp_path, "check", DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_debug_on_falls_back_to_development_key_and_local_hosts(tmp_path):
    values = portal_settings(tmp_path, DEBUG="1")
    assert values["SECRET_KEY"].startswith("django-insecure")
    assert set(values["ALLOWED_HOSTS"]) == {"127.0.0.1", "localhost", "[::1]"}


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
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY must be set when DEBUG is off"):
        portal_settings(tmp_path, root=project_copy(tmp_path, dot_env=None), env=env)


def test_dot_env_supplies_unset_variables(tmp_path, project_with_env_file):
    env = portal_env(tmp_path)
    for name in CLEARED:
        del env[name]
    values = portal_settings(tmp_path, root=project_with_env_file, env=env)
    assert (values["DEBUG"], values["SECRET_KEY"], values["ALLOWED_HOSTS"]) == (
        True,
        "from-dot-env",
        ["dotenv.example"],
    )


def test_environment_wins_over_dot_env(tmp_path, project_with_env_file):
    # The same empty variables these tests use everywhere: .env's DEBUG=1 must not rescue them.
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        portal_settings(tmp_path, root=project_with_env_file)


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


def celery_app(values: dict) -> Celery:
    """A Celery app configured from these settings the way registrar_portal/celery.py configures its own."""
    probe = Celery("probe", set_as_current=False)
    probe.config_from_object(SimpleNamespace(**values), namespace="CELERY")
    return probe


def test_without_redis_url_tasks_run_in_process(tmp_path):
    values = portal_settings(tmp_path, DEBUG="1")
    probe = celery_app(values)

    @probe.task(name="probe.add")
    def add(x, y):
        return x + y

    assert values["CELERY_TASK_ALWAYS_EAGER"] is True and probe.conf.task_always_eager is True
    assert probe.conf.broker_url.split(":")[0] == "memory"
    assert add.delay(2, 3).get(timeout=5) == 5


def test_with_redis_url_tasks_go_to_the_broker(tmp_path):
    values = portal_settings(tmp_path, DEBUG="1", REDIS_URL="redis://127.0.0.1:6379/15")
    probe = celery_app(values)
    assert values["CELERY_TASK_ALWAYS_EAGER"] is False and probe.conf.task_always_eager is False
    assert probe.conf.broker_url.split(":")[0] == "redis"
