"""Department digests in the portal, and the group robot settings."""

import io

import openpyxl
import pytest
from django.urls import reverse
from django.utils import timezone

from notices import digests
from notices.models import DepartmentChannel
from students.tests.factories import CohortFactory
from verification.tests.factories import CampaignFactory, student_with_account

from .cast import html, table

pytestmark = pytest.mark.django_db


@pytest.fixture
def built(department, other_department):
    """Today's digests of two departments, each with one student not done."""
    cohort = CohortFactory()
    mine = student_with_account(department=department, cohort=cohort, name="王小明")
    theirs = student_with_account(department=other_department, cohort=cohort, name="李外文")
    campaign = CampaignFactory(cohorts=[cohort])
    today = timezone.localdate()
    return {
        "mine": digests.digest_build(department_id=department.pk, campaign_id=campaign.pk, day=today),
        "theirs": digests.digest_build(department_id=other_department.pk, campaign_id=campaign.pk, day=today),
        "students": (mine, theirs),
    }


def download(client, digest):
    return client.get(reverse("notices:digest_download", args=[digest.pk]))


def test_a_secretary_lists_and_downloads_their_departments_digest(client, secretary, built):
    client.force_login(secretary)
    rows = table(html(client.get(reverse("notices:digest_list"))), "digests")
    assert [row[1] for row in rows] == ["计算机学院"]

    response = download(client, built["mine"])

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert "no-store" in response["Cache-Control"]
    assert response["X-Content-Type-Options"] == "nosniff"
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    cells = {cell for row in sheet.iter_rows(values_only=True) for cell in row if cell}
    assert "王小明" in cells and "李外文" not in cells


def test_another_departments_secretary_gets_404_for_a_digest(client, other_secretary, built):
    client.force_login(other_secretary)
    assert download(client, built["mine"]).status_code == 404
    assert download(client, built["theirs"]).status_code == 200
    assert "计算机学院" not in html(client.get(reverse("notices:digest_list")))


def test_registrar_staff_see_every_departments_digest(client, registrar, built):
    client.force_login(registrar)
    rows = table(html(client.get(reverse("notices:digest_list"))), "digests")
    assert sorted(row[1] for row in rows) == ["外国语学院", "计算机学院"]
    assert download(client, built["theirs"]).status_code == 200


def test_students_cannot_reach_digests(client, built):
    client.force_login(built["students"][0].user)
    assert client.get(reverse("notices:digest_list")).status_code == 404
    assert download(client, built["mine"]).status_code == 404


# ---------------------------------------------------------------------------
# Group robots
# ---------------------------------------------------------------------------

DINGTALK = "https://oapi.dingtalk.com/robot/send?access_token=abc123"
SECRET = "SEC0123456789abcdef0123456789abcdef"


def save_channel(client, department, **data):
    return client.post(reverse("notices:channel_edit", args=[department.pk]), data, follow=True)


def test_registrar_sets_a_robot_and_sees_the_secret_masked(client, registrar, department):
    client.force_login(registrar)
    page = html(save_channel(client, department, robot="dingtalk", webhook_url=DINGTALK, signing_secret=SECRET))

    channel = DepartmentChannel.objects.get(department=department)
    assert (channel.robot, channel.webhook_url, channel.signing_secret) == ("dingtalk", DINGTALK, SECRET)
    assert SECRET not in page
    assert "SEC••••••••cdef" in page
    assert SECRET not in html(client.get(reverse("notices:channel_list")))

    # Saving again without typing the secret keeps it; the checkbox clears it.
    save_channel(client, department, robot="dingtalk", webhook_url=DINGTALK, signing_secret="")
    assert DepartmentChannel.objects.get().signing_secret == SECRET
    save_channel(client, department, robot="dingtalk", webhook_url=DINGTALK, clear_secret="on")
    assert DepartmentChannel.objects.get().signing_secret == ""


@pytest.mark.parametrize(
    "url",
    [
        "http://oapi.dingtalk.com/robot/send?access_token=abc",  # not HTTPS
        "https://127.0.0.1:8000/robot/send",  # somewhere inside the campus
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc",  # another robot's address
    ],
)
def test_a_webhook_outside_the_robots_own_https_address_is_refused(client, registrar, department, url):
    client.force_login(registrar)
    page = html(save_channel(client, department, robot="dingtalk", webhook_url=url))
    assert "地址应以 https://oapi.dingtalk.com/ 开头" in page
    assert not DepartmentChannel.objects.exists()


def test_secretaries_cannot_change_robots(client, secretary, department):
    client.force_login(secretary)
    response = save_channel(client, department, robot="dingtalk", webhook_url=DINGTALK, signing_secret=SECRET)
    assert response.status_code == 404
    assert client.get(reverse("notices:channel_list")).status_code == 404
    assert not DepartmentChannel.objects.exists()
