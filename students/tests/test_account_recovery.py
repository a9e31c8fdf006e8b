"""A forgotten password (the claim check again, with the claim's lockout) and registrar staff unlocking or
resetting a student's sign-in from the student's page, through real requests."""

import re

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import reverse

from students.models import AccessEvent, User
from students.tests.factories import StudentFactory, UserFactory

pytestmark = pytest.mark.django_db

DORM = "10.20.30.40"
ELSEWHERE = "10.99.0.7"
OLD_PASSWORD = "Old-roll-check-1!"
NEW_PASSWORD = "New-roll-check-2!"


@pytest.fixture
def alice(department):
    """A student who activated her account long ago and has forgotten the password."""
    student = StudentFactory(department=department, name="李雨涵")
    user = User(username=student.student_number, role=User.Role.STUDENT, first_name=student.name)
    user.set_password(OLD_PASSWORD)
    user.save()
    student.user = user
    student.save(update_fields=["user"])
    return student


@pytest.fixture
def registrar_client(client, registrar):
    client.force_login(registrar)
    return client


def answers(student, *, id_suffix=None) -> dict:
    return {
        "student_number": student.student_number,
        "name": student.name,
        "id_suffix": id_suffix or student.id_number[-6:],
    }


def forgot(client, student, *, id_suffix=None, addr=DORM):
    return client.post(reverse("password_reset"), answers(student, id_suffix=id_suffix), REMOTE_ADDR=addr)


def new_password(client, password=NEW_PASSWORD, again=None, *, addr=DORM):
    data = {"password1": password, "password2": again or password}
    return client.post(reverse("password_reset_new"), data, REMOTE_ADDR=addr)


def sign_in(client, student, password, *, addr=DORM):
    return client.post(reverse("login"), {"username": student.student_number, "password": password}, REMOTE_ADDR=addr)


def signed_in(client) -> bool:
    return SESSION_KEY in client.session


def page(response) -> str:
    return response.content.decode()


# ---------------------------------------------------------------------------
# Forgotten password
# ---------------------------------------------------------------------------


def test_the_sign_in_page_links_to_the_forgotten_password_page(client):
    login_page = page(client.get(reverse("login")))
    assert f'href="{reverse("password_reset")}"' in login_page and "忘记密码" in login_page


def test_a_student_resets_a_forgotten_password_and_other_devices_are_signed_out(client, alice):
    phone = Client()
    assert sign_in(phone, alice, OLD_PASSWORD).status_code == 302

    response = forgot(client, alice)
    assert response.status_code == 302 and response["Location"] == reverse("password_reset_new")
    response = new_password(client)

    assert response.status_code == 302 and signed_in(client)
    assert "密码已重新设置" in page(client.get(response["Location"], follow=True))
    # The phone signed in with the old password is out, and the old password no longer works.
    assert phone.get(reverse("home"))["Location"].startswith(reverse("login"))
    assert sign_in(Client(), alice, OLD_PASSWORD).status_code == 200
    assert sign_in(Client(), alice, NEW_PASSWORD).status_code == 302
    event = AccessEvent.objects.get(action=AccessEvent.Action.PASSWORD_RESET)
    assert (event.student_id, event.target) == (alice.pk, alice.student_number)


def test_wrong_answers_get_the_claims_single_message_and_reset_nothing(client, alice):
    response = forgot(client, alice, id_suffix="000000")

    assert response.status_code == 200
    assert "信息不匹配，请核对学号、姓名和证件号码后六位。" in page(response)
    # Without passing the check, the new-password step sends the student back.
    response = new_password(client)
    assert response.status_code == 302 and response["Location"] == reverse("password_reset")
    alice.user.refresh_from_db()
    assert alice.user.check_password(OLD_PASSWORD)


def test_the_new_password_follows_the_rules_in_chinese(client, alice):
    forgot(client, alice)

    mismatch = new_password(client, NEW_PASSWORD, NEW_PASSWORD + "x")
    assert "两次输入的密码不一致" in page(mismatch)
    short = new_password(client, "1234")
    errors = short.context["form"].errors["password1"]
    assert "密码太短，至少需要 8 个字符。" in errors
    assert not [error for error in errors if re.search(r"[A-Za-z]{3}", error)], errors
    assert not signed_in(client)
    alice.user.refresh_from_db()
    assert alice.user.check_password(OLD_PASSWORD)


def test_reset_and_claim_share_one_lockout(client, alice):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        forgot(client, alice, id_suffix="000000")

    # The right answers are refused now, here and on the claim page, from this address …
    assert forgot(client, alice).status_code == 429
    assert client.post(reverse("claim"), answers(alice), REMOTE_ADDR=DORM).status_code == 429
    # … but not from the student's own phone on another network.
    assert forgot(client, alice, addr=ELSEWHERE).status_code == 302


def test_a_disabled_account_cannot_be_brought_back_by_a_reset(client, alice):
    alice.user.is_active = False
    alice.user.save()

    forgot(client, alice)
    response = new_password(client)

    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert "该账号已停用，请联系学籍科。" in page(client.get(response["Location"]))
    assert not signed_in(client)
    alice.user.refresh_from_db()
    assert not alice.user.is_active and alice.user.check_password(OLD_PASSWORD)


def test_a_student_who_never_activated_sets_a_password_through_the_reset(client, department):
    student = StudentFactory(department=department)

    forgot(client, student)
    new_password(client)

    student.refresh_from_db()
    assert student.user.username == student.student_number and student.user.check_password(NEW_PASSWORD)


# ---------------------------------------------------------------------------
# Registrar staff: unlock and reset from the student's page
# ---------------------------------------------------------------------------


def test_registrar_sees_a_lock_and_lifts_it(client, alice, registrar):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, alice, "wrong", addr=DORM)
    assert sign_in(client, alice, OLD_PASSWORD).status_code == 429

    staff = Client()
    staff.force_login(registrar)
    detail = page(staff.get(reverse("students:student_detail", args=[alice.pk])))
    assert "登录失败次数过多，已暂停登录" in detail and "解除登录锁定" in detail
    response = staff.post(reverse("students:signin_unlock", args=[alice.pk]))

    assert response.status_code == 302
    assert "已解除该学生的登录锁定" in page(staff.get(response["Location"]))
    assert "已暂停登录" not in page(staff.get(reverse("students:student_detail", args=[alice.pk])))
    assert sign_in(client, alice, OLD_PASSWORD).status_code == 302
    event = AccessEvent.objects.get(action=AccessEvent.Action.ACCOUNT_UNLOCK)
    assert (event.user, event.student_id) == (registrar, alice.pk)


def test_registrar_lifts_the_lock_of_a_distributed_guess_too(client, settings, alice, registrar):
    settings.SIGNIN_USERNAME_FAILURE_LIMIT = 3
    for address in ("198.18.0.1", "198.18.0.2", "198.18.0.3"):
        sign_in(client, alice, "guess", addr=address)
    assert sign_in(client, alice, OLD_PASSWORD, addr=ELSEWHERE).status_code == 429

    staff = Client()
    staff.force_login(registrar)
    staff.post(reverse("students:signin_unlock", args=[alice.pk]))

    assert sign_in(client, alice, OLD_PASSWORD, addr=ELSEWHERE).status_code == 302


def test_registrar_resets_a_sign_in_and_the_student_claims_again(alice, registrar):
    phone = Client()
    assert sign_in(phone, alice, OLD_PASSWORD).status_code == 302
    staff = Client()
    staff.force_login(registrar)

    response = staff.post(reverse("students:signin_reset", args=[alice.pk]))

    assert response.status_code == 302
    assert "已重置该学生的登录" in page(staff.get(response["Location"]))
    # Signed out everywhere, the old password is dead, and the claim works again.
    assert phone.get(reverse("home"))["Location"].startswith(reverse("login"))
    assert sign_in(Client(), alice, OLD_PASSWORD).status_code == 200
    student = Client()
    claimed = student.post(reverse("claim"), answers(alice), REMOTE_ADDR=DORM)
    assert claimed.status_code == 302 and claimed["Location"] == reverse("claim_password")
    event = AccessEvent.objects.get(action=AccessEvent.Action.SIGNIN_RESET)
    assert (event.user, event.student_id) == (registrar, alice.pk)
    detail = page(staff.get(reverse("students:student_detail", args=[alice.pk])))
    assert "未设置密码" in detail


def test_a_student_without_an_account_has_nothing_to_reset(registrar_client, department):
    student = StudentFactory(department=department)

    detail = page(registrar_client.get(reverse("students:student_detail", args=[student.pk])))
    assert "尚未激活" in detail and reverse("students:signin_reset", args=[student.pk]) not in detail
    response = registrar_client.post(reverse("students:signin_reset", args=[student.pk]), follow=True)

    assert "该学生还没有登录账号，无需重置" in page(response)
    assert not AccessEvent.objects.filter(action=AccessEvent.Action.SIGNIN_RESET).exists()


def test_secretaries_and_students_cannot_unlock_or_reset(client, alice, secretary, department):
    client.force_login(secretary)
    detail = page(client.get(reverse("students:student_detail", args=[alice.pk])))
    assert "解除登录锁定" not in detail and "重置登录" not in detail
    assert client.post(reverse("students:signin_unlock", args=[alice.pk])).status_code == 404
    assert client.post(reverse("students:signin_reset", args=[alice.pk])).status_code == 404

    other = StudentFactory(department=department)
    other.user = UserFactory(username=other.student_number)
    other.save(update_fields=["user"])
    client.force_login(other.user)
    assert client.post(reverse("students:signin_reset", args=[alice.pk])).status_code == 404

    alice.user.refresh_from_db()
    assert alice.user.check_password(OLD_PASSWORD)
    assert not AccessEvent.objects.filter(
        action__in=[AccessEvent.Action.ACCOUNT_UNLOCK, AccessEvent.Action.SIGNIN_RESET]
    ).exists()
