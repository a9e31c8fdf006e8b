"""Sessions, headers, deploy checks, health, logs, URLs and task arguments (issue 6).

The second factor itself is tested in students/tests/test_otp.py.  Sign-in goes
through real POSTs to the sign-in page with a client address set (django-axes
needs the request); time-machine moves the clock for the session limits.
"""

import ast
import datetime
import inspect
import io
import json
import logging
import re
import secrets
import socket
import typing
from types import SimpleNamespace
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import time_machine
from cryptography.fernet import Fernet
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from registrar_portal.celery import app
from registrar_portal.logging import ID_NUMBER, JsonFormatter, MaskIdNumbersFilter
from registrar_portal.tests.test_settings import manage, portal_settings
from students.models import User, UserSession
from students.tests.factories import SecretaryFactory, UserFactory
from verification import services
from verification.exports import services as export_services
from verification.tests.factories import CampaignFactory, png_bytes, student_with_account, upload

PASSWORD = "correct horse battery"  # UserFactory's
ADDRESS = "10.1.2.3"
START = datetime.datetime(2025, 9, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
RAW_ID = "11010519491231002X"
MASKED_ID = "**************002X"


@pytest.fixture
def client():
    """Every request from one address, as a browser's are."""
    return Client(REMOTE_ADDR=ADDRESS)


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def sign_in(client, user, **extra):
    response = client.post(reverse("login"), {"username": user.username, "password": PASSWORD}, **extra)
    assert response.status_code == 302, response.content.decode()[:500]
    assert client.session[SESSION_KEY] == str(user.pk)
    return response


def session_key(client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def assert_signed_out_to_login(response, next_path):
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == reverse("login")
    assert f"next={next_path}" in target.query or next_path == "/"


def session_alive(key) -> bool:
    return SessionStore().exists(key)


# ----------------------------------------------------------------------------
# Session lifetime: inactivity and absolute, staff shorter than students
# ----------------------------------------------------------------------------

PAGE = "/notices/help/"  # a page every signed-in user may open


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("persona", "idle"),
    [("secretary", settings.SESSION_IDLE_SECONDS_STAFF), ("student", settings.SESSION_IDLE_SECONDS_STUDENT)],
)
def test_a_session_ends_after_inactivity(client, clock, department, persona, idle):
    user = SecretaryFactory(departments=[department]) if persona == "secretary" else UserFactory()
    sign_in(client, user)
    key = session_key(client)

    clock.shift(idle - 60)
    assert client.get(PAGE).status_code == 200
    clock.shift(idle - 60)  # active again just in time: the clock restarts
    assert client.get(PAGE).status_code == 200

    clock.shift(idle + 1)
    assert_signed_out_to_login(client.get(PAGE), PAGE)
    assert not session_alive(key)
    # The old cookie, replayed, is worth nothing.
    replay = Client(REMOTE_ADDR=ADDRESS)
    replay.cookies[settings.SESSION_COOKIE_NAME] = key
    assert_signed_out_to_login(replay.get(PAGE), PAGE)


@pytest.mark.django_db
def test_staff_idle_limit_is_shorter_than_students(client, clock, department):
    assert settings.SESSION_IDLE_SECONDS_STAFF < settings.SESSION_IDLE_SECONDS_STUDENT
    assert settings.SESSION_MAX_SECONDS_STAFF < settings.SESSION_MAX_SECONDS_STUDENT
    staff, student = Client(REMOTE_ADDR=ADDRESS), Client(REMOTE_ADDR=ADDRESS)
    sign_in(staff, SecretaryFactory(departments=[department]))
    sign_in(student, UserFactory())

    clock.shift(settings.SESSION_IDLE_SECONDS_STAFF + 60)

    assert_signed_out_to_login(staff.get(PAGE), PAGE)
    assert student.get(PAGE).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("persona", "lifetime"),
    [
        ("secretary", settings.SESSION_MAX_SECONDS_STAFF),
        ("registrar", settings.SESSION_MAX_SECONDS_STAFF),
        ("superuser with the default role", settings.SESSION_MAX_SECONDS_STAFF),
        ("student", settings.SESSION_MAX_SECONDS_STUDENT),
    ],
)
def test_a_session_ends_after_its_absolute_lifetime_however_active(client, clock, department, persona, lifetime):
    user = {
        "secretary": lambda: SecretaryFactory(departments=[department]),
        "registrar": lambda: UserFactory(role=User.Role.REGISTRAR),
        # createsuperuser leaves the role at its default (student): still staff.
        "superuser with the default role": lambda: UserFactory(is_superuser=True, is_staff=True),
        "student": lambda: UserFactory(),
    }[persona]()
    sign_in(client, user)
    key = session_key(client)
    # Active again a minute before each idle limit (the persona's own): as few requests as keep the session alive.
    idle = settings.SESSION_IDLE_SECONDS_STUDENT if persona == "student" else settings.SESSION_IDLE_SECONDS_STAFF
    step = idle - 60
    elapsed = 0
    while elapsed + step < lifetime:
        clock.shift(step)
        elapsed += step
        assert client.get(PAGE).status_code == 200, elapsed

    clock.shift(lifetime - elapsed + 1)
    assert_signed_out_to_login(client.get(PAGE), PAGE)
    assert not session_alive(key)
    sign_in(client, user)  # signing in again starts a new lifetime
    assert client.get(PAGE).status_code == 200


# ----------------------------------------------------------------------------
# Sign-in rotates the session; disabling an account ends its sessions
# ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_sign_in_always_rotates_the_session_key(client, secretary):
    # A session planted before sign-in (session fixation) ...
    planted = SessionStore()
    planted["planted"] = True
    planted.create()
    client.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key

    sign_in(client, secretary)

    # ... is not the one that comes out signed in.
    signed_in = session_key(client)
    assert signed_in != planted.session_key
    assert not session_alive(planted.session_key)
    assert UserSession.objects.filter(user=secretary, session_key=signed_in).exists()

    # Signing in again as the same user rotates too.
    sign_in(client, secretary)
    assert session_key(client) != signed_in
    assert not session_alive(signed_in)


@pytest.mark.django_db
def test_signing_out_forgets_the_session(client, secretary):
    sign_in(client, secretary)
    key = session_key(client)
    client.post(reverse("logout"))
    assert not session_alive(key)
    assert not UserSession.objects.filter(session_key=key).exists()


@pytest.mark.django_db
def test_disabling_an_account_ends_all_its_sessions(department):
    secretary = SecretaryFactory(departments=[department])
    browsers = [Client(REMOTE_ADDR=ADDRESS), Client(REMOTE_ADDR="10.7.7.7")]
    for browser in browsers:
        sign_in(browser, secretary)
        assert browser.get(PAGE).status_code == 200
    keys = [session_key(browser) for browser in browsers]

    secretary.is_active = False
    secretary.save()

    for browser, key in zip(browsers, keys, strict=True):
        assert not session_alive(key)
        assert_signed_out_to_login(browser.get(PAGE), PAGE)
    assert not UserSession.objects.filter(user=secretary).exists()


@pytest.mark.django_db
def test_disabling_an_account_in_the_admin_ends_its_sessions(client, department):
    secretary = SecretaryFactory(departments=[department], first_name="秘书")
    victim = Client(REMOTE_ADDR="10.7.7.7")
    sign_in(victim, secretary)
    key = session_key(victim)
    admin = UserFactory(username="root", role=User.Role.ADMIN, is_staff=True, is_superuser=True)
    client.force_login(admin)
    url = reverse("admin:students_user_change", args=[secretary.pk])
    form = client.get(url).context["adminform"].form
    joined = secretary.date_joined.astimezone(ZoneInfo(settings.TIME_ZONE))
    data = {
        "username": secretary.username,
        "first_name": secretary.first_name,
        "last_name": "",
        "email": "",
        # is_active left out: the box is unticked
        "date_joined_0": f"{joined:%Y-%m-%d}",
        "date_joined_1": f"{joined:%H:%M:%S}",
        "last_login_0": "",
        "last_login_1": "",
        "role": User.Role.SECRETARY,
        "departments": [department.pk],
        "_save": "保存",
    }
    assert "is_active" in form.fields

    response = client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    secretary.refresh_from_db()
    assert not secretary.is_active
    assert not session_alive(key)
    assert_signed_out_to_login(victim.get(PAGE), PAGE)


# ----------------------------------------------------------------------------
# Headers
# ----------------------------------------------------------------------------


def csp_directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "student", "secretary", "registrar"])
def test_pages_carry_the_security_headers(client, who, secretary, registrar):
    url = {"anonymous": reverse("login"), "student": PAGE, "secretary": reverse("workspace:dashboard")}.get(
        who, reverse("workspace:school")
    )
    user = {"student": UserFactory(), "secretary": secretary, "registrar": registrar}.get(who)
    if user:
        client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200

    csp = csp_directives(response)
    scripts = csp.get("script-src", csp.get("default-src"))
    assert scripts == ["'self'"]
    for directive in ("script-src", "default-src"):
        assert "'unsafe-inline'" not in csp.get(directive, [])
        assert "'unsafe-eval'" not in csp.get(directive, [])
    assert csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    # No template sneaks an inline script or event handler past the policy.
    html = response.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"\son[a-z]+=", html)


@pytest.fixture
def record(department, registrar):
    student = student_with_account(department=department, name="王小明")
    campaign = CampaignFactory(cohorts=[student.cohort], by=registrar)
    flag = services.field_flag(
        checklist_id=campaign.checklists.get(student=student).pk,
        field_code="MZ",
        claimed_value="回族",
        explanation="户口簿上是回族",
        files=[upload("户口簿.png", png_bytes(), "image/png")],
        record_version=student.version,
        by=student.user,
    )
    return {"student": student, "campaign": campaign, "evidence": flag.evidence.get()}


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.django_db
def test_record_evidence_and_export_responses_are_no_store(client, secretary, record):
    student, campaign = record["student"], record["campaign"]
    client.force_login(secretary)
    export = export_services.export_request(
        kind="class-sign-off",
        params={"campaign": campaign.pk, "class_group": student.class_group_id},
        user=secretary,
        ip=ADDRESS,
    )
    responses = {
        "student record": client.get(reverse("students:student_detail", args=[student.pk])),
        "workspace record": client.get(reverse("workspace:student_record", args=[student.pk])),
        "evidence": client.get(reverse("verification:evidence_download", args=[record["evidence"].pk])),
        "stored export": client.get(reverse("exports:export_download", args=[export.pk])),
        "export built now": client.post(
            reverse("exports:export_create"),
            {"kind": "class-sign-off", "campaign": campaign.pk, "class_group": student.class_group_id},
        ),
    }
    for label, response in responses.items():
        assert response.status_code == 200, label
        body(response)
        cache = response["Cache-Control"]
        assert "no-store" in cache, (label, cache)
        assert "public" not in cache, (label, cache)
    for label in ("evidence", "stored export", "export built now"):
        # One download helper: every private file carries the same headers.
        response = responses[label]
        assert response["Content-Disposition"].startswith("attachment"), label
        assert "filename*=UTF-8''" in response["Content-Disposition"], label
        assert {"private", "no-store"} <= set(response["Cache-Control"].replace(" ", "").split(",")), label
        assert response["X-Content-Type-Options"] == "nosniff", label
        assert response["Content-Security-Policy"] == "default-src 'none'; sandbox", label
    # The student's own record too.
    client.force_login(student.user)
    own = client.get(reverse("students:student_detail", args=[student.pk]))
    assert own.status_code == 200 and "no-store" in own["Cache-Control"]


@pytest.mark.django_db
def test_behind_https_the_cookies_are_secure_and_host_prefixed(client, settings, secretary):
    """The cookie settings as settings.py makes them with HTTPS on, sent by a real sign-in."""
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME = "__Host-sessionid", "__Host-csrftoken"

    page = client.get(reverse("login"), secure=True)
    response = client.post(
        reverse("login"), {"username": secretary.username, "password": PASSWORD}, secure=True, REMOTE_ADDR=ADDRESS
    )

    assert response.status_code == 302
    for cookies, name in ((page.cookies, "__Host-csrftoken"), (response.cookies, "__Host-sessionid")):
        cookie = cookies[name]
        # __Host- cookies must be Secure, for the whole site (Path=/), and name no Domain.
        assert cookie["secure"] is True, name
        assert cookie["path"] == "/", name
        assert not cookie["domain"], name
        assert cookie["httponly"] is True, name
        assert cookie["samesite"] == "Lax" or name == "__Host-csrftoken", name
    assert "sessionid" not in response.cookies and "csrftoken" not in page.cookies


# ----------------------------------------------------------------------------
# Production settings: check --deploy, cookies
# ----------------------------------------------------------------------------


def production(**overrides) -> dict:
    return {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": "rollcheck.example.edu.cn",
        "ID_NUMBER_KEYS": Fernet.generate_key().decode(),
        "ID_NUMBER_HASH_KEY": secrets.token_urlsafe(48),
        "HTTPS": "1",
        **overrides,
    }


# Run by ``manage.py shell`` on the production settings: ``check --deploy`` as ``manage.py check`` runs it,
# then again with the settings that HTTPS=0 changes.  Django's deploy checks read those settings when they
# run, so the second is the check of a portal started with HTTPS=0, without a second Django start-up (~1 s).
DEPLOY_CHECKS = """
import ast
import io
from types import SimpleNamespace
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test.utils import override_settings

def check():
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("check", "--deploy", "--fail-level", "WARNING", stdout=out, stderr=err)
    except CommandError as refused:  # what manage.py check reports on stderr, exiting with 1
        return SimpleNamespace(returncode=1, stdout=out.getvalue(), stderr=err.getvalue() + str(refused))
    return SimpleNamespace(returncode=0, stdout=out.getvalue(), stderr=err.getvalue())

results = [check()]
with override_settings(**ast.literal_eval({plain_http!r})):
    results.append(check())
print("DEPLOY-CHECKS", repr([vars(result) for result in results]))
"""


@pytest.fixture(scope="module")
def deploy_checks(tmp_path_factory) -> dict:
    """``check --deploy`` on the production settings, and on them with HTTPS=0: one subprocess for both."""
    tmp_path = tmp_path_factory.mktemp("deploy")
    https = production()
    on, off = portal_settings(tmp_path, **https), portal_settings(tmp_path, **{**https, "HTTPS": "0"})
    plain_http = {name: off[name] for name in on.keys() | off.keys() if on.get(name) != off.get(name)}
    # Only the HTTPS block's settings differ: what the deploy checks read at run time, nothing Django sets up
    # at start-up (apps, middleware, databases), so overriding them is the same as starting with HTTPS=0.
    assert plain_http and all(name.startswith(("SECURE_", "SESSION_COOKIE_", "CSRF_COOKIE_")) for name in plain_http), (
        sorted(plain_http)
    )
    ran = manage(tmp_path, "shell", "-c", DEPLOY_CHECKS.format(plain_http=repr(plain_http)), **https)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (line,) = [line for line in ran.stdout.splitlines() if line.startswith("DEPLOY-CHECKS ")]
    passed, refused = (SimpleNamespace(**result) for result in ast.literal_eval(line.removeprefix("DEPLOY-CHECKS ")))
    return {"https": passed, "plain http": refused}


def test_check_deploy_passes_with_production_settings(deploy_checks):
    result = deploy_checks["https"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_would_catch_plain_http(deploy_checks):
    """The check above can fail: without HTTPS it warns about HSTS, redirects and cookies."""
    result = deploy_checks["plain http"]
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stdout + result.stderr


COOKIE_SETTINGS = (
    "SESSION_COOKIE_NAME",
    "CSRF_COOKIE_NAME",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SESSION_COOKIE_DOMAIN",
    "CSRF_COOKIE_DOMAIN",
    "SESSION_COOKIE_PATH",
    "CSRF_COOKIE_PATH",
    "SESSION_COOKIE_HTTPONLY",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "REQUIRE_2FA_FOR_REGISTRAR",
)


def test_production_settings_make_secure_host_cookies(tmp_path):
    values = portal_settings(tmp_path, **production())
    assert {name: values[name] for name in COOKIE_SETTINGS} == {
        "SESSION_COOKIE_NAME": "__Host-sessionid",
        "CSRF_COOKIE_NAME": "__Host-csrftoken",
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_DOMAIN": None,
        "CSRF_COOKIE_DOMAIN": None,
        "SESSION_COOKIE_PATH": "/",
        "CSRF_COOKIE_PATH": "/",
        "SESSION_COOKIE_HTTPONLY": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "REQUIRE_2FA_FOR_REGISTRAR": True,
    }


# ----------------------------------------------------------------------------
# Health
# ----------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db
def test_health_is_ok_with_the_database_and_the_in_process_broker(client, settings):
    settings.REDIS_URL = ""
    response = client.get(reverse("health"))
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "ok"
    assert report["checks"]["database"]["status"] == "ok"
    assert report["checks"]["broker"]["status"] == "in-process"
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]
    assert not response.cookies  # nothing to remember about a probe


@pytest.mark.redis
@pytest.mark.django_db
def test_health_is_ok_with_a_real_redis(client):
    response = client.get(reverse("health"))
    assert response.status_code == 200
    assert response.json()["checks"] == {
        "database": {"status": "ok", "ms": response.json()["checks"]["database"]["ms"]},
        "broker": {"status": "ok", "ms": response.json()["checks"]["broker"]["ms"]},
    }


@pytest.mark.django_db
def test_health_is_503_when_the_broker_does_not_answer(client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    response = client.get(reverse("health"))
    assert response.status_code == 503
    report = response.json()
    assert report["status"] == "error"
    assert report["checks"]["database"]["status"] == "ok"
    assert report["checks"]["broker"]["status"].startswith("error: ")
    assert "127.0.0.1" not in response.content.decode()  # the type of failure only


@pytest.mark.django_db
def test_health_answers_a_plain_http_probe_behind_https(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [r"^health/$"]
    assert client.get(reverse("health")).status_code == 200
    assert client.get(reverse("login")).status_code == 301


def test_production_exempts_only_the_health_check_from_the_https_redirect(tmp_path):
    assert portal_settings(tmp_path, **production())["SECURE_REDIRECT_EXEMPT"] == ["^health/$"]


# ----------------------------------------------------------------------------
# Logs: ID numbers masked, one JSON object per line
# ----------------------------------------------------------------------------


def test_a_log_record_carrying_an_id_number_is_captured_masked(caplog):
    logger = logging.getLogger("rollcheck.tests")
    with caplog.at_level(logging.INFO):
        logger.warning("bad id %s", RAW_ID)
        logger.info("身份证号%s无效；旧号%s", RAW_ID.lower(), "110105491231002")
    assert caplog.records[0].getMessage() == f"bad id {MASKED_ID}"
    assert caplog.records[1].getMessage() == f"身份证号{MASKED_ID.lower()}无效；旧号***********1002"
    assert RAW_ID not in caplog.text and RAW_ID.lower() not in caplog.text
    assert "110105491231002" not in caplog.text


def test_numbers_that_are_not_id_numbers_are_left_alone(caplog):
    with caplog.at_level(logging.INFO):
        logging.getLogger("rollcheck.tests").info("学号 2025010001, 批次 %s, 订单 1234567890123456789", 42)
    assert caplog.records[0].getMessage() == "学号 2025010001, 批次 42, 订单 1234567890123456789"


def handler_output(formatter) -> tuple[io.StringIO, logging.Logger, logging.Handler]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(formatter)
    handler.addFilter(MaskIdNumbersFilter())
    logger = logging.getLogger(f"rollcheck.tests.{id(buffer)}")
    logger.propagate = False
    logger.addHandler(handler)
    return buffer, logger, handler


def test_the_json_formatter_writes_one_masked_object_per_line():
    buffer, logger, handler = handler_output(JsonFormatter())
    try:
        logger.warning("bad id %s", RAW_ID)
        try:
            raise ValueError(f"not a valid ID number: {RAW_ID}\nsecond line")
        except ValueError:
            logger.exception("import failed for %s", RAW_ID)
    finally:
        logger.removeHandler(handler)
    output = buffer.getvalue()
    lines = output.splitlines()
    assert len(lines) == 2
    entries = [json.loads(line) for line in lines]
    assert entries[0]["message"] == f"bad id {MASKED_ID}"
    assert entries[0]["level"] == "WARNING"
    assert entries[1]["message"] == f"import failed for {MASKED_ID}"
    assert MASKED_ID in entries[1]["exception"] and "ValueError" in entries[1]["exception"]
    assert RAW_ID not in output


def test_the_text_format_masks_tracebacks_too():
    buffer, logger, handler = handler_output(logging.Formatter(settings.LOGGING["formatters"]["text"]["format"]))
    try:
        try:
            raise ValueError(RAW_ID)
        except ValueError:
            logger.exception("import failed")
    finally:
        logger.removeHandler(handler)
    output = buffer.getvalue()
    assert "ValueError: " + MASKED_ID in output
    assert RAW_ID not in output


def test_the_configured_console_handler_masks():
    handlers = [h for h in logging.getLogger().handlers if any(isinstance(f, MaskIdNumbersFilter) for f in h.filters)]
    assert handlers, "settings.LOGGING's console handler is not installed"
    assert settings.LOGGING["handlers"]["console"]["filters"] == ["mask_ids"]


# ----------------------------------------------------------------------------
# Nothing sensitive in URLs or task arguments
# ----------------------------------------------------------------------------

# Every URL parameter of the portal (and the admin) is a database id, a code or a random token.
NON_ID_PARAMETERS = {"field_code", "kind", "slug", "token", "app_label", "url", "platform", "channel"}
SENSITIVE = re.compile(r"id_?(number|no|card)|sfz|identity|birth|name|phone", re.I)


def url_parameters() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}

    def walk(patterns, prefix):
        for entry in patterns:
            names = set(entry.pattern.regex.groupindex)
            label = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                for name in names:
                    found.setdefault(name, set()).add(label)
                walk(entry.url_patterns, label)
            elif isinstance(entry, URLPattern):
                for name in names:
                    found.setdefault(name, set()).add(label)

    walk(get_resolver().url_patterns, "/")
    return found


def test_no_url_pattern_takes_an_id_number():
    parameters = url_parameters()
    assert {"pk", "campaign_id", "token", "object_id"} <= set(parameters)  # the walk sees the whole portal
    for name, where in parameters.items():
        assert not SENSITIVE.search(name), (name, where)
        assert name in ("pk", "id") or name.endswith("_id") or name in NON_ID_PARAMETERS, (name, where)


@pytest.mark.django_db
def test_no_link_or_form_on_staff_pages_carries_an_id_number(client, secretary, registrar, record):
    student = record["student"]
    assert ID_NUMBER.search(student.id_number)
    pages = [
        (secretary, reverse("students:student_list")),
        (secretary, reverse("students:student_detail", args=[student.pk])),
        (secretary, reverse("workspace:student_record", args=[student.pk])),
        (secretary, reverse("workspace:dashboard")),
        (secretary, reverse("workspace:review_queue")),
        (registrar, reverse("workspace:school")),
        (registrar, reverse("workspace:correction_queue")),
        (student.user, reverse("verification:checklist", args=[record["campaign"].pk])),
    ]
    for user, url in pages:
        client.force_login(user)
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        links = re.findall(r'(?:href|action|src|hx-get|hx-post)="([^"]*)"', html)
        assert links, url
        for link in links:
            assert not ID_NUMBER.search(link), (url, link)
            assert student.id_number not in link and student.id_number[-6:] not in link, (url, link)
        # GET forms send their fields in the query string: none may ask for an ID number.
        for form in re.findall(r'<form[^>]*method="get"[^>]*>.*?</form>', html, re.S | re.I):
            assert "id_number" not in form and "id_suffix" not in form, (url, form)


OUR_APPS = ("students.", "verification.", "notices.")


def our_tasks() -> dict:
    import notices.tasks  # noqa: F401
    import verification.tasks  # noqa: F401

    return {name: task for name, task in app.tasks.items() if name.startswith(OUR_APPS)}


def test_celery_tasks_take_only_ids():
    tasks = our_tasks()
    assert {"verification.tasks.export_build", "notices.tasks.deliveries_send"} <= set(tasks)
    for name, task in tasks.items():
        hints = typing.get_type_hints(task.run)
        for parameter in inspect.signature(task.run).parameters.values():
            assert parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD), name
            assert parameter.name.endswith(("_id", "_ids")), (name, parameter.name)
            assert hints.get(parameter.name) in (int, list[int]), (name, parameter.name, hints.get(parameter.name))


def test_scheduled_tasks_carry_no_arguments():
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"].startswith(OUR_APPS)
        assert not entry.get("args") and not entry.get("kwargs")
