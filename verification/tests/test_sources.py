"""The registrar's comparison page: differences, decisions, and the correction a "CHSI is wrong" opens."""

import pytest
from django.urls import reverse

from students.models import ApiClient, RosterSource, SourceResolution
from students.services import roster_import
from students.tests.rosters import as_table, base_rows, write_csv, write_xlsx
from verification.models import Flag
from verification.tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def compared(tmp_path):
    rows = base_rows(4)
    assert roster_import(path=write_xlsx(tmp_path / "chsi.xlsx", *as_table(rows))).errors == []
    school = [dict(row) for row in rows]
    school[0]["XM"] = "王某某"
    school[1]["MZ"] = "满族" if school[1]["MZ"] != "满族" else "回族"
    assert roster_import(path=write_csv(tmp_path / "jw.csv", *as_table(school)), source="教务系统").errors == []
    return rows, school, RosterSource.objects.get(name="教务系统")


def decide(client, source, xh, field, decision, query=""):
    return client.post(
        reverse("workspace:source_decide", args=[source.pk]),
        {"student_number": xh, "field": field, "decision": decision, "query": query},
        follow=True,
    )


def test_the_page_lists_differences_with_counts(client, registrar, compared):
    rows, school, source = compared
    client.force_login(registrar)
    page = client.get(reverse("workspace:source_diff", args=[source.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "王某某" in text and rows[0]["XM"] in text
    assert "差异 2 处" in text
    page = client.get(reverse("workspace:source_diff", args=[source.pk]), {"field": "MZ"})
    assert [d.field for d in page.context["differences"]] == ["MZ"]
    assert client.get(reverse("workspace:source_list")).status_code == 200


def test_chsi_is_wrong_opens_an_accepted_correction_naming_the_source(client, registrar, compared):
    rows, school, source = compared
    from students.models import Student

    student = Student.objects.get(student_number=rows[0]["XH"])
    CampaignFactory(cohorts=[student.cohort])
    client.force_login(registrar)
    page = decide(client, source, rows[0]["XH"], "XM", SourceResolution.Decision.CHSI_WRONG, "field=XM")
    assert page.redirect_chain[-1][0].endswith("?field=XM")
    flag = Flag.objects.get(checklist__student=student)
    assert flag.status == Flag.Status.ACCEPTED
    assert flag.claimed_value == "王某某"
    assert "教务系统" in flag.explanation
    assert flag.status in Flag.PENDING_CORRECTION  # in the correction queue and the CHSI list
    diff_page = client.get(reverse("workspace:source_diff", args=[source.pk]), {"decision": "open"})
    assert [d.field for d in diff_page.context["differences"]] == ["MZ"]


def test_chsi_is_wrong_without_a_campaign_is_refused_and_records_nothing(client, registrar, compared):
    rows, school, source = compared
    client.force_login(registrar)
    page = decide(client, source, rows[0]["XH"], "XM", SourceResolution.Decision.CHSI_WRONG)
    assert "还没有核对活动" in page.content.decode()
    assert not SourceResolution.objects.exists()
    assert not Flag.objects.exists()


def test_school_record_wrong_is_kept_for_the_office_export(client, registrar, compared):
    rows, school, source = compared
    client.force_login(registrar)
    decide(client, source, rows[1]["XH"], "MZ", SourceResolution.Decision.SOURCE_WRONG)
    page = client.get(reverse("workspace:source_diff", args=[source.pk]), {"decision": "source_wrong"})
    assert [(d.student_number, d.field) for d in page.context["differences"]] == [(rows[1]["XH"], "MZ")]
    assert not Flag.objects.exists()


def test_a_decision_on_no_difference_is_404(client, registrar, compared):
    rows, school, source = compared
    client.force_login(registrar)
    response = client.post(
        reverse("workspace:source_decide", args=[source.pk]),
        {"student_number": rows[3]["XH"], "field": "XM", "decision": "no_action"},
    )
    assert response.status_code == 404


@pytest.mark.parametrize("url", ["workspace:source_list", "workspace:api_clients"])
def test_secretaries_do_not_see_the_registrar_pages(client, secretary, compared, url):
    client.force_login(secretary)
    assert client.get(reverse(url)).status_code == 404


def test_a_registrar_creates_a_client_sees_its_token_once_and_revokes_it(client, registrar, department):
    client.force_login(registrar)
    page = client.post(
        reverse("workspace:api_clients"),
        {"name": "教务系统", "departments": [department.pk], "can_write": "on", "rate_per_minute": 60},
    )
    token = page.context["token"]
    assert token and token in page.content.decode()
    api_client = ApiClient.objects.get(name="教务系统")
    assert token not in (api_client.token_hash, api_client.token_prefix)
    assert client.get("/api/v1/campaigns", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    listing = client.get(reverse("workspace:api_clients")).content.decode()
    assert token not in listing
    client.post(reverse("workspace:api_client_revoke", args=[api_client.pk]))
    assert client.get("/api/v1/campaigns", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_the_export_holds_what_the_page_shows(client, registrar, compared):
    import io

    import openpyxl

    from verification.models import Export

    rows, school, source = compared
    client.force_login(registrar)
    page = client.get(reverse("workspace:source_diff", args=[source.pk]), {"field": "XM"})
    shown = [(d.student_number, d.chsi, d.source) for d in page.context["differences"]]
    assert 'value="source-differences"' in page.content.decode()
    response = client.post(
        reverse("exports:export_create"), {"kind": "source-differences", "source": source.pk, "field": "XM"}
    )
    assert response.status_code in (200, 302)
    export = Export.objects.get(kind="source-differences")
    data = client.get(reverse("exports:export_download", args=[export.pk]))
    book = openpyxl.load_workbook(io.BytesIO(b"".join(data.streaming_content) if data.streaming else data.content))
    sheet = book.worksheets[0]
    values = [[c.value for c in r] for r in sheet.iter_rows()]
    start = next(i for i, r in enumerate(values) if r and r[0] == "学号") + 1
    in_file = [(r[0], r[2], r[3]) for r in values[start:] if r[0]]
    assert in_file == shown
