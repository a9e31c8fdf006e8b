"""The cast of the verification tests: one signed-in student in one open campaign."""

import pytest

from students.tests.factories import CohortFactory

from .factories import CampaignFactory, student_with_account


@pytest.fixture
def cohort(db):
    return CohortFactory(admission_year=2025, level="本科")


@pytest.fixture
def me(department, cohort):
    """The student doing the check; their record carries a 政治面貌 the page must not show."""
    return student_with_account(
        department=department,
        cohort=cohort,
        name="王小明",
        political_status="中共预备党员",
        exam_number="25110105150123",
    )


@pytest.fixture
def campaign(me, registrar):
    return CampaignFactory(name="2025级新生学籍核对", cohorts=[me.cohort], by=registrar)


@pytest.fixture
def checklist(campaign, me):
    return campaign.checklists.get(student=me)


@pytest.fixture
def me_client(client, me):
    client.force_login(me.user)
    return client
