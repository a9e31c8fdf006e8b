"""Department digests in the portal, and the group robot settings."""

import datetime
import importlib
import io

import openpyxl
import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from notices import digests, robots
from notices.models import DepartmentChannel, Digest, DigestDelivery
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


def test_a_digest_is_encrypted_on_disk(built):
    stored = digests.digest_path(built["mine"]).read_bytes()
    assert not stored.startswith(b"PK")  # not a zip, so not an .xlsx
    assert "王小明".encode() not in stored
    assert digests.digest_file_bytes(built["mine"]).startswith(b"PK")


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
DAY = datetime.timedelta(days=1)
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
    # The webhook's token is a credential too: masked on both pages.
    listing = html(client.get(reverse("notices:channel_list")))
    for shown in (page, listing):
        assert "abc123" not in shown
        assert "https://oapi.dingtalk.com/robot/send?access_token=abc••••••••" in shown

    # Saving again without typing the secret keeps it; the checkbox clears it.
    save_channel(client, department, robot="dingtalk", webhook_url=DINGTALK, signing_secret="")
    assert DepartmentChannel.objects.get().signing_secret == SECRET
    # Nor is the address shown again: left empty, the saved one is kept.
    save_channel(client, department, robot="dingtalk", webhook_url="")
    assert DepartmentChannel.objects.get().webhook_url == DINGTALK
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


def robot_columns() -> list[str]:
    """Every stored value where a robot's address or secret could be: the raw columns, as a dump shows them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_url, signing_secret FROM notices_departmentchannel")
        values = [value for row in cursor.fetchall() for value in row]
        cursor.execute("SELECT recipient, last_error FROM notices_digestdelivery")
        values += [value for row in cursor.fetchall() for value in row]
    return values


def test_a_robots_webhook_token_and_secret_are_not_stored_in_plain_text(client, registrar, department, built):
    client.force_login(registrar)
    save_channel(client, department, robot="dingtalk", webhook_url=DINGTALK, signing_secret=SECRET)
    digests.digest_build(
        department_id=department.pk, campaign_id=built["mine"].campaign_id, day=timezone.localdate() - DAY
    )

    stored = robot_columns()
    assert DigestDelivery.objects.filter(channel="robot").exists()
    assert not [value for value in stored if "abc123" in value or "dingtalk.com" in value or SECRET in value]
    channel = DepartmentChannel.objects.get()  # and the portal still reads them
    assert (channel.webhook_url, channel.signing_secret) == (DINGTALK, SECRET)


def test_the_migration_encrypts_robots_saved_in_plain_text(department):
    """Rows written before 0003 (plain URL and secret, the URL as a delivery's recipient) are sealed in place."""
    migration = importlib.import_module("notices.migrations.0003_outbox_encrypted_robots")
    campaign = CampaignFactory()
    digest = Digest.objects.create(department=department, campaign=campaign, day=timezone.localdate())
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO notices_departmentchannel (department_id, robot, webhook_url, signing_secret) "
            "VALUES (%s, 'dingtalk', %s, %s)",
            [department.pk, DINGTALK, SECRET],
        )
        cursor.execute(
            "INSERT INTO notices_digestdelivery (digest_id, channel, recipient, status, attempts, last_error) "
            "VALUES (%s, 'robot', %s, 'sent', 1, '')",
            [digest.pk, DINGTALK],
        )

    migration.encrypt_robots(None, connection.schema_editor())
    migration.encrypt_robots(None, connection.schema_editor())  # twice: nothing is sealed twice

    assert not [value for value in robot_columns() if "abc123" in value or SECRET in value]
    channel = DepartmentChannel.objects.get()
    assert (channel.webhook_url, channel.signing_secret) == (DINGTALK, SECRET)
    assert DigestDelivery.objects.get().recipient == robots.recipient_key(DINGTALK)
