"""First sign-in (claim) and ordinary sign-in, with django-axes' lockout, through real HTTP requests."""

import datetime
import re

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.urls import reverse
from django.utils import timezone

from students.accounts.services import CLAIM_FAILED
from students.models import User
from students.tests.factories import StudentFactory, UserFactory

pytestmark = pytest.mark.django_db

DORM = "10.20.30.40"  # one NAT address shared by a whole dormitory
ELSEWHERE = "10.99.0.7"
NEW_PASSWORD = "Roll-check-2025!"


@pytest.fixture
def alice(department):
    return StudentFactory(department=department, name="李雨涵")


@pytest.fixture
def bob(department):
    return StudentFactory(department=department, name="张浩宇")


def suffix(student) -> str:
    return student.id_number[-6:]


def claim(client, number, name, id_suffix, *, addr=DORM):
    return client.post(
        reverse("claim"), {"student_number": number, "name": name, "id_suffix": id_suffix}, REMOTE_ADDR=addr
    )


def claim_as(client, student, *, addr=DORM):
    return claim(client, student.student_number, student.name, suffix(student), addr=addr)


def choose_password(client, *, addr=DORM, password=NEW_PASSWORD):
    return client.post(reverse("claim_password"), {"password1": password, "password2": password}, REMOTE_ADDR=addr)


def fail_claim(client, student, times, *, addr=DORM):
    responses = [claim(client, student.student_number, student.name, "000000", addr=addr) for _ in range(times)]
    return responses[-1]


def form_errors(response) -> list[str]:
    return list(response.context["form"].non_field_errors())


def signed_in_user_id(client):
    return client.session.get(SESSION_KEY)


def test_claim_then_choose_password_signs_in_with_a_new_session_key(client, alice):
    response = claim_as(client, alice)
    assert response.status_code == 302 and response["Location"] == reverse("claim_password")
    claim_session = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert signed_in_user_id(client) is None

    response = choose_password(client)

    assert response.status_code == 302 and response["Location"] == reverse("home")
    alice.refresh_from_db()
    assert alice.user.username == alice.student_number
    assert alice.user.role == User.Role.STUDENT
    assert alice.user.check_password(NEW_PASSWORD)
    assert signed_in_user_id(client) == str(alice.user.pk)
    # The key that carried the claim is gone: it cannot be replayed.
    assert client.cookies[settings.SESSION_COOKIE_NAME].value != claim_session
    assert not SessionStore().exists(claim_session)


def test_the_password_step_needs_a_claim_first(client, alice):
    response = choose_password(client)

    assert response.status_code == 302 and response["Location"] == reverse("claim")
    assert not User.objects.filter(username=alice.student_number).exists()


def test_claim_password_must_be_typed_twice_the_same(client, alice):
    claim_as(client, alice)

    response = client.post(
        reverse("claim_password"), {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"}, REMOTE_ADDR=DORM
    )

    assert response.status_code == 200
    assert "两次输入的密码不一致" in response.content.decode()
    assert signed_in_user_id(client) is None


def test_the_password_page_speaks_chinese_throughout(client, alice):
    claim_as(client, alice)
    page = client.get(reverse("claim_password")).content.decode()
    assert "设置密码：</label>" in page  # a full-width colon after a Chinese label
    assert "你的密码必须包含至少 8 个字符。" in page  # the rules under the input

    response = choose_password(client, password="1234")

    errors = response.context["form"].errors["password1"]
    assert "密码太短，至少需要 8 个字符。" in errors
    assert not [error for error in errors if re.search(r"[A-Za-z]{3}", error)], errors
    assert signed_in_user_id(client) is None


def test_a_wrong_number_name_or_suffix_gets_one_and_the_same_message(client, alice):
    wrong_number = claim(client, "2099999999", alice.name, suffix(alice))
    wrong_name = claim(client, alice.student_number, "李雨", suffix(alice))
    wrong_suffix = claim(client, alice.student_number, alice.name, "123456")

    messages = [form_errors(r) for r in (wrong_number, wrong_name, wrong_suffix)]
    assert messages == [[str(CLAIM_FAILED)]] * 3
    for response in (wrong_number, wrong_name, wrong_suffix):
        assert response.status_code == 200
        page = response.content.decode()
        assert str(CLAIM_FAILED) in page
        # Nothing on the page says which of the three answers was wrong.
        assert "学号不存在" not in page and "姓名不正确" not in page
    assert signed_in_user_id(client) is None
    assert client.get(reverse("claim_password")).status_code == 302


def test_lockout_hits_that_student_number_from_that_address_only(client, alice, bob):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert claim(client, alice.student_number, alice.name, "000000").status_code == 200

    locked = fail_claim(client, alice, 1)

    assert locked.status_code == 429
    assert "尝试次数过多" in locked.content.decode()
    # Even the right answers are refused now, for this 学号 from this address …
    assert claim_as(client, alice).status_code == 429
    login = client.post(reverse("login"), {"username": alice.student_number, "password": "whatever"}, REMOTE_ADDR=DORM)
    assert login.status_code == 429
    # … while a room-mate behind the same NAT address claims their account …
    assert claim_as(client, bob).status_code == 302
    assert choose_password(client).status_code == 302
    client.logout()
    # … and the same student from another address is not locked.
    assert claim_as(client, alice, addr=ELSEWHERE).status_code == 302
    assert choose_password(client, addr=ELSEWHERE).status_code == 302
    alice.refresh_from_db()
    assert alice.user.check_password(NEW_PASSWORD)


def test_lock_lifts_after_the_cool_off(client, alice):
    start = timezone.now()
    cool_off = datetime.timedelta(hours=settings.AXES_COOLOFF_TIME)
    with time_machine.travel(start, tick=False) as clock:
        assert fail_claim(client, alice, settings.AXES_FAILURE_LIMIT).status_code == 429
        clock.shift(cool_off - datetime.timedelta(minutes=1))
        assert claim_as(client, alice).status_code == 429
        clock.shift(datetime.timedelta(minutes=2))

        response = claim_as(client, alice)

    assert response.status_code == 302 and response["Location"] == reverse("claim_password")


def test_a_successful_sign_in_resets_the_failure_count(client, alice):
    limit = settings.AXES_FAILURE_LIMIT
    fail_claim(client, alice, limit - 1)
    claim_as(client, alice)
    choose_password(client)
    client.logout()

    # Without the reset, these would exceed the limit.
    for _ in range(limit - 1):
        response = client.post(
            reverse("login"), {"username": alice.student_number, "password": "not it"}, REMOTE_ADDR=DORM
        )
        assert response.status_code == 200

    response = client.post(
        reverse("login"), {"username": alice.student_number, "password": NEW_PASSWORD}, REMOTE_ADDR=DORM
    )
    assert response.status_code == 302
    assert signed_in_user_id(client) == str(User.objects.get(username=alice.student_number).pk)


def test_an_already_claimed_account_is_told_to_sign_in(client, alice):
    claim_as(client, alice)
    choose_password(client)
    client.logout()

    response = claim_as(client, alice)

    assert response.status_code == 302 and response["Location"] == reverse("login")
    page = client.get(response["Location"]).content.decode()
    assert "该学号的账号已激活，请直接登录" in page
    assert signed_in_user_id(client) is None
    alice.refresh_from_db()
    assert alice.user.check_password(NEW_PASSWORD)  # the claim did not reset it


def test_a_claim_cannot_take_over_a_staff_account_with_the_same_username(client, alice):
    staff = User(username=alice.student_number, role=User.Role.SECRETARY)
    staff.set_unusable_password()
    staff.save()

    claim_as(client, alice)
    response = choose_password(client)

    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert signed_in_user_id(client) is None
    assert User.objects.get(username=alice.student_number).role == User.Role.SECRETARY


def test_sign_in_with_student_number_and_password(client, alice):
    alice.user = UserFactory(username=alice.student_number)
    alice.save(update_fields=["user"])

    wrong = client.post(reverse("login"), {"username": alice.student_number, "password": "nope"}, REMOTE_ADDR=DORM)
    assert wrong.status_code == 200 and signed_in_user_id(client) is None

    response = client.post(
        reverse("login"), {"username": alice.student_number, "password": "correct horse battery"}, REMOTE_ADDR=DORM
    )

    assert response.status_code == 302
    assert signed_in_user_id(client) == str(alice.user.pk)
