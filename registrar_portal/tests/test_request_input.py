"""Malformed query strings and posted ids: "not found" or a form error, never a server error.

Views read request input through forms (students.forms.IdField / IdListField, verification.forms.WorkspaceQueryForm);
these cases are the values an outside test sent: non-ASCII digits ("²" passes str.isdigit() but not int()),
empty and made-up values, and ids larger than a database integer.
"""

import copy

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from students.models import Student
from students.tests.factories import CohortFactory, DepartmentFactory, SecretaryFactory, UserFactory
from students.tests.sessions import resume, session_of
from verification.models import Campaign, FieldCheck
from verification.tests.factories import CampaignFactory, student_with_account
from verification.tests.pages import messages_of

pytestmark = pytest.mark.django_db

BAD_IDS = ["²", "٣x", "abc", "-1", "0", "1.5", "99999999999999999999", " "]


@pytest.fixture(scope="module")
def shared_cast(module_rows):
    """The student, the open campaign and the staff, built once for the module, each person signed in once.

    Building them and signing in for each of the module's 132 cases was over half of its time.  Signing in
    goes through ``force_login`` as the cases did; each case sends that session's cookie through the whole
    middleware stack.  The rows and sessions live in the module's transaction: what a case changes
    (its session included) is rolled back.
    """
    with module_rows(), translation.override(settings.LANGUAGE_CODE):
        department = DepartmentFactory(name="计算机学院")
        registrar = UserFactory(role="registrar", username="registrar1")
        secretary = SecretaryFactory(departments=[department])
        cohort = CohortFactory(admission_year=2025, level="本科")
        me = student_with_account(department=department, cohort=cohort, name="王小明")
        campaign = CampaignFactory(name="2025级新生学籍核对", cohorts=[cohort], by=registrar)
        personas = {"registrar": registrar, "secretary": secretary, "student": me.user}
        sessions = {persona: session_of(user) for persona, user in personas.items()}
        # Read back without the related rows the factories cached: copying those for each case cost more than its request.
        return {
            "me": Student.objects.get(pk=me.pk),
            "campaign": Campaign.objects.get(pk=campaign.pk),
            "class_id": me.class_group_id,
            "sessions": sessions,
        }


@pytest.fixture
def cast(db, shared_cast):
    """A copy of the module's cast for each case (its database changes are rolled back)."""
    return copy.deepcopy(shared_cast)


def sign_in(client, cast, persona):
    """The client sends the session ``persona`` signed in with when the cast was built."""
    resume(client, cast["sessions"][persona])


def _get_cases():
    for bad in BAD_IDS:
        yield "workspace:dashboard", None, {"campaign": bad}
        yield "workspace:dashboard", None, {"department": bad}
        yield "workspace:school", None, {"campaign": bad}
        yield "workspace:class_detail", "class_id", {"campaign": bad}
        yield "workspace:review_queue", None, {"department": bad}
        yield "workspace:findings", None, {"department": bad}
        yield "workspace:student_record", "student_id", {"campaign": bad}
        yield "workspace:proxy_flag", "student_field", {"campaign": bad}
        yield "students:student_list", None, {"class_group": bad}
        yield "exports:export_log", None, {"user": bad}
        yield "notices:delivery_log", "campaign_id", {"stage": bad}
    yield "workspace:review_queue", None, {"status": "nonsense"}
    yield "workspace:correction_queue", None, {"status": "nonsense"}
    yield "workspace:findings", None, {"kind": "nonsense"}
    yield "students:student_list", None, {"roll_status": "nonsense", "page": "²"}
    yield "students:access_log", None, {"since": "²", "page": "²"}


def _args(name, cast):
    return {
        None: [],
        "class_id": [cast["class_id"]],
        "student_id": [cast["me"].pk],
        "student_field": [cast["me"].pk, "BH"],
        "campaign_id": [cast["campaign"].pk],
    }[name]


@pytest.mark.parametrize("route, args, query", list(_get_cases()))
def test_a_malformed_query_string_is_not_a_server_error(client, cast, route, args, query):
    sign_in(client, cast, "registrar")

    response = client.get(reverse(route, args=_args(args, cast)), query)

    assert response.status_code in (200, 404), response.status_code


@pytest.mark.parametrize("bad", BAD_IDS)
def test_a_malformed_campaign_in_the_workspace_is_not_found(client, cast, bad):
    sign_in(client, cast, "registrar")

    assert client.get(reverse("workspace:dashboard"), {"campaign": bad}).status_code == 404
    assert client.get(reverse("workspace:review_queue"), {"department": bad}).status_code == 404


def test_a_student_list_filter_that_cannot_be_read_lists_nobody(client, cast):
    sign_in(client, cast, "registrar")

    page = client.get(reverse("students:student_list"), {"class_group": "²"}).content.decode()

    assert cast["me"].student_number not in page
    assert "筛选条件无效" in page


@pytest.mark.parametrize("bad", BAD_IDS)
def test_malformed_posted_ids_are_not_a_server_error(client, cast, bad):
    sign_in(client, cast, "registrar")
    campaign, me = cast["campaign"], cast["me"]
    posts = [
        (reverse("workspace:review_act"), {"flags": [bad], "action": "forward"}),
        (reverse("workspace:review_act"), {"flags": ["1", bad], "action": "note", "note": "x"}),
        (reverse("workspace:progress_link_create", args=[cast["class_id"]]), {"campaign": bad}),
        (reverse("workspace:proxy_confirm_all", args=[me.pk]), {"campaign": bad, "attest": "on"}),
        (reverse("notices:remind_now", args=[cast["class_id"]]), {"campaign": bad, "scope": "class"}),
        (
            reverse("notices:remind_now", args=[cast["class_id"]]),
            {"campaign": campaign.pk, "scope": "chosen", "students": [bad], "request_key": "a" * 32},
        ),
        (reverse("exports:export_create"), {"kind": "unverified", "campaign": bad}),
        (reverse("exports:export_create"), {"kind": "unverified", "campaign": campaign.pk, "department": bad}),
    ]
    for url, data in posts:
        response = client.post(url, data)
        assert response.status_code in (302, 404), (url, data, response.status_code)


def test_review_act_with_an_unreadable_flag_asks_to_choose_again(client, cast):
    sign_in(client, cast, "registrar")

    response = client.post(reverse("workspace:review_act"), {"flags": ["²"], "action": "forward"}, follow=True)

    assert "请至少选择一条报错。" in messages_of(response)


@pytest.mark.parametrize("version", ["abc", "²", "", None])
def test_a_proxy_confirm_without_a_readable_record_version_is_refused(client, cast, version):
    sign_in(client, cast, "secretary")
    data = {"campaign": cast["campaign"].pk, "attest": "on"}
    if version is not None:
        data["record_version"] = version

    response = client.post(reverse("workspace:proxy_confirm_all", args=[cast["me"].pk]), data, follow=True)

    assert response.status_code == 200
    assert "页面已过期，请刷新后重试。" in messages_of(response)
    assert not FieldCheck.objects.exists()


def test_a_proxy_confirm_from_a_stale_page_is_refused(client, cast):
    me = cast["me"]
    sign_in(client, cast, "secretary")
    me.version += 1
    me.save(update_fields=["version"])

    response = client.post(
        reverse("workspace:proxy_confirm_all", args=[me.pk]),
        {"campaign": cast["campaign"].pk, "attest": "on", "record_version": me.version - 1},
        follow=True,
    )

    assert "你的学籍信息在你打开页面后已更新，请查看最新信息后重新核对。" in messages_of(response)
    assert not FieldCheck.objects.exists()


@pytest.mark.parametrize("version", ["abc", "²", "٣x", "99999999999999999999"])
def test_a_students_form_with_an_unreadable_record_version_is_refused_not_a_server_error(client, cast, version):
    """Issue 11 item 7 (record_version=abc) on the student's own checklist: a form error, nothing written."""
    from verification.models import Flag

    campaign = cast["campaign"]
    sign_in(client, cast, "student")
    posts = [
        (reverse("verification:field_confirm", args=[campaign.pk, "BH"]), {}),
        (reverse("verification:field_flag", args=[campaign.pk, "BH"]), {"claimed_value": "计算2502"}),
        (reverse("verification:confirm_all", args=[campaign.pk]), {"attest": "on"}),
        (reverse("verification:confirm_rest", args=[campaign.pk]), {}),
    ]
    for url, data in posts:
        response = client.post(url, {**data, "record_version": version})
        assert response.status_code in (200, 302), (url, response.status_code)
    assert not FieldCheck.objects.exists() and not Flag.objects.exists()


@pytest.mark.parametrize("route, args, query", [case for case in _get_cases() if case[2] and " " in case[2].values()])
def test_an_empty_query_parameter_is_not_a_server_error(client, cast, route, args, query):
    """``?department=`` as the outside test sent it: the parameter present with no value."""
    sign_in(client, cast, "registrar")

    response = client.get(reverse(route, args=_args(args, cast)), {key: "" for key in query})

    assert response.status_code in (200, 404), response.status_code


def test_empty_posted_ids_are_not_a_server_error(client, cast):
    sign_in(client, cast, "registrar")
    campaign = cast["campaign"]
    posts = [
        (reverse("workspace:review_act"), {"flags": [""], "action": "forward"}),
        (reverse("workspace:progress_link_create", args=[cast["class_id"]]), {"campaign": ""}),
        (
            reverse("notices:remind_now", args=[cast["class_id"]]),
            {"campaign": campaign.pk, "scope": "chosen", "students": [""], "request_key": "b" * 32},
        ),
        (reverse("exports:export_create"), {"kind": "unverified", "campaign": campaign.pk, "department": ""}),
    ]
    for url, data in posts:
        response = client.post(url, data)
        assert response.status_code in (200, 302, 404), (url, data, response.status_code)
