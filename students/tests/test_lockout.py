"""Sign-in lockout behind the documented nginx (students/accounts/lockout.py, students/network.py).

Every request here carries what nginx sends to gunicorn: REMOTE_ADDR 127.0.0.1, a one-address
X-Forwarded-For and X-Forwarded-Proto https, with TRUSTED_PROXY_COUNT=1 as deploy/env.example sets it.
"""

import pytest
from auditlog.models import LogEntry
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.test import RequestFactory
from django.urls import reverse

from students.models import AccessEvent, Student
from students.network import client_ip
from students.tests.factories import StudentFactory, UserFactory
from verification.models import Export
from verification.tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

A, B, C = "198.51.100.10", "203.0.113.20", "192.0.2.30"
PASSWORD = "Roll-check-2025!"


def via_nginx(client_address: str) -> dict:
    return {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": client_address, "HTTP_X_FORWARDED_PROTO": "https"}


@pytest.fixture(autouse=True)
def behind_nginx(settings):
    settings.TRUSTED_PROXY_COUNT = 1


@pytest.fixture
def registrar_user(db):
    user = UserFactory(role="registrar", username="registrar7")
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture
def alice(department):
    return StudentFactory(department=department, name="李雨涵")


def sign_in(client, username, password, address):
    return client.post(reverse("login"), {"username": username, "password": password}, **via_nginx(address))


def claim(client, student, address, *, id_suffix=None):
    data = {"student_number": student.student_number, "name": student.name, "id_suffix": id_suffix}
    data["id_suffix"] = id_suffix or student.id_number[-6:]
    return client.post(reverse("claim"), data, **via_nginx(address))


# ---------------------------------------------------------------------------
# The client address
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "expected"),
    [
        (0, "", "127.0.0.1"),
        (0, "198.51.100.10", "127.0.0.1"),  # nobody of ours wrote the header: ignore it
        (1, "198.51.100.10", "198.51.100.10"),  # the documented nginx
        (1, "6.6.6.6, 198.51.100.10", "198.51.100.10"),  # an appending nginx: the left entry is the client's claim
        (1, "", "127.0.0.1"),  # a health check on the loopback interface
        (1, "not-an-address", "127.0.0.1"),
        (2, "6.6.6.6, 198.51.100.10, 10.0.0.2", "198.51.100.10"),  # load balancer + nginx
        (1, "2001:db8::1", "2001:db8::1"),
        (1, "198.51.100.10:51234", "198.51.100.10"),
    ],
)
def test_the_client_address_for_zero_one_or_two_proxies(settings, proxies, forwarded_for, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    meta = {"REMOTE_ADDR": "127.0.0.1"}
    if forwarded_for:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded_for
    assert client_ip(RequestFactory().get("/", **meta)) == expected


def test_axes_uses_the_same_client_address():
    assert django_settings.AXES_CLIENT_IP_CALLABLE == "students.network.client_ip"


def test_these_tests_send_what_the_documented_deployment_sends():
    """deploy/: nginx writes the one-address header simulated here, and env.example trusts exactly that proxy."""
    import re
    from pathlib import Path

    deploy = Path(django_settings.BASE_DIR) / "deploy"
    nginx = (deploy / "nginx-rollcheck.conf").read_text(encoding="utf-8")
    env = (deploy / "env.example").read_text(encoding="utf-8")

    assert re.findall(r"proxy_set_header\s+X-Forwarded-For\s+(\S+);", nginx) == ["$remote_addr"]
    assert re.findall(r"^(?:TRUSTED|AXES)_PROXY_COUNT=(\d+)", env, re.M) == ["1"]


# ---------------------------------------------------------------------------
# Username + address
# ---------------------------------------------------------------------------


def test_five_failures_from_one_address_do_not_lock_the_registrar_out_elsewhere(client, registrar_user):
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        sign_in(client, registrar_user.username, "wrong", A)

    assert sign_in(client, registrar_user.username, PASSWORD, A).status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {A}

    response = sign_in(client, registrar_user.username, PASSWORD, B)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(registrar_user.pk)


def test_five_failed_claims_from_one_address_do_not_lock_the_student_out_elsewhere(client, alice):
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        claim(client, alice, A, id_suffix="135791")

    assert claim(client, alice, A).status_code == 429
    # The guesses themselves (the claim secret, the name) are not kept with the attempt.
    (attempt,) = AccessAttempt.objects.all()
    assert attempt.ip_address == A
    assert "135791" not in attempt.post_data and alice.name not in attempt.post_data

    response = claim(client, alice, B)

    assert response.status_code == 302 and response["Location"] == reverse("claim_password")


# ---------------------------------------------------------------------------
# Per address, across usernames
# ---------------------------------------------------------------------------


def test_an_address_walking_through_student_numbers_is_locked(client, settings, department, registrar_user):
    settings.SIGNIN_ADDRESS_FAILURE_LIMIT = 6
    students = StudentFactory.create_batch(6, department=department)
    for student in students[:5]:
        assert claim(client, student, A, id_suffix="000000").status_code == 200  # one try each: no pair lock
    assert claim(client, students[5], A, id_suffix="000000").status_code == 429

    refused = sign_in(client, registrar_user.username, PASSWORD, A)

    assert refused.status_code == 429
    assert "此网络地址登录失败次数过多" in refused.content.decode()
    assert sign_in(client, registrar_user.username, PASSWORD, B).status_code == 302


# ---------------------------------------------------------------------------
# Per username, across addresses
# ---------------------------------------------------------------------------


def test_a_distributed_guesser_is_stopped_and_the_registrar_is_told(client, settings, alice, registrar_user):
    settings.SIGNIN_USERNAME_FAILURE_LIMIT = 8
    guessers = [f"198.18.0.{n}" for n in range(1, 9)]
    for address in guessers:
        assert claim(client, alice, address, id_suffix="000000").status_code in (200, 429)

    # The right secret from yet another address is refused now …
    refused = claim(client, alice, C)
    assert refused.status_code == 429
    assert "学籍科已收到提醒" in refused.content.decode()
    # … and registrar staff see one entry for it in the access log.
    event = AccessEvent.objects.get(action=AccessEvent.Action.SIGNIN_LOCKOUT)
    assert (event.target, event.student) == (alice.student_number, Student.objects.get(pk=alice.pk))
    assert "8 个地址" in event.detail and "8 次" in event.detail
    client.force_login(registrar_user)
    page = client.get(reverse("students:access_log"), {"action": AccessEvent.Action.SIGNIN_LOCKOUT}).content.decode()
    assert alice.student_number in page and "多地址登录失败" in page


def test_the_username_cap_spares_an_address_the_owner_signed_in_from(client, settings, registrar_user):
    settings.SIGNIN_USERNAME_FAILURE_LIMIT = 4
    assert sign_in(client, registrar_user.username, PASSWORD, A).status_code == 302
    client.logout()
    for address in ("198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.4"):
        sign_in(client, registrar_user.username, "guess", address)

    assert sign_in(client, registrar_user.username, PASSWORD, C).status_code == 429
    assert sign_in(client, registrar_user.username, PASSWORD, A).status_code == 302


# ---------------------------------------------------------------------------
# The access log, exports and the audit log store the real address
# ---------------------------------------------------------------------------


def test_access_log_exports_and_audit_log_record_the_client_address(client, secretary, student, alice, registrar):
    from students.tests.factories import CohortFactory

    if student.cohort is None:  # the shared fixture's student has none; a campaign needs one
        student.cohort = CohortFactory()
        student.save(update_fields=["cohort"])
    campaign = CampaignFactory(cohorts=[student.cohort], by=registrar)
    client.force_login(secretary)
    assert client.get(reverse("students:student_detail", args=[student.pk]), **via_nginx(A)).status_code == 200
    assert AccessEvent.objects.get(action=AccessEvent.Action.RECORD_VIEW).ip_address == A

    client.post(reverse("exports:export_create"), {"kind": "unverified", "campaign": campaign.pk}, **via_nginx(B))
    assert Export.objects.get().ip_address == B
    client.logout()

    # Claiming links the account to the record: an audited change of the student.
    claim(client, alice, C)
    client.post(reverse("claim_password"), {"password1": PASSWORD, "password2": PASSWORD}, **via_nginx(C))
    entry = LogEntry.objects.get_for_object(Student.objects.get(pk=alice.pk)).latest("timestamp")
    assert entry.remote_addr == C
