"""The verification tests' usual cast (conftest.py's ``me`` in an open campaign, its departments and staff),
built once per module inside ``module_rows`` instead of once per test.

Each persona signs in once (``students/tests/sessions.py``) and ``sign_in`` sends that session's cookie.
"""

import copy

import pytest
from django.conf import settings
from django.utils import translation

from students.tests.factories import CohortFactory, DepartmentFactory, SecretaryFactory, UserFactory
from students.tests.sessions import resume, session_of

from .factories import CampaignFactory, student_with_account


def build_cast() -> dict:
    """The objects conftest.py's fixtures of the same names make, with the same values."""
    department = DepartmentFactory(name="计算机学院")
    other_department = DepartmentFactory(name="外国语学院")
    cohort = CohortFactory(admission_year=2025, level="本科")
    registrar = UserFactory(role="registrar", username="registrar1")
    me = student_with_account(
        department=department,
        cohort=cohort,
        name="王小明",
        political_status="中共预备党员",
        exam_number="25110105150123",
    )
    return {
        "department": department,
        "other_department": other_department,
        "cohort": cohort,
        "registrar": registrar,
        "me": me,
        "secretary": SecretaryFactory(departments=[department]),
        "other_secretary": SecretaryFactory(departments=[other_department]),
        "campaign": CampaignFactory(name="2025级新生学籍核对", cohorts=[me.cohort], by=registrar),
    }


class SharedCast:
    """What a module's ``shared_cast`` fixture returns: the built objects and their personas' sessions."""

    def __init__(self, module_rows):
        with module_rows(), translation.override(settings.LANGUAGE_CODE):
            self.built = build_cast()
            self.sessions = {}
            for user in (self.built[name] for name in ("registrar", "secretary", "other_secretary")):
                self._sign_in_once(user)
            self._sign_in_once(self.built["me"].user)

    def _sign_in_once(self, user):
        self.sessions[user.pk] = session_of(user)

    def copy(self) -> dict:
        """A copy for one test, as Django's ``setUpTestData`` hands out: its in-memory changes stay its own."""
        return copy.deepcopy(self.built)

    def sign_in(self, client, user):
        """The persona's session made once for the module, or a fresh sign-in for anyone else."""
        if user.pk in self.sessions:
            resume(client, self.sessions[user.pk])
        else:
            client.force_login(user)


def fixtures_of(*names: str) -> dict:
    """Fixtures named after the cast's objects, each handing a test that object from its copy of the cast
    (``department`` → ``cast["department"]``), for a module to add with ``globals().update(fixtures_of(…))``."""

    def fixture_for(name):
        @pytest.fixture(name=name)
        def from_cast(cast):
            return cast[name]

        return from_cast

    return {name: fixture_for(name) for name in names}
