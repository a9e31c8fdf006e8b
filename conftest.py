"""Shared fixtures: the cast every test module uses, and service guards.

Tests that need PostgreSQL or Redis skip on a laptop without them; with
``REQUIRE_SERVICES=1`` (set by .ci/run) a missing service fails the test.
"""

import hashlib
import itertools
import os
import socket
import sqlite3
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db import connection, transaction

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def _missing(reason):
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def _groups_of(item) -> str:
    return "_".join(
        sorted(
            {
                str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                for mark in item.iter_markers("xdist_group")
            }
        )
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """The browser journeys first.  With ``--dist loadgroup`` they run one after another in one worker,
    the longest stretch of the suite: started last, they kept one worker busy while the other sat idle.

    pytest-xdist 3.8 marks a grouped test by appending ``@group`` to ``item._nodeid``, which pytest 9.2
    no longer reads (its node ids are structured), so every group was silently spread over both workers
    (pytest-dev/pytest-xdist#1386).  Until xdist handles it, the suffix is set here on the structured id.
    """
    items.sort(key=lambda item: "browser" not in _groups_of(item).split("_"))
    if not getattr(config.option, "loadgroup", False):
        return
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # an older pytest: xdist's own suffix works
        return
    for item in items:
        groups = _groups_of(item)
        if groups and "@" not in item.nodeid and isinstance(getattr(item, "_id", None), NodeId):
            item._id = NodeId.parse(f"{item.nodeid}@{groups}")


@pytest.fixture(autouse=True)
def _service_guard(request):
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        _missing("needs PostgreSQL: set DATABASE_URL=postgres://…")
    if request.node.get_closest_marker("redis"):
        if not settings.REDIS_URL:
            _missing("needs Redis: set REDIS_URL=redis://…")
        if not _reachable(settings.REDIS_URL, 6379):
            _missing(f"Redis at {settings.REDIS_URL} does not answer")


@pytest.fixture(autouse=True)
def _portal_language():
    """Each test starts in the portal's default language, whatever the previous one activated."""
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


@pytest.fixture(scope="session")
def _private_roots(tmp_path_factory):
    return tmp_path_factory.mktemp("private"), itertools.count()


@pytest.fixture(autouse=True)
def _private_root(request, settings, _private_roots):
    """Each test its own private files folder, not yet made (the code makes what it writes).

    ``tmp_path / "private"`` for a test that uses ``tmp_path`` (some look there), else a numbered
    folder: making a ``tmp_path`` for every test cost more than many tests.
    """
    if "tmp_path" in request.fixturenames:
        settings.PRIVATE_ROOT = request.getfixturevalue("tmp_path") / "private"
        return
    base, numbers = _private_roots
    settings.PRIVATE_ROOT = base / str(next(numbers))


# ----------------------------------------------------------------------------
# The migrated SQLite test database, kept between runs
# ----------------------------------------------------------------------------
# Migrating an empty SQLite database costs each test process 8-10 s of CPU, nearly all of it Django
# re-rendering the migration states for SQLite's table rebuilds.  The migrated database is kept in
# var/test-db/ under a digest of everything that decides it, and the next process with the same digest
# copies it in (SQLite's backup API, as Django's parallel runner clones) instead of migrating.
# `--create-db` or TEST_DB_CACHE=0 migrate from scratch, as CI's fresh checkout always does.
TEST_DB_CACHE = Path(__file__).resolve().parent / "var" / "test-db"


def _schema_digest() -> str:
    """Every migration file, the modules their operations name (field classes, functions), the apps made
    without migrations, and the versions of Django, Python and SQLite."""
    import django
    from django.apps import apps
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    files = set()
    for migration in loader.disk_migrations.values():
        module = sys.modules[type(migration).__module__]
        files.add(module.__file__)
        for value in vars(module).values():
            named = value if isinstance(value, type(sys)) else sys.modules.get(getattr(value, "__module__", ""))
            if getattr(named, "__file__", None):
                files.add(named.__file__)
    for app in apps.get_app_configs():
        if app.label in loader.unmigrated_apps and app.models_module is not None:
            files.add(app.models_module.__file__)
    digest = hashlib.sha256(f"{django.__version__} {sys.version} {sqlite3.sqlite_version}".encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + Path(name).read_bytes())
    return digest.hexdigest()[:20]


def _keep_migrated_sqlite():
    """Make the next ``migrate`` (the one that creates the test database) copy a kept database when one
    matches, and keep what it migrated otherwise.  Only an in-memory SQLite test database is touched."""
    from django.core.management.commands import migrate
    from django.db import connections

    original = migrate.Command.handle

    def handle(self, *args, **options):
        migrate.Command.handle = original  # once: tests that run migrate themselves get the real one
        target = connections[options["database"]]
        if target.vendor != "sqlite" or not target.is_in_memory_db():
            return original(self, *args, **options)
        kept = TEST_DB_CACHE / f"sqlite-{_schema_digest()}.sqlite3"
        target.ensure_connection()
        try:
            # Read-only: opening a file that another run just replaced fails instead of making an empty one.
            source = sqlite3.connect(f"{kept.as_uri()}?mode=ro", uri=True)
        except sqlite3.OperationalError:
            pass
        else:
            try:
                source.backup(target.connection)
                return None
            finally:
                source.close()
        result = original(self, *args, **options)
        TEST_DB_CACHE.mkdir(parents=True, exist_ok=True)
        for stale in TEST_DB_CACHE.glob("sqlite-*.sqlite3"):
            stale.unlink(missing_ok=True)
        partial = kept.with_suffix(f".{os.getpid()}.partial")
        copy = sqlite3.connect(partial)
        try:
            target.connection.backup(copy)
        finally:
            copy.close()
        os.replace(partial, kept)  # whole or not at all, when two workers finish together
        return result

    migrate.Command.handle = handle


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, django_db_createdb):
    """pytest-django's hook that runs just before the test databases are created."""
    if not django_db_createdb and os.environ.get("TEST_DB_CACHE", "1") != "0":
        _keep_migrated_sqlite()


def _kept_rows(django_db_blocker):
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
    try:
        yield django_db_blocker.unblock
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture(scope="module")
def module_rows(django_db_setup, django_db_blocker):
    """A transaction around one test module, for a cast built once instead of once per test.

    A module-scoped fixture builds its rows inside ``with module_rows():``; the module's
    tests share them, each test still rolls back its own changes (pytest-django runs it in
    a savepoint), and the rows vanish after the module's last test.  Every database test
    of the module that runs after the first user sees them too.  Hand each test a
    ``copy.deepcopy`` of the built objects, as Django's ``setUpTestData`` does, so one
    test's in-memory changes do not reach the next.
    """
    yield from _kept_rows(django_db_blocker)


@pytest.fixture(scope="class")
def class_rows(django_db_setup, django_db_blocker):
    """``module_rows`` for the tests of one class only."""
    yield from _kept_rows(django_db_blocker)


@pytest.fixture
def department(db):
    from students.tests.factories import DepartmentFactory

    return DepartmentFactory(name="计算机学院")


@pytest.fixture
def other_department(db):
    from students.tests.factories import DepartmentFactory

    return DepartmentFactory(name="外国语学院")


@pytest.fixture
def student(department):
    from students.tests.factories import StudentFactory

    return StudentFactory(department=department)


@pytest.fixture
def other_student(other_department):
    from students.tests.factories import StudentFactory

    return StudentFactory(department=other_department)


@pytest.fixture
def secretary(department):
    from students.tests.factories import SecretaryFactory

    return SecretaryFactory(departments=[department])


@pytest.fixture
def other_secretary(other_department):
    from students.tests.factories import SecretaryFactory

    return SecretaryFactory(departments=[other_department])


@pytest.fixture
def registrar(db):
    from students.tests.factories import UserFactory

    return UserFactory(role="registrar", username="registrar1")


class _Broker:
    """Celery's broker for one test: ``down()`` points it at a closed local port, ``back()`` runs in-process."""

    def __init__(self, settings):
        from registrar_portal.celery import app

        self.app, self.settings = app, settings
        self.saved = app.conf.task_always_eager, app.conf.broker_url

    def _use(self, *, eager: bool, url: str):
        self.settings.CELERY_TASK_ALWAYS_EAGER = eager
        self.app.conf.task_always_eager = eager
        self.app.conf.broker_url = url
        # The connection pools were made for the previous URL.
        self.app._pool = None
        self.app.amqp._producer_pool = None

    def down(self) -> str:
        with socket.socket() as probe:  # a port nothing listens on once the probe is closed
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        url = f"redis://127.0.0.1:{port}/0"
        self._use(eager=False, url=url)
        return url

    def back(self):
        self._use(eager=True, url=self.saved[1])

    def restore(self):
        self._use(eager=self.saved[0], url=self.saved[1])


@pytest.fixture
def broker_down(settings):
    """Tasks are published to a broker that refuses connections: a real connection failure, nothing patched.

    ``broker_down.back()`` brings "the broker" back (tasks then run in-process).
    """
    broker = _Broker(settings)
    broker.down()
    yield broker
    broker.restore()
