"""Shared fixtures: the cast every test module uses, and service guards.

Tests that need PostgreSQL or Redis skip on a laptop without them; with
``REQUIRE_SERVICES=1`` (set by .ci/run) a missing service fails the test.
"""

import os
import socket
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


@pytest.fixture(autouse=True)
def _private_root(settings, tmp_path):
    settings.PRIVATE_ROOT = tmp_path / "private"


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
