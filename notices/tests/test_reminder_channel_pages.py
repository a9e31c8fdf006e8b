"""The registrar's 提醒渠道 page: which channels reminders use, in what order, with which credentials.

Credentials are write-only: typed once, stored encrypted, never put back into a page.  The test
message goes to the platforms' local fake servers (notices/tests/fake_providers.py), nothing patched.
"""

import re
import uuid

import pytest
from django.core.cache import cache
from django.db import connection
from django.urls import reverse

from notices import channels, reminders
from notices.models import ChannelConfig, Delivery
from students.tests.factories import CohortFactory, StudentFactory
from verification.tests.factories import CampaignFactory

from .fake_providers import ALIYUN, WECOM, Fake

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake():
    cache.clear()
    with Fake() as server:
        yield server
    cache.clear()


def order_on_page(client) -> list[str]:
    page = client.get(reverse("notices:reminder_channels")).content.decode()
    return re.search(r'id="effective-order">当前顺序：(.*?)(?: <span|</p>)', page)[1].split(" → ")


def platform_address(name: str, fake):
    """The fake's address, set as an administrator sets a private deployment's (the page does not offer it)."""
    key = "endpoint" if name == "sms" else "api"
    ChannelConfig.objects.create(name=name, options={key: fake.url + ("/" if name == "sms" else "")})


def wecom_form(**changes) -> dict:
    values = {"enabled": "on", "position": 1, "corp_id": WECOM["corp"], "agent_id": WECOM["agent"],
              "userid_field": "student_number", "secret": WECOM["secret"]}  # fmt: skip
    return {key: value for key, value in (values | changes).items() if value is not None}


def test_the_page_starts_from_the_default_order_and_the_registrar_moves_a_channel_first(client, registrar, settings):
    settings.REMINDER_CHANNELS = ["email", "console"]
    client.force_login(registrar)

    assert order_on_page(client) == ["电子邮件", "控制台（仅写日志）"]

    response = client.post(reverse("notices:reminder_channels"), {"name": "console", "move": "up"})

    assert response.status_code == 302
    assert order_on_page(client) == ["控制台（仅写日志）", "电子邮件"]
    assert reminders.channel_order() == ["console", "email"]


def test_wecom_credentials_are_saved_encrypted_and_never_shown_back(client, registrar, settings):
    settings.REMINDER_CHANNELS = ["email"]
    client.force_login(registrar)
    url = reverse("notices:reminder_channel_edit", args=["wecom"])

    response = client.post(url, wecom_form())

    assert response.status_code == 302
    config = ChannelConfig.objects.get(name="wecom")
    assert config.enabled and config.secret == WECOM["secret"] and config.updated_by == registrar
    assert config.options["corp_id"] == WECOM["corp"]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT secret FROM {ChannelConfig._meta.db_table} WHERE name = 'wecom'")
        assert WECOM["secret"] not in cursor.fetchone()[0]
    for page in (client.get(url), client.get(reverse("notices:reminder_channels"))):
        assert WECOM["secret"] not in page.content.decode()
    form_page = client.get(url).content.decode()
    assert "密钥已保存（不显示）" in form_page
    assert 'name="api"' not in form_page  # the worker calls the official platform only
    # WeCom is first now, e-mail (the default) after it.
    assert order_on_page(client) == ["企业微信", "电子邮件"]

    # Saved again without typing the secret: the saved one stays.
    client.post(url, wecom_form(secret="", corp_id="ww0000othercorp"))

    config.refresh_from_db()
    assert (config.secret, config.options["corp_id"]) == (WECOM["secret"], "ww0000othercorp")


def test_a_channel_is_not_enabled_without_its_settings(client, registrar):
    client.force_login(registrar)

    response = client.post(
        reverse("notices:reminder_channel_edit", args=["sms"]), {"enabled": "on", "position": 1, "provider": "aliyun"}
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "启用前请填写此项" in page and "启用前请填写密钥" in page
    assert not ChannelConfig.objects.filter(name="sms", enabled=True).exists()


def test_a_reminder_goes_out_on_the_channel_the_page_configured(
    client, registrar, fake, settings, django_capture_on_commit_callbacks
):
    settings.REMINDER_CHANNELS = ["email"]
    platform_address("wecom", fake)
    client.force_login(registrar)
    client.post(reverse("notices:reminder_channel_edit", args=["wecom"]), wecom_form())
    assert ChannelConfig.objects.get(name="wecom").options["api"] == fake.url  # kept: the page does not edit it
    student = StudentFactory(email="", cohort=CohortFactory(), student_number="2025990001")
    campaign = CampaignFactory(cohorts=[student.cohort])

    with django_capture_on_commit_callbacks(execute=True):
        stage = reminders.remind_now(campaign=campaign, student_ids=[student.pk], by=None, request_key=uuid.uuid4().hex)

    assert list(Delivery.objects.filter(stage=stage).values_list("channel", "status")) == [("wecom", "sent")]
    assert [r["body"]["touser"] for r in fake.of("wecom") if r.get("ok")] == ["2025990001"]


def test_a_test_sms_goes_to_the_provider_before_the_channel_is_enabled(client, registrar, fake, settings):
    settings.SMS_QUIET_HOURS = ""
    platform_address("sms", fake)
    client.force_login(registrar)
    form = {"position": 1, "provider": "aliyun", "access_key_id": ALIYUN["id"], "sign_name": ALIYUN["sign"],
            "template_id": ALIYUN["template"], "secret": ALIYUN["secret"]}  # fmt: skip
    client.post(reverse("notices:reminder_channel_edit", args=["sms"]), form)
    test_url = reverse("notices:reminder_channel_test", args=["sms"])

    response = client.post(test_url, {"to": "139 1234 5678"}, follow=True)

    assert "已通过“短信”向 13912345678 发送测试消息。" in response.content.decode()
    (request,) = [r for r in fake.of("aliyun") if r.get("ok")]
    assert request["params"]["PhoneNumbers"] == "13912345678"
    assert not ChannelConfig.objects.get(name="sms").enabled  # tried, not switched on

    refused = client.post(test_url, {"to": "13800000001"}, follow=True).content.decode()
    assert "发送失败：" in refused and "isv.MOBILE_NUMBER_ILLEGAL" in refused


def test_a_test_message_on_a_channel_without_settings_says_what_is_missing(client, registrar):
    client.force_login(registrar)

    response = client.post(
        reverse("notices:reminder_channel_test", args=["dingtalk"]), {"to": "2025990001"}, follow=True
    )

    assert "请先填写并保存这个渠道的设置。" in response.content.decode()


def test_the_list_counts_the_students_each_channel_could_reach(client, registrar, fake, settings):
    settings.REMINDER_CHANNELS = ["email", "console"]
    cohort = CohortFactory()
    StudentFactory(email="a@example.edu", phone="", cohort=cohort)
    StudentFactory(email="", phone="13912345678", cohort=cohort)
    client.force_login(registrar)

    page = client.get(reverse("notices:reminder_channels")).content.decode()

    rows = dict(re.findall(r'data-channel="(\w+)">.*?<td>(\d+)</td>\s*<td>', page, re.S))
    assert rows["email"] == "1" and rows["console"] == "2" and rows["sms"] == "0"  # SMS not configured
    assert channels.reminder_channel_order() == ["email", "console"]


def test_the_registrar_says_which_staff_attribute_is_the_wecom_userid_for_counsellor_reminders(client, registrar):
    client.force_login(registrar)
    url = reverse("notices:reminder_channel_edit", args=["wecom"])
    assert "教师账号对应" in client.get(url).content.decode()

    assert client.post(url, wecom_form(staff_userid_field="username")).status_code == 302
    assert ChannelConfig.objects.get(name="wecom").options["staff_userid_field"] == "username"

    # Left unset, counsellors keep getting e-mail only.
    assert client.post(url, wecom_form(staff_userid_field="")).status_code == 302
    assert "staff_userid_field" not in ChannelConfig.objects.get(name="wecom").options
