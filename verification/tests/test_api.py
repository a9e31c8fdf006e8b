"""The REST API: its schema, token scopes × endpoints (out of scope is 404), masking, logging, rate limits."""

import copy

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation

from students.api_clients import api_client_create, api_client_revoke
from students.models import AccessEvent, Student
from students.tests.factories import CohortFactory, DepartmentFactory
from students.tests.rosters import as_table, base_rows, write_csv
from verification import services
from verification.models import Checklist
from verification.tests.factories import CampaignFactory, student_with_account
from verification.tests.shared_cast import fixtures_of

pytestmark = pytest.mark.django_db

API = "/api/v1"


def build_school(department, other_department):
    cohort = CohortFactory()
    ours = student_with_account(department=department, cohort=cohort)
    theirs = student_with_account(department=other_department, cohort=cohort)
    campaign = CampaignFactory(cohorts=[cohort])
    for student in (ours, theirs):
        checklist = Checklist.objects.get(campaign=campaign, student=student)
        services.field_flag(
            checklist_id=checklist.pk,
            field_code="MZ",
            claimed_value="回族" if student.ethnicity != "回族" else "汉族",
            record_version=student.version,
            by=student.user,
        )
    return {"ours": ours, "theirs": theirs, "campaign": campaign}


def build_clients(department):
    made = {
        "school": api_client_create(name="数据中台"),
        "department": api_client_create(name="计算机学院学工", departments=[department]),
        "writer": api_client_create(name="教务", can_write=True),
        "department_writer": api_client_create(name="学院迎新", departments=[department], can_write=True),
        "revealer": api_client_create(name="学位系统", can_reveal=True),
    }
    return {name: token for name, (_client, token) in made.items()}


@pytest.fixture(scope="module")
def shared_cast(module_rows):
    """The school and the API clients, built once for the module: building them for each test was most of
    its time.  Each test gets a copy and its own changes (rate windows, access log, contacts) are rolled back."""
    with module_rows(), translation.override(settings.LANGUAGE_CODE):
        department = DepartmentFactory(name="计算机学院")
        other_department = DepartmentFactory(name="外国语学院")
        return {
            "department": department,
            "school": build_school(department, other_department),
            "clients": build_clients(department),
        }


@pytest.fixture
def cast(db, shared_cast):
    return copy.deepcopy(shared_cast)


globals().update(fixtures_of("department", "school", "clients"))


def call(client, method, path, token=None, **kwargs):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return getattr(client, method)(API + path, **kwargs, **headers)


def test_the_openapi_schema_is_served(client):
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "Roll Check API"
    assert "/api/v1/campaigns/{campaign_id}/flags" in schema["paths"]
    assert schema["components"]["securitySchemes"]


@pytest.mark.parametrize("token", [None, "rc_not-a-token", "Basic abc"])
def test_no_valid_token_is_401(client, school, token):
    assert call(client, "get", "/campaigns", token).status_code == 401


def test_a_revoked_token_is_401(client, school):
    api_client, token = api_client_create(name="旧系统")
    assert call(client, "get", "/campaigns", token).status_code == 200
    api_client_revoke(client=api_client)
    assert call(client, "get", "/campaigns", token).status_code == 401


# Who sees which student: the school-wide clients both, the department ones only theirs.
SEES_THEIRS = {"school": True, "department": False, "writer": True, "department_writer": False, "revealer": True}


@pytest.mark.parametrize("name", list(SEES_THEIRS))
def test_reads_are_scoped_like_the_clients_role(client, school, clients, name):
    token, campaign = clients[name], school["campaign"].pk
    theirs = school["theirs"].student_number

    numbers = {row["student_number"] for row in call(client, "get", f"/campaigns/{campaign}/checklists", token).json()}
    assert school["ours"].student_number in numbers
    assert (theirs in numbers) is SEES_THEIRS[name]

    flags = call(client, "get", f"/campaigns/{campaign}/flags", token).json()
    assert (theirs in {f["student_number"] for f in flags}) is SEES_THEIRS[name]
    assert all(f["history"][0]["action"] == "submitted" for f in flags)

    departments = {row["id"] for row in call(client, "get", f"/campaigns/{campaign}/progress", token).json()}
    assert (school["theirs"].department_id in departments) is SEES_THEIRS[name]


WRITES = {"school": 404, "department": 404, "writer": 200, "department_writer": 404, "revealer": 404}


@pytest.mark.parametrize("name", list(WRITES))
def test_roster_import_needs_a_school_wide_writing_client(client, school, clients, name, tmp_path):
    header, data = as_table(base_rows(3))
    path = write_csv(tmp_path / "r.csv", header, data)
    upload = SimpleUploadedFile("r.csv", path.read_bytes())
    response = call(client, "post", "/rosters", clients[name], data={"file": upload, "dry_run": "true"})
    assert response.status_code == WRITES[name]
    if response.status_code == 200:
        assert response.json()["created"] == 3
        assert Student.objects.count() == 2  # a dry run writes nothing


def test_a_broken_roster_through_the_api_is_422_and_imports_nothing(client, school, clients, tmp_path):
    rows = base_rows(3)
    rows[1]["CSRQ"] = "2007-02-30"
    path = write_csv(tmp_path / "r.csv", *as_table(rows))
    upload = SimpleUploadedFile("r.csv", path.read_bytes())
    response = call(client, "post", "/rosters", clients["writer"], data={"file": upload})
    assert response.status_code == 422
    assert [(e["row"], e["field"]) for e in response.json()["errors"]] == [(3, "CSRQ")]
    assert Student.objects.count() == 2


@pytest.mark.parametrize(("name", "whose", "status"), [
    ("department_writer", "ours", 200), ("department_writer", "theirs", 404), ("writer", "theirs", 200),
    ("department", "ours", 404), ("school", "theirs", 404),
])  # fmt: skip
def test_contact_updates_are_scoped_and_need_write(client, school, clients, name, whose, status):
    student = school[whose]
    response = call(
        client,
        "patch",
        "/students/contact",
        clients[name],
        data={"student_number": student.student_number, "phone": "13912345678"},
        content_type="application/json",
    )
    assert response.status_code == status
    student.refresh_from_db()
    assert (student.phone == "13912345678") is (status == 200)


def test_a_bad_email_is_refused_with_a_message(client, school, clients):
    response = call(
        client, "patch", "/students/contact", clients["writer"],
        data={"student_number": school["ours"].student_number, "email": "not-an-address"},
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 400
    assert "邮箱" in response.json()["detail"]


def test_id_numbers_are_masked_unless_the_client_may_reveal_and_reveals_are_logged(client, school, clients):
    full = school["ours"].id_number
    path = f"/campaigns/{school['campaign'].pk}/checklists"
    masked = call(client, "get", path, clients["school"]).json()
    assert full not in str(masked)
    assert any("*" in row["id_number"] for row in masked)
    assert not AccessEvent.objects.filter(action=AccessEvent.Action.ID_REVEAL).exists()

    revealed = call(client, "get", path, clients["revealer"]).json()
    assert full in {row["id_number"] for row in revealed}
    assert AccessEvent.objects.filter(action=AccessEvent.Action.ID_REVEAL, detail__contains="学位系统").exists()


def test_every_call_is_in_the_access_log(client, school, clients):
    call(client, "get", "/campaigns", clients["department"])
    call(client, "get", f"/campaigns/{school['campaign'].pk}/corrections", clients["department"])
    events = AccessEvent.objects.filter(action=AccessEvent.Action.API_CALL).order_by("at", "id")
    assert [e.target for e in events] == [
        "GET /api/v1/campaigns",
        f"GET /api/v1/campaigns/{school['campaign'].pk}/corrections",
    ]
    assert all("计算机学院学工" in e.detail for e in events)


def test_a_client_over_its_rate_is_429_with_retry_after(client, school):
    _client, token = api_client_create(name="爬虫", rate_per_minute=3)
    statuses = [call(client, "get", "/campaigns", token).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = call(client, "get", "/campaigns", token)
    assert 1 <= int(response["Retry-After"]) <= 60


def test_an_unknown_campaign_is_404(client, clients):
    assert call(client, "get", "/campaigns/999999/flags", clients["school"]).status_code == 404
