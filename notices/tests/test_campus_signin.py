"""Signing in from the campus app (notices/signin.py) against the local fake WeCom / DingTalk server.

The browser's trips to the platform are taken by hand (the platform's page is not ours); every code the
portal exchanges goes to the fake, which answers as WeCom and DingTalk do.
"""

import logging
import re
import urllib.parse

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from notices.models import ChannelConfig
from students.models import User
from students.tests.factories import CohortFactory, StudentFactory, UserFactory
from verification.tests.factories import CampaignFactory, student_with_account

from .fake_providers import DINGTALK, WECOM, Fake

pytestmark = pytest.mark.django_db

IN_WECOM = "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 MicroMessenger/8.0.49 wxwork/4.1.22 MicroMessenger/7.0.1"
IN_DINGTALK = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 AliApp(DingTalk/7.6.0) DingTalk(7.6.0)"


@pytest.fixture
def fake():
    cache.clear()
    with Fake() as server:
        yield server
    cache.clear()


@pytest.fixture
def wecom_app(fake):
    return ChannelConfig.objects.create(
        name="wecom",
        enabled=True,
        options={"corp_id": WECOM["corp"], "agent_id": str(WECOM["agent"]), "api": fake.url},
        secret=WECOM["secret"],
    )


@pytest.fixture
def dingtalk_app(fake):
    return ChannelConfig.objects.create(
        name="dingtalk",
        enabled=True,
        options={"app_key": DINGTALK["key"], "agent_id": str(DINGTALK["agent"]), "api": fake.url, "new_api": fake.url},
        secret=DINGTALK["secret"],
    )


@pytest.fixture
def student(department):
    """An imported record whose student has never signed in (no account yet)."""
    return StudentFactory(department=department, cohort=CohortFactory(), name="王梓萱")


def query_of(url: str) -> dict:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def start(client, platform="wecom", *, next_url="", agent=IN_WECOM):
    url = reverse("notices:campus_signin", args=[platform]) + (
        f"?next={urllib.parse.quote(next_url)}" if next_url else ""
    )
    response = client.get(url, HTTP_USER_AGENT=agent)
    assert response.status_code == 302, response.content.decode()
    return response["Location"]


def come_back(client, platform, code, state, *, key="code"):
    return client.get(reverse("notices:campus_signin_callback", args=[platform]), {key: code, "state": state})


def signed_in_as(client) -> str | None:
    return client.session.get(SESSION_KEY)


def page(response) -> str:
    return response.content.decode()


# ---------------------------------------------------------------------------
# Offered only when the school has configured the app
# ---------------------------------------------------------------------------


def test_the_buttons_appear_only_for_a_configured_app(client, fake):
    login_page = page(client.get(reverse("login")))
    assert "企业微信登录" not in login_page and "钉钉登录" not in login_page
    assert client.get(reverse("notices:campus_signin", args=["wecom"])).status_code == 404

    ChannelConfig.objects.create(
        name="wecom", options={"corp_id": WECOM["corp"], "agent_id": "1000002"}, secret=WECOM["secret"]
    )
    login_page = page(client.get(reverse("login")))
    assert "企业微信登录" in login_page and "钉钉登录" not in login_page
    assert client.get(reverse("notices:campus_signin", args=["dingtalk"])).status_code == 404
    assert client.get(reverse("notices:campus_signin", args=["wechat"])).status_code == 404


# ---------------------------------------------------------------------------
# The journey: a reminder link opened in WeCom
# ---------------------------------------------------------------------------


def test_a_reminder_link_opened_in_wecom_signs_the_student_in_and_opens_the_checklist(
    client, fake, wecom_app, student, registrar
):
    campaign = CampaignFactory(cohorts=[student.cohort], by=registrar)
    # The reminder's link (notices/reminders.py): the portal's address + the checklist.
    link = urllib.parse.urlsplit(settings.PORTAL_URL.rstrip("/") + f"/check/{campaign.pk}/").path
    assert link == reverse("verification:checklist", args=[campaign.pk])

    to_sign_in = client.get(link, HTTP_USER_AGENT=IN_WECOM)
    assert to_sign_in.status_code == 302
    login_page = page(client.get(to_sign_in["Location"], HTTP_USER_AGENT=IN_WECOM))
    button = re.search(r'href="([^"]+)">企业微信登录<', login_page).group(1).replace("&amp;", "&")

    authorize = client.get(button, HTTP_USER_AGENT=IN_WECOM)["Location"]
    # In the WeCom app: the in-app OAuth page of the school's app, coming back to the portal's address.
    assert authorize.startswith("https://open.weixin.qq.com/connect/oauth2/authorize?")
    params = query_of(authorize)
    assert (params["appid"], params["agentid"], params["scope"]) == (WECOM["corp"], str(WECOM["agent"]), "snsapi_base")
    callback = settings.PORTAL_URL.rstrip("/") + reverse("notices:campus_signin_callback", args=["wecom"])
    assert params["redirect_uri"] == callback

    # WeCom sends the browser back with a code for this student's WeCom account (userid = 学号).
    back = come_back(client, "wecom", f"user:{student.student_number}", params["state"])

    assert back.status_code == 302 and back["Location"] == link
    checklist = page(client.get(link))
    assert student.name in checklist and campaign.name in checklist
    student.refresh_from_db()
    assert signed_in_as(client) == str(student.user_id)
    # The record's login was made on first use, without a usable password: the claim still works later.
    assert student.user.username == student.student_number and not student.user.has_usable_password()
    assert [r["code"] for r in fake.of("wecom") if r["path"] == "getuserinfo"] == [f"user:{student.student_number}"]


def test_on_a_computer_wecom_shows_its_qr_code_sign_in(client, wecom_app):
    authorize = start(client, agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0")

    assert authorize.startswith("https://login.work.weixin.qq.com/wwlogin/sso/login?")
    params = query_of(authorize)
    assert (params["login_type"], params["appid"], params["agentid"]) == ("CorpApp", WECOM["corp"], str(WECOM["agent"]))


def test_a_student_with_a_password_keeps_it_after_signing_in_through_wecom(client, fake, wecom_app, department):
    student = student_with_account(department=department)

    state = query_of(start(client))["state"]
    response = come_back(client, "wecom", f"user:{student.student_number}", state)

    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert signed_in_as(client) == str(student.user_id)
    student.user.refresh_from_db()
    assert student.user.check_password("correct horse battery")


# ---------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["user:2099000001", "outsider"])
def test_someone_without_a_roll_record_is_refused_in_chinese_and_no_account_is_made(client, wecom_app, student, code):
    users_before = User.objects.count()
    state = query_of(start(client))["state"]

    response = come_back(client, "wecom", code, state)

    assert response.status_code == 403
    assert "你的企业微信账号没有对应的学籍记录，无法登录本系统。" in page(response)
    assert signed_in_as(client) is None
    assert User.objects.count() == users_before


def test_a_disabled_account_is_refused(client, wecom_app, department):
    student = student_with_account(department=department)
    student.user.is_active = False
    student.user.save()

    state = query_of(start(client))["state"]
    response = come_back(client, "wecom", f"user:{student.student_number}", state)

    assert response.status_code == 403 and signed_in_as(client) is None


def test_a_userid_that_is_a_staff_username_does_not_sign_staff_in(client, wecom_app, department):
    student = StudentFactory(department=department)
    UserFactory(username=student.student_number, role="secretary")

    state = query_of(start(client))["state"]
    response = come_back(client, "wecom", f"user:{student.student_number}", state)

    assert response.status_code == 403 and signed_in_as(client) is None


def test_a_code_comes_back_only_to_the_browser_that_asked_for_it(client, fake, wecom_app, student):
    # Someone else starts a sign-in and sends their callback link to the student (login CSRF).
    attacker = Client()
    their_state = query_of(start(attacker))["state"]

    forced = come_back(client, "wecom", "user:2025999999", their_state)
    assert forced.status_code == 400 and "登录请求已失效" in page(forced)

    # A forged or reused state is refused too, before any code reaches WeCom.
    state = query_of(start(client))["state"]
    assert come_back(client, "wecom", f"user:{student.student_number}", "forged").status_code == 400
    assert come_back(client, "wecom", f"user:{student.student_number}", state).status_code == 400
    assert signed_in_as(client) is None
    assert not [r for r in fake.of("wecom") if r["path"] == "getuserinfo"]


def test_a_next_address_elsewhere_is_dropped(client, wecom_app, student):
    state = query_of(start(client, next_url="https://evil.example/phish"))["state"]

    response = come_back(client, "wecom", f"user:{student.student_number}", state)

    assert response.status_code == 302 and response["Location"] == reverse("home")


def test_when_wecom_refuses_the_app_the_student_is_told_and_the_secret_is_not_logged(
    client, fake, wecom_app, student, caplog
):
    wecom_app.secret = "a-wrong-secret-value"
    wecom_app.save()
    state = query_of(start(client))["state"]

    with caplog.at_level(logging.DEBUG):
        response = come_back(client, "wecom", f"user:{student.student_number}", state)

    assert response.status_code == 502
    assert "暂时无法通过企业微信登录" in page(response)
    assert signed_in_as(client) is None
    assert "40013" in caplog.text and "a-wrong-secret-value" not in caplog.text


# ---------------------------------------------------------------------------
# DingTalk, and another userid attribute
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("agent", [IN_DINGTALK, "Mozilla/5.0 (Macintosh) Safari/605.1.15"])
def test_dingtalk_sign_in_in_the_app_and_by_qr_code(client, fake, dingtalk_app, student, agent):
    assert "钉钉登录" in page(client.get(reverse("login")))
    authorize = start(client, "dingtalk", agent=agent)

    assert authorize.startswith("https://login.dingtalk.com/oauth2/auth?")
    params = query_of(authorize)
    assert (params["client_id"], params["response_type"], params["scope"]) == (DINGTALK["key"], "code", "openid")
    # The web OAuth page returns ``authCode`` (and the same value as ``code``).
    auth_code = f"user:{student.student_number}"
    response = come_back(client, "dingtalk", auth_code, params["state"], key="authCode")

    assert response.status_code == 302 and response["Location"] == reverse("home")
    student.refresh_from_db()
    assert signed_in_as(client) == str(student.user_id)
    # authCode -> user token (new API) -> unionId -> the school's userid (app token of oapi); never the 免登 API.
    calls = fake.of("dingtalk")
    assert [r["path"] for r in calls] == ["userAccessToken", "users/me", "gettoken", "getbyunionid"]
    assert calls[0]["body"] == {
        "clientId": DINGTALK["key"],
        "clientSecret": DINGTALK["secret"],
        "code": auth_code,
        "grantType": "authorization_code",
    }
    assert calls[1]["token"] in fake.user_tokens
    assert calls[3]["body"] == {"unionid": f"union-{student.student_number}"}


@pytest.mark.parametrize("auth_code", ["outsider", "external:{number}", "user:2099000001"])
def test_dingtalk_users_who_are_not_students_of_the_school_are_refused_and_no_account_is_made(
    client, fake, dingtalk_app, student, auth_code
):
    # Someone outside the school's DingTalk, the school's external contact with a student's number as
    # userid, and a member without a roll record.
    users_before = User.objects.count()
    state = query_of(start(client, "dingtalk", agent=IN_DINGTALK))["state"]

    response = come_back(client, "dingtalk", auth_code.format(number=student.student_number), state, key="authCode")

    assert response.status_code == 403
    assert "你的钉钉账号没有对应的学籍记录，无法登录本系统。" in page(response)
    assert signed_in_as(client) is None and User.objects.count() == users_before


def test_dingtalk_refuses_an_unknown_or_reused_auth_code_in_chinese(client, fake, dingtalk_app, student, caplog):
    state = query_of(start(client, "dingtalk", agent=IN_DINGTALK))["state"]
    with caplog.at_level(logging.WARNING):
        response = come_back(client, "dingtalk", "expired-code", state, key="authCode")
    assert response.status_code == 502 and "暂时无法通过钉钉登录" in page(response)
    assert "invalidParameter.authCode.notFound" in caplog.text

    auth_code = f"user:{student.student_number}"
    first = come_back(client, "dingtalk", auth_code, query_of(start(client, "dingtalk"))["state"], key="authCode")
    assert first.status_code == 302
    client.logout()
    again = come_back(client, "dingtalk", auth_code, query_of(start(client, "dingtalk"))["state"], key="authCode")
    assert again.status_code == 502 and signed_in_as(client) is None


def test_when_dingtalk_refuses_the_app_secret_the_secret_is_not_logged(client, fake, dingtalk_app, student, caplog):
    dingtalk_app.secret = "a-wrong-dingtalk-secret"
    dingtalk_app.save()
    state = query_of(start(client, "dingtalk"))["state"]

    with caplog.at_level(logging.DEBUG):
        response = come_back(client, "dingtalk", f"user:{student.student_number}", state, key="authCode")

    assert response.status_code == 502 and signed_in_as(client) is None
    assert "invalidClientSecret" in caplog.text and "a-wrong-dingtalk-secret" not in caplog.text


def test_the_school_may_map_userids_by_another_attribute(client, wecom_app, department):
    wecom_app.options = {**wecom_app.options, "userid_field": "phone"}
    wecom_app.save()
    student = StudentFactory(department=department, phone="13912345678")

    by_number = come_back(client, "wecom", f"user:{student.student_number}", query_of(start(client))["state"])
    assert by_number.status_code == 403
    by_phone = come_back(client, "wecom", "user:13912345678", query_of(start(client))["state"])
    assert by_phone.status_code == 302
    student.refresh_from_db()
    assert signed_in_as(client) == str(student.user_id)
