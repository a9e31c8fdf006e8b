"""Shared fixtures: the cast every test module uses, and service guards.

Tests that need PostgreSQL or Redis skip on a laptop without them; with
``REQUIRE_SERVICES=1`` (set by .ci/run) a missing service fails the test.
"""

import os
import socket
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db import connection

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
