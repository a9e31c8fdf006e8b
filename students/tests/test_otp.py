"""The second factor (TOTP, django-otp) for staff accounts, through real HTTP requests.

Tokens are computed the way a phone does, from the device's key and the (frozen)
clock; time-machine moves the clock between steps, since a token is good once.
"""

import base64
import datetime
import re
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from students.models import User
from students.tests.factories import StudentFactory, UserFactory
from students.tests.test_cas import cas_server  # noqa: F401  (the CAS server fixture)

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"  # UserFactory's
ADDRESS = "10.1.2.3"
START = datetime.datetime(2025, 9, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture
def client():
    """Every request from one address, as a browser's are (axes counts per address)."""
    return Client(REMOTE_ADDR=ADDRESS)


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def require_2fa(settings):
    settings.REQUIRE_2FA_FOR_REGISTRAR = True


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", role=User.Role.ADMIN, is_staff=True, is_superuser=True)


def token(device) -> str:
    device.refresh_from_db()
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):0{device.digits}d}"


def wrong_token(device) -> str:
    right = token(device)
    return "000000" if right != "000000" else "111111"


def enrolled(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="TOTP", confirmed=True)


def sign_in(client, user, *, next_url="", addr=ADDRESS):
    response = client.post(
        reverse("login"), {"username": user.username, "password": PASSWORD, "next": next_url}, REMOTE_ADDR=addr
    )
    assert response.status_code == 302, response.content.decode()[:500]
    return response


def session_cookie(client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def assert_sent_to(response, name, *, next_path=None):
    assert response.status_code == 302, response.status_code
    target = urlsplit(response["Location"])
    assert target.path == reverse(name), response["Location"]
    if next_path is not None:
        assert parse_qs(target.query).get("next") == [next_path]


# ----------------------------------------------------------------------------
# Enrolment, then a token at every sign-in
# ----------------------------------------------------------------------------


def test_secretary_enrols_a_device_and_then_verifies_at_every_sign_in(client, secretary, clock):
    sign_in(client, secretary)
    dashboard = reverse("workspace:dashboard")

    page = client.get(reverse("otp_setup"))
    assert page.status_code == 200
    html = page.content.decode()
    device = TOTPDevice.objects.get(user=secretary)
    assert not device.confirmed
    # The QR code is an SVG made on the server, embedded as a data: URI; no script anywhere.
    qr = re.search(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html)
    assert qr, html
    svg = base64.b64decode(qr[1]).decode()
    assert svg.startswith("<svg") and "<path" in svg
    assert "<script" not in html
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    assert " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)) in html
    assert "no-store" in page["Cache-Control"]
    # Reloading shows the same pending device, so scanning and confirming agree.
    client.get(reverse("otp_setup"))
    assert TOTPDevice.objects.filter(user=secretary).count() == 1
    # An unconfirmed device changes nothing yet.
    assert client.get(dashboard).status_code == 200

    refused = client.post(reverse("otp_setup"), {"token": wrong_token(device), "next": dashboard})
    assert refused.status_code == 200
    assert "验证码不正确" in refused.content.decode()
    device.refresh_from_db()
    assert not device.confirmed
    assert device.throttling_failure_count == 1

    clock.shift(5)
    before = session_cookie(client)
    confirmed = client.post(reverse("otp_setup"), {"token": token(device), "next": dashboard})
    assert confirmed.status_code == 302 and confirmed["Location"] == dashboard
    device.refresh_from_db()
    assert device.confirmed
    assert device.throttling_failure_count == 0
    # Verifying is a step up: the session key changes and the old one is gone.
    assert session_cookie(client) != before
    assert not Session.objects.filter(session_key=before).exists()
    assert client.get(dashboard).status_code == 200

    # Next sign-in: the password alone reaches no page.
    client.post(reverse("logout"))
    clock.shift(60)
    sign_in(client, secretary, next_url=dashboard)
    assert_sent_to(client.get(dashboard), "otp_verify", next_path=dashboard)
    student_list = reverse("students:student_list") + "?q=2025"
    assert_sent_to(client.get(student_list), "otp_verify", next_path=student_list)
    assert_sent_to(client.post(reverse("exports:export_create"), {"kind": "class-sign-off"}), "otp_verify")
    assert_sent_to(client.get(reverse("otp_setup")), "otp_verify")

    form = client.get(reverse("otp_verify"), {"next": dashboard})
    assert form.status_code == 200
    assert 'autocomplete="one-time-code"' in form.content.decode()
    before = session_cookie(client)
    verified = client.post(reverse("otp_verify"), {"token": token(device), "next": dashboard})
    assert verified.status_code == 302 and verified["Location"] == dashboard
    assert session_cookie(client) != before
    assert client.get(dashboard).status_code == 200
    assert client.get(reverse("otp_verify")).status_code == 302  # nothing left to verify


def test_a_token_is_good_once(client, secretary, clock):
    device = enrolled(secretary)
    sign_in(client, secretary)
    used = token(device)
    assert client.post(reverse("otp_verify"), {"token": used}).status_code == 302
    client.post(reverse("logout"))
    clock.shift(1)  # within the same 30-second step
    sign_in(client, secretary)
    assert client.post(reverse("otp_verify"), {"token": used}).status_code == 200
    assert_sent_to(client.get(reverse("workspace:dashboard")), "otp_verify")


def test_wrong_token_is_refused_and_throttled(client, secretary, clock):
    device = enrolled(secretary)
    sign_in(client, secretary)

    refused = client.post(reverse("otp_verify"), {"token": wrong_token(device)})
    assert refused.status_code == 200
    assert "验证码不正确" in refused.content.decode()
    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    assert_sent_to(client.get(reverse("workspace:dashboard")), "otp_verify")

    # Right away, even the right token waits out django-otp's back-off.
    throttled = client.post(reverse("otp_verify"), {"token": token(device)})
    assert throttled.status_code == 200
    assert "错误次数过多" in throttled.content.decode()
    assert_sent_to(client.get(reverse("workspace:dashboard")), "otp_verify")

    clock.shift(3)
    assert client.post(reverse("otp_verify"), {"token": token(device)}).status_code == 302
    device.refresh_from_db()
    assert device.throttling_failure_count == 0
    assert client.get(reverse("workspace:dashboard")).status_code == 200


@pytest.mark.parametrize("bad", ["12345", "abcdef", "1234567", ""])
def test_malformed_tokens_are_refused(client, secretary, clock, bad):
    enrolled(secretary)
    sign_in(client, secretary)
    assert client.post(reverse("otp_verify"), {"token": bad}).status_code == 200
    assert_sent_to(client.get(reverse("workspace:dashboard")), "otp_verify")


def test_wrong_tokens_count_as_failed_sign_ins(client, secretary, clock):
    """django-axes locks the account from that address, as after wrong passwords, and ends the half sign-in."""
    device = enrolled(secretary)
    sign_in(client, secretary)
    for _attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        clock.shift(60)  # past django-otp's back-off, so each try really is checked
        assert client.post(reverse("otp_verify"), {"token": wrong_token(device)}).status_code == 200
    clock.shift(60)
    locked = client.post(reverse("otp_verify"), {"token": wrong_token(device)})
    assert locked.status_code == 429
    assert SESSION_KEY not in client.session
    # The password no longer works from this address until the cool-off...
    refused = client.post(reverse("login"), {"username": secretary.username, "password": PASSWORD}, REMOTE_ADDR=ADDRESS)
    assert refused.status_code == 429
    # ...but from another address the owner still gets in, and still needs a token.
    sign_in(client, secretary, addr="10.9.9.9")
    assert_sent_to(client.get(reverse("workspace:dashboard")), "otp_verify")


def test_next_must_stay_on_the_portal(client, secretary, clock):
    device = enrolled(secretary)
    sign_in(client, secretary)
    response = client.post(reverse("otp_verify"), {"token": token(device), "next": "https://evil.example/"})
    assert response.status_code == 302
    assert response["Location"] == reverse(settings.LOGIN_REDIRECT_URL)


def test_htmx_requests_are_sent_to_verify_as_a_whole_page(client, secretary, clock):
    enrolled(secretary)
    sign_in(client, secretary)
    response = client.get(reverse("workspace:review_queue"), headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert urlsplit(response["HX-Redirect"]).path == reverse("otp_verify")


def test_signing_out_and_switching_language_need_no_token(client, secretary, clock):
    enrolled(secretary)
    sign_in(client, secretary)
    assert client.post(reverse("set_language"), {"language": "en", "next": "/"}).status_code == 302
    assert client.get(reverse("health")).status_code == 200
    response = client.post(reverse("logout"))
    assert_sent_to(response, "login")
    assert SESSION_KEY not in client.session


def test_the_admin_waits_for_the_token_too(client, superuser, clock):
    device = enrolled(superuser)
    sign_in(client, superuser)
    assert_sent_to(client.get(reverse("admin:index")), "otp_verify", next_path=reverse("admin:index"))
    client.post(reverse("otp_verify"), {"token": token(device)})
    assert client.get(reverse("admin:index")).status_code == 200


# ----------------------------------------------------------------------------
# REQUIRE_2FA_FOR_REGISTRAR
# ----------------------------------------------------------------------------

REGISTRAR_PAGES = [
    "workspace:school",
    "workspace:correction_queue",
    "students:student_list",
    "students:roster_upload",
    "exports:export_list",
    "exports:export_log",
    "verification:campaign_list",
    "notices:notice_list",
    "home",
]


@pytest.mark.parametrize("name", REGISTRAR_PAGES)
def test_required_registrar_without_a_device_is_sent_to_setup(client, registrar, require_2fa, name):
    client.force_login(registrar)
    url = reverse(name)
    assert_sent_to(client.get(url), "otp_setup", next_path=url)


def test_required_superuser_is_sent_to_setup_before_the_admin(client, superuser, require_2fa):
    client.force_login(superuser)
    assert_sent_to(client.get(reverse("admin:index")), "otp_setup", next_path=reverse("admin:index"))


def test_required_registrar_enrols_and_then_gets_in(client, registrar, require_2fa, clock):
    sign_in(client, registrar)
    school = reverse("workspace:school")
    page = client.get(reverse("otp_setup"), {"next": school})
    assert page.status_code == 200
    assert "学籍科账号须先开启两步验证" in page.content.decode()
    device = TOTPDevice.objects.get(user=registrar, confirmed=False)
    response = client.post(reverse("otp_setup"), {"token": token(device), "next": school})
    assert response.status_code == 302 and response["Location"] == school
    assert client.get(school).status_code == 200
    # Registrar staff cannot switch it off themselves while it is required.
    clock.shift(60)
    refused = client.post(reverse("otp_disable"), {"token": token(device)}, follow=True)
    assert "必须使用两步验证" in refused.content.decode()
    assert TOTPDevice.objects.filter(user=registrar, confirmed=True).exists()


def test_not_required_registrar_goes_straight_in(client, registrar, settings):
    settings.REQUIRE_2FA_FOR_REGISTRAR = False
    client.force_login(registrar)
    assert client.get(reverse("workspace:school")).status_code == 200
    assert client.get(reverse("otp_setup")).status_code == 200  # available, not forced


def test_secretary_is_never_forced_to_enrol(client, secretary, require_2fa):
    client.force_login(secretary)
    assert client.get(reverse("workspace:dashboard")).status_code == 200
    assert client.get(reverse("otp_setup")).status_code == 200


@pytest.mark.parametrize("required", [True, False])
def test_students_never_see_any_of_it(client, student, settings, required):
    settings.REQUIRE_2FA_FOR_REGISTRAR = required
    user = UserFactory(username=student.student_number)
    student.user = user
    student.save(update_fields=["user"])
    # Even a device made for a student in the admin asks nothing of them.
    TOTPDevice.objects.create(user=user, name="TOTP", confirmed=True)
    client.force_login(user)
    response = client.get(reverse("verification:my_checks"))
    assert response.status_code == 200
    assert client.get(reverse("otp_setup")).status_code == 404
    assert client.get(reverse("otp_verify")).status_code == 404
    assert client.post(reverse("otp_disable"), {"token": "123456"}).status_code == 404


# ----------------------------------------------------------------------------
# Turning it off
# ----------------------------------------------------------------------------


def test_secretary_turns_it_off_with_a_current_token(client, secretary, clock):
    device = enrolled(secretary)
    sign_in(client, secretary)
    client.post(reverse("otp_verify"), {"token": token(device)})
    status = client.get(reverse("otp_setup"))
    assert status.status_code == 200
    assert "两步验证已开启" in status.content.decode()

    clock.shift(60)
    client.post(reverse("otp_disable"), {"token": wrong_token(device)})
    assert TOTPDevice.objects.filter(user=secretary).exists()

    clock.shift(60)
    assert_sent_to(client.post(reverse("otp_disable"), {"token": token(device)}), "otp_setup")
    assert not TOTPDevice.objects.filter(user=secretary).exists()
    client.post(reverse("logout"))
    sign_in(client, secretary)
    assert client.get(reverse("workspace:dashboard")).status_code == 200


# ----------------------------------------------------------------------------
# Campus single sign-on
# ----------------------------------------------------------------------------


def test_staff_signing_in_through_cas_still_verifies(client, cas_server, clock):  # noqa: F811
    staff = UserFactory(username="t2001", role=User.Role.SECRETARY)
    device = enrolled(staff)
    cas_server.tickets["ST-9"] = "t2001"
    assert client.get("/accounts/cas/login/?ticket=ST-9").status_code == 302
    assert client.session[SESSION_KEY] == str(staff.pk)
    assert_sent_to(client.get(reverse("workspace:dashboard")), "otp_verify")
    client.post(reverse("otp_verify"), {"token": token(device)})
    assert client.get(reverse("workspace:dashboard")).status_code == 200


def test_students_signing_in_through_cas_are_exempt(client, cas_server, settings):  # noqa: F811
    settings.REQUIRE_2FA_FOR_REGISTRAR = True
    student = StudentFactory(student_number="2025123456")
    cas_server.tickets["ST-10"] = "2025123456"
    assert client.get("/accounts/cas/login/?ticket=ST-10").status_code == 302
    student.refresh_from_db()
    response = client.get(reverse("verification:my_checks"))
    assert response.status_code == 200
