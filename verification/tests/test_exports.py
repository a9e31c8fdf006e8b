"""Exports: each file reopened with openpyxl and read cell by cell; scope, the access log, large exports."""

import copy
import datetime
import io
import re
import threading
import zoneinfo
from types import SimpleNamespace

import openpyxl
import pytest
import time_machine
from django.conf import settings
from django.http import Http404
from django.urls import URLResolver, get_resolver, reverse
from django.utils import timezone, translation

from students import fields as roll_fields
from students.downloads import content_disposition
from students.idnumbers import check_digit, mask
from students.models import ClassGroup, ImportFinding, Student, User
from students.tests.factories import (
    ClassGroupFactory,
    StudentFactory,
    UserFactory,
)
from students.tests.sessions import resume, session_of
from verification import services, tasks
from verification.exports import base as export_base
from verification.exports import registry
from verification.exports import services as export_services
from verification.models import Checklist, Evidence, Export, Flag

from .shared_cast import build_cast, fixtures_of

pytestmark = pytest.mark.django_db

S = Flag.Status
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
EXPORTED_AT = datetime.datetime(2025, 9, 20, 10, 30, tzinfo=SHANGHAI)
CONFIRMED_AT = datetime.datetime(2025, 9, 18, 8, 5, tzinfo=SHANGHAI)
# 18 digits: as an Excel number it would keep only 15 significant digits.
FULL_ID = "11010520070314987" + check_digit("11010520070314987")  # …9872, all digits
INJECTIONS = ['=HYPERLINK("http://x","y")', "+1", "-2", "@x"]


# ---------------------------------------------------------------------------
# The school: four students in two departments, one campaign
# ---------------------------------------------------------------------------


def build_school(me, cohort, department, other_department, campaign):
    """王小明 (not started) and 李雷 (confirmed) in 计算2501, 韩梅梅 in 计算2502, 外院生 elsewhere."""
    first = me.class_group
    ClassGroup.objects.filter(pk=first.pk).update(name="计算2501")
    Student.objects.filter(pk=me.pk).update(class_name="计算2501", student_number="2025100001", phone="13800000001")
    me.refresh_from_db()
    second = ClassGroupFactory(department=department, name="计算2502")
    classmate = StudentFactory(
        department=department, class_group=me.class_group, cohort=cohort, name="李雷", student_number="2025100002"
    )
    other = StudentFactory(
        department=department, class_group=second, cohort=cohort, name="韩梅梅", student_number="2025100003"
    )
    outsider = StudentFactory(department=other_department, cohort=cohort, name="外院生", student_number="2025200001")
    services.campaign_sync_students(campaign=campaign)
    Checklist.objects.filter(campaign=campaign, student=classmate).update(
        state=Checklist.State.CONFIRMED, finished_at=CONFIRMED_AT
    )
    return SimpleNamespace(
        campaign=campaign, me=me, classmate=classmate, other=other, outsider=outsider, first_class=me.class_group
    )


@pytest.fixture(scope="module")
def shared_cast(module_rows):
    """The school and its staff, built once for the module: building them for each test was most of its time.

    Each persona signs in once here (``students/tests/sessions.py``) and ``sign_in`` sends that session's
    cookie.  Each test gets a copy of the objects; its changes are rolled back.
    """
    with module_rows(), translation.override(settings.LANGUAGE_CODE):
        built = build_cast()
        built["school"] = build_school(
            built.pop("me"), built["cohort"], built["department"], built["other_department"], built.pop("campaign")
        )
        users = (built["registrar"], built["secretary"], built["other_secretary"], built["school"].me.user)
        return built, {user.pk: session_of(user) for user in users}


@pytest.fixture
def cast(db, shared_cast):
    built, sessions = shared_cast
    SESSIONS.clear()
    SESSIONS.update(sessions)
    yield copy.deepcopy(built)
    SESSIONS.clear()


SESSIONS: dict[int, str] = {}  # user pk → the session its persona signed in with once (``shared_cast``)


def sign_in(client, user):
    """The persona's session made once for the module, or a fresh sign-in for anyone else."""
    if user.pk in SESSIONS:
        resume(client, SESSIONS[user.pk])
    else:
        client.force_login(user)


globals().update(fixtures_of("department", "other_department", "cohort", "registrar", "secretary", "other_secretary"))


@pytest.fixture
def school(cast):
    """王小明 (not started) and 李雷 (confirmed) in 计算2501, 韩梅梅 in 计算2502, 外院生 elsewhere."""
    return cast["school"]


@pytest.fixture
def me(school):
    return school.me


@pytest.fixture
def campaign(school):
    return school.campaign


def add_flag(student, campaign, code, claimed, *, recorded=None, explanation="", status=S.SUBMITTED, evidence=0):
    """A flag as the review chain leaves it (made directly: the export must cope with whatever is stored)."""
    checklist = Checklist.objects.get(campaign=campaign, student=student)
    field = roll_fields.BY_CODE[code]
    flag = Flag.objects.create(
        checklist=checklist,
        field_code=code,
        recorded_value=services.record_value(student, field) if recorded is None else recorded,
        claimed_value=claimed,
        explanation=explanation,
        status=status,
        record_version=student.version,
    )
    Evidence.objects.bulk_create(
        Evidence(
            flag=flag,
            storage_name=f"{flag.pk}-{n}.png",
            original_name="证明.png",
            content_type="image/png",
            size=1,
            sha256=f"{n:064d}",
        )
        for n in range(evidence)
    )
    Checklist.objects.filter(pk=checklist.pk).update(state=Checklist.State.FLAGGED, finished_at=CONFIRMED_AT)
    return flag


# ---------------------------------------------------------------------------
# Reading the files back
# ---------------------------------------------------------------------------


def download(response) -> bytes:
    # Reading the whole stream closes the response, as a WSGI server would (the test
    # client's wrapper); closing it again would drop the test's database connection.
    assert response.status_code == 200, response.status_code
    return b"".join(response.streaming_content)


def workbook(data: bytes):
    return openpyxl.load_workbook(io.BytesIO(data))


def values(sheet, *, start=1):
    return [list(row) for row in sheet.iter_rows(min_row=start, values_only=True)]


def data_rows(sheet):
    """The table under the header, up to the first blank row (a signature line may follow it)."""
    rows = []
    for row in values(sheet, start=5):
        if all(value is None for value in row):
            break
        rows.append(row)
    return rows


def request_export(client, kind, *, follow=False, remote_addr="127.0.0.1", **params):
    return client.post(
        reverse("exports:export_create"), {"kind": kind, **params}, follow=follow, REMOTE_ADDR=remote_addr
    )


def export_file(client, kind, **params):
    with time_machine.travel(EXPORTED_AT, tick=False):
        return workbook(download(request_export(client, kind, **params)))


def assert_heading(sheet, title, who, header):
    """Rows 1–4: what the export is, who exported it and when, a blank row, the column names."""
    assert sheet["A1"].value == title
    assert sheet["A1"].font.b
    assert sheet["A2"].value == f"导出人：{who}    导出时间：2025-09-20 10:30"
    assert all(cell.value is None for cell in sheet[3])
    assert [cell.value for cell in sheet[4]] == header


def assert_text(cell, value):
    """A text cell holding exactly ``value``, formatted as Text so Excel never makes it a number."""
    assert cell.value == value
    assert cell.data_type == "s"
    assert cell.number_format == "@"


def column(sheet, header_name):
    header = [cell.value for cell in sheet[4]]
    return [row[header.index(header_name)] for row in sheet.iter_rows(min_row=5)]


@pytest.fixture
def secretary_client(client, secretary):
    sign_in(client, secretary)
    return client


@pytest.fixture
def registrar_client(client, registrar):
    registrar.first_name = "张老师"
    registrar.save()
    sign_in(client, registrar)
    return client


# ---------------------------------------------------------------------------
# 1. Class sign-off sheet
# ---------------------------------------------------------------------------


def test_class_sign_off_sheet_lists_the_class_and_its_error_feedback(secretary_client, secretary, school):
    add_flag(
        school.me, school.campaign, "SFZH", FULL_ID, explanation="身份证最后四位录错", status=S.FORWARDED, evidence=1
    )
    add_flag(school.me, school.campaign, "XB", "女", status=S.WITHDRAWN)  # withdrawn: not listed

    book = export_file(
        secretary_client, "class-sign-off", campaign=school.campaign.pk, class_group=school.first_class.pk
    )

    assert book.sheetnames == ["核对登记表", "信息错误反馈"]
    sign_off, feedback = book.worksheets
    assert_heading(
        sign_off,
        "2025级新生学籍核对 核对登记表 · 计算2501",
        secretary.username,
        ["序号", "学号", "姓名", "状态", "确认时间", "签名"],
    )
    # Confirmation times are date cells (in the school's time zone); the 签名 column is left for the pen.
    assert data_rows(sign_off) == [
        [1, "2025100001", "王小明", "已报错", CONFIRMED_AT.replace(tzinfo=None), None],
        [2, "2025100002", "李雷", "已确认无误", CONFIRMED_AT.replace(tzinfo=None), None],
    ]
    assert sign_off["E5"].is_date and sign_off["E5"].number_format == "yyyy-mm-dd hh:mm"
    assert_text(sign_off["B5"], "2025100001")
    assert sign_off["A5"].data_type == "n"

    assert_heading(
        feedback,
        "2025级新生学籍核对 核对登记表 · 计算2501",
        secretary.username,
        ["学号", "姓名", "字段", "正确内容", "说明", "联系电话", "处理状态"],
    )
    assert data_rows(feedback) == [
        [
            "2025100001",
            "王小明",
            "证件号码",
            mask(FULL_ID),
            "身份证最后四位录错",
            "13800000001",
            "院系已审核，待学籍科受理",
        ]
    ]
    assert FULL_ID not in str(values(feedback))
    assert_text(feedback["A5"], "2025100001")


# ---------------------------------------------------------------------------
# 2. Department error list
# ---------------------------------------------------------------------------


def test_department_error_list_masks_id_numbers(secretary_client, secretary, school):
    recorded = school.me.id_number
    add_flag(school.me, school.campaign, "SFZH", FULL_ID, explanation="见户口簿", status=S.SUBMITTED, evidence=2)
    add_flag(school.other, school.campaign, "XM", "韩梅", explanation="", status=S.RETURNED)
    add_flag(school.outsider, school.campaign, "XM", "外院学生")  # another department: not in the secretary's list

    book = export_file(secretary_client, "department-errors", campaign=school.campaign.pk)

    sheet = book["有误学生名单"]
    header = [
        "院系", "班级", "学号", "姓名", "证件号码", "有误字段", "学信网上的值",
        "正确的值", "说明", "证明材料数", "联系电话", "处理状态",
    ]  # fmt: skip
    assert_heading(sheet, "2025级新生学籍核对 学籍信息有误学生名单", secretary.username, header)
    assert data_rows(sheet) == [
        [
            "计算机学院", "计算2501", "2025100001", "王小明", mask(recorded), "证件号码", mask(recorded),
            mask(FULL_ID), "见户口簿", 2, "13800000001", "已提交，待院系审核",
        ],
        [
            "计算机学院", "计算2502", "2025100003", "韩梅梅", mask(school.other.id_number), "姓名", "韩梅梅",
            "韩梅", None, 0, "13800000000", "已退回，请修改后重新提交",
        ],
    ]  # fmt: skip
    # Masked everywhere: neither the recorded nor the claimed number appears in full.
    everything = str(values(sheet))
    assert recorded not in everything and FULL_ID not in everything
    assert_text(sheet["C5"], "2025100001")
    assert_text(sheet["E5"], mask(recorded))


def test_department_error_list_for_one_department_of_the_registrar(registrar_client, school, other_department):
    add_flag(school.me, school.campaign, "XM", "王晓明")
    add_flag(school.outsider, school.campaign, "XM", "外院学生")

    book = export_file(
        registrar_client, "department-errors", campaign=school.campaign.pk, department=other_department.pk
    )

    assert [(row[0], row[2], row[3]) for row in data_rows(book.active)] == [("外国语学院", "2025200001", "外院生")]
    assert Export.objects.get().params == {
        "campaign": school.campaign.pk,
        "department": other_department.pk,
        "label": "2025级新生学籍核对 · 外国语学院",
    }


# ---------------------------------------------------------------------------
# 3. CHSI correction list
# ---------------------------------------------------------------------------


def test_chsi_correction_list_has_one_sheet_per_authority_with_full_id_numbers(registrar_client, school):
    recorded = school.me.id_number
    add_flag(school.me, school.campaign, "SFZH", FULL_ID, explanation="户籍证明", status=S.FORWARDED)
    add_flag(school.me, school.campaign, "XM", "王晓明", status=S.SUBMITTED_TO_CHSI)
    add_flag(school.other, school.campaign, "BH", "计算2501", status=S.ACCEPTED)
    add_flag(school.outsider, school.campaign, "XB", "女", status=S.SUBMITTED)  # not forwarded yet: not listed
    add_flag(school.classmate, school.campaign, "MZ", "回族", status=S.CORRECTED)  # done: not listed

    book = export_file(registrar_client, "chsi-corrections")

    assert book.sheetnames == ["学校可直接修改", "需省级主管部门审核"]
    header = ["XH", "XM", "SFZH", "字段代码", "字段", "原值", "更正值", "说明", "状态"]
    school_sheet, province = book.worksheets
    for sheet in book.worksheets:
        assert_heading(sheet, "学信网学籍信息更正清单", "张老师（registrar1）", header)
    assert data_rows(school_sheet) == [
        ["2025100003", "韩梅梅", school.other.id_number, "BH", "班级", "计算2502", "计算2501", None, "学籍科已受理"]
    ]
    assert data_rows(province) == [
        [
            "2025100001",
            "王小明",
            recorded,
            "SFZH",
            "证件号码",
            recorded,
            FULL_ID,
            "户籍证明",
            "院系已审核，待学籍科受理",
        ],
        ["2025100001", "王小明", recorded, "XM", "姓名", "王小明", "王晓明", None, "已提交学信网更正"],
    ]
    # The 18-digit number comes back whole, as text, wherever it appears.
    assert_text(province["C5"], recorded)
    assert_text(province["F5"], recorded)
    assert_text(province["G5"], FULL_ID)
    assert_text(province["A5"], "2025100001")
    assert_text(school_sheet["C5"], school.other.id_number)


def test_chsi_correction_list_follows_the_schools_authority_setting(registrar_client, school, settings):
    settings.ROLL_PROVINCE_APPROVAL_FIELDS = ["XB"]  # this province approves only 性别
    add_flag(school.me, school.campaign, "XM", "王晓明", status=S.FORWARDED)
    add_flag(school.other, school.campaign, "XB", "女", status=S.FORWARDED)

    book = export_file(registrar_client, "chsi-corrections", campaign=school.campaign.pk)

    assert [row[3] for row in data_rows(book["学校可直接修改"])] == ["XM"]
    assert [row[3] for row in data_rows(book["需省级主管部门审核"])] == ["XB"]


# ---------------------------------------------------------------------------
# 4. Unverified students
# ---------------------------------------------------------------------------


def test_unverified_students_of_the_secretarys_departments(secretary_client, secretary, school):
    Checklist.objects.filter(campaign=school.campaign, student=school.other).update(state=Checklist.State.IN_PROGRESS)

    book = export_file(secretary_client, "unverified", campaign=school.campaign.pk)

    sheet = book["未完成核对"]
    assert_heading(
        sheet,
        "2025级新生学籍核对 未完成核对学生名单",
        secretary.username,
        ["院系", "班级", "学号", "姓名", "状态", "联系电话"],
    )
    assert data_rows(sheet) == [
        ["计算机学院", "计算2501", "2025100001", "王小明", "未开始", "13800000001"],
        ["计算机学院", "计算2502", "2025100003", "韩梅梅", "核对中", "13800000000"],
    ]
    assert [cell.data_type for cell in sheet[5]] == ["s"] * 6
    assert_text(sheet["C5"], "2025100001")


def test_registrar_exports_unverified_students_of_the_whole_school(registrar_client, school):
    book = export_file(registrar_client, "unverified", campaign=school.campaign.pk)

    # Department order depends on the database's collation; the rows do not.
    assert sorted(row[2] for row in data_rows(book.active)) == ["2025100001", "2025100003", "2025200001"]
    assert Export.objects.get().params["label"] == "2025级新生学籍核对 · 全校"


# ---------------------------------------------------------------------------
# 5. Data-quality findings
# ---------------------------------------------------------------------------


def test_findings_export_filters_by_department_and_kind(registrar_client, school, department):
    ImportFinding.objects.create(
        student=school.me,
        field_code="CSRQ",
        kind="birth_date_mismatch",
        message="身份证号码对应的出生日期为 2007-03-14",
    )
    ImportFinding.objects.create(
        student=school.other, field_code="MZ", kind="unknown_ethnicity", message="民族“穿青人”不在 GB/T 3304 名录中"
    )
    ImportFinding.objects.create(
        student=school.outsider, field_code="CSRQ", kind="birth_date_mismatch", message="另一个院系"
    )

    book = export_file(registrar_client, "findings", department=department.pk, finding_kind="birth_date_mismatch")

    sheet = book["数据问题"]
    assert_heading(
        sheet,
        "学籍数据问题清单 · 出生日期与身份证号码不符",
        "张老师（registrar1）",
        ["院系", "班级", "学号", "姓名", "字段", "类型", "说明"],
    )
    assert data_rows(sheet) == [
        [
            "计算机学院", "计算2501", "2025100001", "王小明", "出生日期", "出生日期与身份证号码不符",
            "身份证号码对应的出生日期为 2007-03-14",
        ]
    ]  # fmt: skip
    assert_text(sheet["C5"], "2025100001")
    export = Export.objects.get()
    assert export.row_count == 1
    assert export.params["label"] == "计算机学院 · 出生日期与身份证号码不符"

    whole = export_file(registrar_client, "findings")
    assert len(data_rows(whole.active)) == 3


# ---------------------------------------------------------------------------
# Formula injection
# ---------------------------------------------------------------------------


def test_typed_text_that_looks_like_a_formula_stays_text(registrar_client, school):
    students = [school.me, school.classmate, school.other, school.outsider]
    for student, typed in zip(students, INJECTIONS, strict=True):
        add_flag(student, school.campaign, "XM", typed, explanation=typed, status=S.FORWARDED)
    # Even the campaign's own name (typed by staff) is written as text.
    school.campaign.name = "=1+1"
    school.campaign.save()

    errors = export_file(registrar_client, "department-errors", campaign=school.campaign.pk).active
    corrections = export_file(registrar_client, "chsi-corrections")["需省级主管部门审核"]

    assert errors["A1"].value == "=1+1 学籍信息有误学生名单" and errors["A1"].data_type == "s"
    for sheet, claimed_header, note_header in ((errors, "正确的值", "说明"), (corrections, "更正值", "说明")):
        claimed, notes = column(sheet, claimed_header), column(sheet, note_header)
        assert sorted(cell.value for cell in claimed) == sorted(INJECTIONS)
        for cell in claimed + notes:
            assert cell.data_type == "s", (cell.coordinate, cell.value)
            # Excel's apostrophe prefix: editing the cell does not turn it into a formula either.
            assert cell.quotePrefix
        assert sorted(cell.value for cell in notes) == sorted(INJECTIONS)


def test_the_writer_protects_error_lookalikes_and_strips_illegal_characters(registrar_client, school):
    add_flag(school.me, school.campaign, "XM", "#N/A", explanation="bad\x07bell\x1b", status=S.FORWARDED)

    sheet = export_file(registrar_client, "chsi-corrections")["需省级主管部门审核"]

    assert sheet["G5"].value == "#N/A" and sheet["G5"].data_type == "s"
    assert sheet["H5"].value == "badbell"


def test_the_writers_shortcut_for_plain_text_never_skips_a_cell_that_needs_care():
    from verification.exports import writer

    tricky = [*writer.FORMULA_TRIGGERS, *writer.ERROR_CODES, *(chr(c) for c in range(32)), "a\x0bb", "ok\x1f"]
    for text in tricky + [f"{t}x" for t in tricky] + [f"x{t}" for t in tricky]:
        cleaned = writer.ILLEGAL_CHARACTERS.sub("", text)
        careful = cleaned != text or cleaned[:1] in writer.FORMULA_TRIGGERS or cleaned in writer.ERROR_CODES
        assert not careful or writer._NEEDS_CARE.match(text), repr(text)
    assert not writer._NEEDS_CARE.match("2025100001") and not writer._NEEDS_CARE.match("见户口簿 a-b=c")


# ---------------------------------------------------------------------------
# Scope: out of scope is 404 and leaves no log row
# ---------------------------------------------------------------------------


def scoped_requests(school, department):
    campaign = school.campaign.pk
    return {
        "class sheet of another department": ("class-sign-off", {"campaign": campaign, "class_group": school.first_class.pk}),
        "errors of another department": ("department-errors", {"campaign": campaign, "department": department.pk}),
        "unverified of another department": ("unverified", {"campaign": campaign, "department": department.pk}),
        "correction list": ("chsi-corrections", {}),
        "findings": ("findings", {}),
    }  # fmt: skip


@pytest.mark.parametrize(
    "case",
    [
        "class sheet of another department",
        "errors of another department",
        "unverified of another department",
        "correction list",
        "findings",
    ],
)
def test_another_departments_secretary_gets_404_and_no_log_row(client, other_secretary, school, department, case):
    kind, params = scoped_requests(school, department)[case]
    sign_in(client, other_secretary)

    response = request_export(client, kind, **params)

    assert response.status_code == 404
    assert "王小明" not in response.content.decode()
    assert not Export.objects.exists()
    assert not export_services.export_dir().exists() or not any(export_services.export_dir().iterdir())
    with pytest.raises(Http404):
        export_services.export_request(kind=kind, params=params, user=other_secretary, ip="10.0.0.1")
    assert not Export.objects.exists()


@pytest.mark.parametrize("kind", ["chsi-corrections", "findings"])
def test_the_correction_list_and_findings_are_for_registrar_staff_only(secretary_client, school, kind):
    assert request_export(secretary_client, kind).status_code == 404
    assert not Export.objects.exists()


def test_a_student_cannot_export_anything(client, school):
    sign_in(client, school.me.user)
    for kind in [exporter.key for exporter in registry.all_exporters()]:
        response = request_export(client, kind, campaign=school.campaign.pk, class_group=school.first_class.pk)
        assert response.status_code == 404
    assert not Export.objects.exists()


def test_a_secretary_exports_only_their_own_departments(secretary_client, secretary, school, other_department):
    # Asking for all departments gives the secretary's own, never the others'.
    book = export_file(secretary_client, "unverified", campaign=school.campaign.pk)
    assert "外院生" not in str(values(book.active))
    assert Export.objects.get().params["label"] == "2025级新生学籍核对 · 计算机学院"


def test_a_malformed_request_is_refused_without_a_log_row(secretary_client, school):
    missing_class = request_export(secretary_client, "class-sign-off", campaign=school.campaign.pk)
    unknown_kind = request_export(secretary_client, "everything", campaign=school.campaign.pk)
    missing_campaign = request_export(secretary_client, "unverified")

    for response in (missing_class, unknown_kind, missing_campaign):
        assert response.status_code == 302 and response["Location"] == reverse("exports:export_list")
    assert not Export.objects.exists()
    assert request_export(secretary_client, "unverified", campaign=999_999).status_code == 404
    assert not Export.objects.exists()


# ---------------------------------------------------------------------------
# The access log: every export is recorded
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "params", "expected_rows"),
    [
        ("class-sign-off", {"class_group": "first_class"}, 3),  # 2 students + 1 flag
        ("department-errors", {}, 2),
        ("chsi-corrections", {}, 1),
        ("unverified", {}, 1),  # only 韩梅梅 has not finished
        ("findings", {}, 1),
    ],
)
def test_every_export_is_recorded_with_its_row_count(registrar_client, registrar, school, kind, params, expected_rows):
    add_flag(school.me, school.campaign, "XM", "王晓明", status=S.FORWARDED)
    add_flag(school.outsider, school.campaign, "XB", "女")
    ImportFinding.objects.create(student=school.other, field_code="MZ", kind="unknown_ethnicity", message="穿青人")
    params = {key: getattr(school, value).pk for key, value in params.items()}
    if kind != "findings":
        params["campaign"] = school.campaign.pk

    with time_machine.travel(EXPORTED_AT, tick=False):
        response = request_export(registrar_client, kind, remote_addr="203.0.113.7", **params)
        data = download(response)

    export = Export.objects.get()
    assert (export.kind, export.requested_by, export.status) == (kind, registrar, Export.Status.DONE)
    assert export.requested_at == EXPORTED_AT
    assert export.ip_address == "203.0.113.7"
    assert export.row_count == expected_rows
    assert sum(len(data_rows(sheet)) for sheet in workbook(data).worksheets) == expected_rows
    assert export.expires_at == EXPORTED_AT + datetime.timedelta(hours=24)
    assert export.file_name.endswith(".xlsx")
    assert response["Content-Disposition"] == content_disposition(export.file_name)
    assert "filename*=UTF-8''" in response["Content-Disposition"]
    assert response["Content-Type"] == export_services.XLSX_CONTENT_TYPE
    assert "no-store" in response["Cache-Control"]
    assert response["X-Content-Type-Options"] == "nosniff"


def test_the_registrar_reads_the_export_log_filtered_by_user_and_kind(
    client, registrar, secretary, other_secretary, school
):
    sign_in(client, secretary)
    download(request_export(client, "unverified", campaign=school.campaign.pk, remote_addr="198.51.100.5"))
    sign_in(client, other_secretary)
    download(request_export(client, "department-errors", campaign=school.campaign.pk))

    assert client.get(reverse("exports:export_log")).status_code == 404  # secretaries do not see the log
    sign_in(client, registrar)
    everything = client.get(reverse("exports:export_log")).content.decode()
    by_secretary = client.get(reverse("exports:export_log"), {"user": secretary.pk}).content.decode()
    by_kind = client.get(reverse("exports:export_log"), {"kind": "department-errors"}).content.decode()

    assert secretary.username in everything and other_secretary.username in everything
    assert "198.51.100.5" in everything and "2025级新生学籍核对 · 计算机学院" in everything
    assert "未完成核对学生名单" in by_secretary and "学籍信息有误学生名单" not in by_secretary.split("<tbody>")[1]
    assert "学籍信息有误学生名单" in by_kind.split("<tbody>")[1] and "198.51.100.5" not in by_kind


def test_my_exports_lists_only_my_own(client, secretary, other_secretary, school):
    sign_in(client, other_secretary)
    download(request_export(client, "unverified", campaign=school.campaign.pk))
    sign_in(client, secretary)
    download(request_export(client, "unverified", campaign=school.campaign.pk))

    page = client.get(reverse("exports:export_list")).content.decode()

    mine, theirs = Export.objects.get(requested_by=secretary), Export.objects.get(requested_by=other_secretary)
    assert reverse("exports:export_download", args=[mine.pk]) in page
    assert reverse("exports:export_download", args=[theirs.pk]) not in page
    assert "外国语学院" not in page.split("<tbody>")[1]


# ---------------------------------------------------------------------------
# Large exports: a Celery task, a stored file, an expiry
# ---------------------------------------------------------------------------


def stored_files():
    folder = export_services.export_dir()
    return sorted(folder.iterdir()) if folder.exists() else []


def test_a_large_export_runs_as_a_task_and_only_the_requester_downloads_it(
    client, settings, secretary, django_capture_on_commit_callbacks, registrar, school, department
):
    settings.EXPORT_INLINE_MAX_ROWS = 2  # the secretary's list has 2 rows: too many to build inline
    colleague = UserFactory(username="colleague", role=User.Role.SECRETARY)
    colleague.departments.set([department])
    sign_in(client, secretary)

    with time_machine.travel(EXPORTED_AT, tick=False):
        with django_capture_on_commit_callbacks() as queued:
            response = request_export(client, "unverified", campaign=school.campaign.pk)
        export = Export.objects.get()
        # Queued, not built: the task is waiting for the commit.
        assert response.status_code == 302 and response["Location"] == reverse("exports:export_list")
        assert export.status == Export.Status.PENDING and stored_files() == []
        assert len(queued) == 1
        queued[0]()  # the commit: the eager task runs

    export.refresh_from_db()
    assert export.status == Export.Status.DONE and export.row_count == 2
    assert [path.name for path in stored_files()] == [export.storage_name]
    url = reverse("exports:export_download", args=[export.pk])

    with time_machine.travel(EXPORTED_AT + datetime.timedelta(hours=1), tick=False):
        listing = client.get(reverse("exports:export_list")).content.decode()
        assert url in listing and "已完成" in listing
        book = workbook(download(client.get(url)))
        assert [row[2] for row in data_rows(book.active)] == ["2025100001", "2025100003"]
        for other in (colleague, registrar):  # same department, or the whole school: still not theirs
            sign_in(client, other)
            assert client.get(url).status_code == 404
        sign_in(client, secretary)

    with time_machine.travel(EXPORTED_AT + datetime.timedelta(hours=24, minutes=1), tick=False):
        client.force_login(secretary)  # a staff session does not last a day
        assert client.get(url).status_code == 404  # expired, even before the purge ran
        assert url not in client.get(reverse("exports:export_list")).content.decode()
        assert tasks.exports_purge_expired.delay().get() == 1

    export.refresh_from_db()
    assert export.status == Export.Status.EXPIRED and export.storage_name == ""
    assert stored_files() == []
    assert export_services.exports_purge_expired() == 0


def test_a_large_export_with_the_broker_down_shows_as_failed_instead_of_a_server_error(
    client, settings, secretary, django_capture_on_commit_callbacks, school, broker_down
):
    """Redis refusing connections: the request still answers, and the export says to ask again later."""
    settings.EXPORT_INLINE_MAX_ROWS = 1
    sign_in(client, secretary)
    with django_capture_on_commit_callbacks(execute=True):
        response = request_export(client, "unverified", campaign=school.campaign.pk)

    assert response.status_code == 302
    export = Export.objects.get()
    assert export.status == Export.Status.FAILED and "后台任务队列暂时不可用" in export.error
    assert stored_files() == []


def test_building_twice_does_not_rebuild(client, settings, secretary, django_capture_on_commit_callbacks, school):
    settings.EXPORT_INLINE_MAX_ROWS = 1
    sign_in(client, secretary)
    with django_capture_on_commit_callbacks(execute=True):
        request_export(client, "unverified", campaign=school.campaign.pk)
    export = Export.objects.get()
    before = (export.storage_name, export.finished_at, export.expires_at)
    modified = export_services.path_of(export.storage_name).stat().st_mtime_ns

    tasks.export_build.delay(export.pk)
    export_services.export_build(export_id=export.pk)

    export.refresh_from_db()
    assert (export.storage_name, export.finished_at, export.expires_at) == before
    assert export_services.path_of(export.storage_name).stat().st_mtime_ns == modified
    assert len(stored_files()) == 1


def test_the_task_checks_the_scope_again(client, settings, secretary, django_capture_on_commit_callbacks, school):
    settings.EXPORT_INLINE_MAX_ROWS = 1
    sign_in(client, secretary)
    with django_capture_on_commit_callbacks() as queued:
        request_export(client, "unverified", campaign=school.campaign.pk)
    secretary.departments.clear()  # moved away before the worker got to it

    queued[0]()

    export = Export.objects.get()
    assert export.status == Export.Status.FAILED and export.row_count is None
    assert export.error == "导出范围已不在你的权限内"
    assert stored_files() == []


def test_a_download_checks_the_scope_again(secretary_client, secretary, school):
    download(request_export(secretary_client, "unverified", campaign=school.campaign.pk))
    export = Export.objects.get()
    url = reverse("exports:export_download", args=[export.pk])
    assert secretary_client.get(url).status_code == 200

    secretary.departments.clear()

    assert secretary_client.get(url).status_code == 404


def test_the_purge_gives_up_on_a_build_interrupted_long_ago(secretary):
    interrupted = Export.objects.create(
        kind="unverified",
        requested_by=secretary,
        status=Export.Status.RUNNING,
        requested_at=timezone.now() - datetime.timedelta(hours=25),
    )
    running = Export.objects.create(kind="unverified", requested_by=secretary, status=Export.Status.RUNNING)

    export_services.exports_purge_expired()

    interrupted.refresh_from_db()
    running.refresh_from_db()
    assert (interrupted.status, interrupted.error) == (Export.Status.FAILED, "生成中断")
    assert running.status == Export.Status.RUNNING


def test_a_failed_build_is_recorded_and_leaves_no_file(secretary_client, school, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("verification.exports.writer.write_xlsx", broken)

    response = request_export(secretary_client, "unverified", campaign=school.campaign.pk, follow=True)

    export = Export.objects.get()
    assert export.status == Export.Status.FAILED and export.error == "RuntimeError: disk full"
    assert "导出失败" in response.content.decode()
    assert stored_files() == []


# ---------------------------------------------------------------------------
# Permission matrix of the export pages
# ---------------------------------------------------------------------------

PERSONAS = ("anonymous", "student", "own_secretary", "other_secretary", "registrar")
LOGIN = "→ login"
EXPORT_MATRIX = {
    # url name: (method, {persona: expected})
    "exports:export_list": ("get", {"anonymous": LOGIN, "student": 404, "own_secretary": 200, "other_secretary": 200, "registrar": 200}),
    "exports:export_log": ("get", {"anonymous": LOGIN, "student": 404, "own_secretary": 404, "other_secretary": 404, "registrar": 200}),
    "exports:export_create": ("post", {"anonymous": LOGIN, "student": 404, "own_secretary": 200, "other_secretary": 404, "registrar": 200}),
    # An export the own department's secretary made: nobody else may fetch it, registrar staff included.
    "exports:export_download": ("get", {"anonymous": LOGIN, "student": 404, "own_secretary": 200, "other_secretary": 404, "registrar": 404}),
    # The photos to resubmit carry full ID numbers in their names: registrar staff only.
    "exports:photo_corrections_zip": ("post", {"anonymous": LOGIN, "student": 404, "own_secretary": 404, "other_secretary": 404, "registrar": 200}),
}  # fmt: skip


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("url_name", sorted(EXPORT_MATRIX))
def test_export_permission_matrix(client, school, secretary, other_secretary, registrar, department, url_name, persona):
    owner_export = export_services.export_request(
        kind="unverified", params={"campaign": school.campaign.pk}, user=secretary, ip=None
    )
    users = {
        "anonymous": None,
        "student": school.me.user,
        "own_secretary": secretary,
        "other_secretary": other_secretary,
        "registrar": registrar,
    }
    method, expected = EXPORT_MATRIX[url_name]
    path = reverse(url_name, args=[owner_export.pk] if url_name == "exports:export_download" else [])
    data = {"kind": "unverified", "campaign": school.campaign.pk, "department": department.pk}
    if users[persona]:
        sign_in(client, users[persona])

    response = getattr(client, method)(path, data if method == "post" else {})

    if expected[persona] == LOGIN:
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    else:
        assert response.status_code == expected[persona]
    if expected[persona] == 404:
        assert "王小明" not in response.content.decode()
    if response.streaming:
        b"".join(response.streaming_content)  # closes the file
    if method == "post" and expected[persona] != 200:
        assert Export.objects.count() == 1  # only the owner's


def test_every_export_url_is_in_the_matrix():
    names = set()
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and entry.namespace == "exports":
            names |= {f"exports:{pattern.name}" for pattern in entry.url_patterns}
    assert names == set(EXPORT_MATRIX)


def test_export_create_takes_post_only(secretary_client):
    assert secretary_client.get(reverse("exports:export_create")).status_code == 405


# ---------------------------------------------------------------------------
# Workbooks made for people: layout, print setup, file names
# ---------------------------------------------------------------------------


def test_the_class_sign_off_sheet_is_made_to_be_printed_and_signed(secretary_client, school):
    response = None
    with time_machine.travel(EXPORTED_AT, tick=False):
        response = request_export(
            secretary_client, "class-sign-off", campaign=school.campaign.pk, class_group=school.first_class.pk
        )
        book = workbook(download(response))
    sheet = book["核对登记表"]

    assert [cell.value for cell in sheet[4]][-1] == "签名"
    assert [row[-1] for row in data_rows(sheet)] == [None, None]  # left for the pen
    under = [value for row in values(sheet, start=5 + len(data_rows(sheet))) for value in row if value]
    assert any("辅导员签名：" in line and "班长签名：" in line for line in under)
    # A4, one page wide, the header row frozen on screen and repeated on every printed page.
    assert sheet.page_setup.paperSize in (9, "9")
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    # One page wide (1 is the default, left out of the file); 0 pages high: as many as it takes.
    assert int(sheet.page_setup.fitToWidth or 1) == 1 and not sheet.page_setup.fitToHeight
    assert sheet.freeze_panes == "A5"
    assert sheet.print_title_rows in ("$4:$4", "4:4")
    assert sheet.column_dimensions["B"].width >= 14 and sheet.column_dimensions["F"].width >= 14
    # The file name says what it holds, in Chinese, sent as RFC 5987 filename*.
    export = Export.objects.get()
    assert export.file_name == "计算2501-核对登记表-20250920.xlsx"
    assert "filename*=UTF-8''%E8%AE%A1%E7%AE%972501-" in response["Content-Disposition"]


@pytest.mark.parametrize(
    ("kind", "params", "file_name"),
    [
        ("unverified", {}, "计算机学院-未完成核对名单-20250920.xlsx"),
        ("department-errors", {}, "计算机学院-学籍信息有误学生名单-20250920.xlsx"),
    ],
)
def test_file_names_say_what_the_file_holds(secretary_client, school, kind, params, file_name):
    export_file(secretary_client, kind, campaign=school.campaign.pk, **params)
    assert Export.objects.get().file_name == file_name


def test_every_sheet_has_a_frozen_printable_header_and_typed_columns(registrar_client, school):
    add_flag(school.me, school.campaign, "XM", "王晓明", status=S.FORWARDED, evidence=1)
    book = export_file(registrar_client, "campaign-records", campaign=school.campaign.pk)

    for sheet in book.worksheets:
        assert sheet.freeze_panes == "A5", sheet.title
        assert sheet.print_title_rows in ("$4:$4", "4:4"), sheet.title
        assert sheet.page_setup.paperSize in (9, "9"), sheet.title
    flags = book["报错"]
    submitted = column(flags, "提交时间")[0]
    assert submitted.is_date and isinstance(submitted.value, datetime.datetime)
    assert column(flags, "证明材料数")[0].value == 1 and column(flags, "证明材料数")[0].data_type == "n"


# ---------------------------------------------------------------------------
# Stored files are encrypted at rest
# ---------------------------------------------------------------------------


def test_a_stored_export_is_encrypted_on_disk_and_decrypted_on_download(registrar_client, school):
    recorded = school.me.id_number
    add_flag(school.me, school.campaign, "SFZH", FULL_ID, status=S.FORWARDED)

    book = export_file(registrar_client, "chsi-corrections")

    export = Export.objects.get()
    stored = export_services.path_of(export.storage_name).read_bytes()
    assert not stored.startswith(b"PK")  # not a zip, so not an .xlsx
    for number in (FULL_ID, recorded):
        assert number.encode() not in stored
    with pytest.raises(Exception):  # noqa: B017 (whatever openpyxl raises: it is not a workbook)
        openpyxl.load_workbook(io.BytesIO(stored))
    # The download (and the copy built in the request) is the plain workbook, with the full number.
    assert FULL_ID in str(values(book["需省级主管部门审核"]))
    with time_machine.travel(EXPORTED_AT + datetime.timedelta(hours=1), tick=False):
        again = workbook(download(registrar_client.get(reverse("exports:export_download", args=[export.pk]))))
    assert FULL_ID in str(values(again["需省级主管部门审核"]))


def test_a_file_that_cannot_be_decrypted_is_not_served(registrar_client, school, settings):
    from cryptography.fernet import Fernet, InvalidToken

    add_flag(school.me, school.campaign, "SFZH", FULL_ID, status=S.FORWARDED)
    export_file(registrar_client, "chsi-corrections")
    export = Export.objects.get()
    settings.ID_NUMBER_KEYS = [Fernet.generate_key().decode()]  # a copy of the files without the keys

    with pytest.raises(InvalidToken), time_machine.travel(EXPORTED_AT, tick=False):
        registrar_client.get(reverse("exports:export_download", args=[export.pk]))


# ---------------------------------------------------------------------------
# The registry: one definition per export
# ---------------------------------------------------------------------------


def test_every_export_is_defined_once_in_the_registry():
    from students.permissions import CAPABILITIES

    keys = [exporter.key for exporter in registry.all_exporters()]
    assert sorted(keys) == sorted(
        ["class-sign-off", "department-errors", "class-errors", "chsi-corrections", "unverified", "findings", "access-log",
         "campaign-records", "source-differences", "photo-corrections"]
    )  # fmt: skip
    assert len(set(keys)) == len(keys)
    for exporter in registry.all_exporters():
        assert exporter.capability in CAPABILITIES, exporter.key
        assert str(exporter.label), exporter.key
    # Export.kind reads its choices (and the log its labels) from the registry.
    assert dict(Export._meta.get_field("kind").choices) == {e.key: e.label for e in registry.all_exporters()}
    assert Export(kind="findings").kind_label == "数据问题清单"


def test_the_registry_asks_the_exporters_capability_for_each_class_it_names(secretary_client, school, monkeypatch):
    from students import permissions

    # A capability that allows exporting in general but not for this class.
    monkeypatch.setitem(permissions.CAPABILITIES, "export.class_lists", lambda user, obj=None: obj is None)

    response = request_export(
        secretary_client, "class-sign-off", campaign=school.campaign.pk, class_group=school.first_class.pk
    )

    assert response.status_code == 404
    assert not Export.objects.exists()


def test_my_exports_offers_what_the_registry_allows(client, secretary, registrar, school):
    sign_in(client, secretary)
    page = client.get(reverse("exports:export_list")).content.decode()
    offered = set(re.findall(r'name="kind" value="([^"]+)"', page))
    assert offered == {"class-sign-off", "class-errors", "department-errors", "unverified"}

    sign_in(client, registrar)
    page = client.get(reverse("exports:export_list")).content.decode()
    assert set(re.findall(r'name="kind" value="([^"]+)"', page)) == set(
        exporter.key for exporter in registry.all_exporters()
    )


def test_a_new_column_keeps_the_identifier_columns_text(registrar_client, school):
    # Columns declare their type: 学号 is text wherever it sits, not column 3 by position.
    add_flag(school.me, school.campaign, "XH", "2025100009", status=S.FORWARDED)
    sheet = export_file(registrar_client, "chsi-corrections")["学校可直接修改"]
    for header in ("XH", "SFZH", "原值", "更正值"):
        for cell in column(sheet, header):
            assert cell.data_type == "s" and cell.number_format == "@", (header, cell.value)


# ---------------------------------------------------------------------------
# The page and its file: the same filter form and selector, the same rows
# ---------------------------------------------------------------------------


def button_data(page: str) -> dict:
    """What the page's export button posts (its hidden inputs), as the browser sends them."""
    form = re.search(r'<form[^>]*class="inline export-button"[^>]*>(.*?)</form>', page, re.S).group(1)
    data: dict = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form):
        if name != "csrfmiddlewaretoken":
            data.setdefault(name, []).append(value)
    return data


def page_table(page: str) -> list[list[str]]:
    body = page.split("<tbody>")[1].split("</tbody>")[0]
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def test_the_access_log_file_holds_the_rows_the_page_shows_dates_included(client, registrar, secretary, school):
    from students.models import AccessEvent

    def event(day, action, student):
        at = datetime.datetime(2025, 9, day, 9, 0, tzinfo=SHANGHAI)
        with time_machine.travel(at, tick=False):
            AccessEvent.objects.create(user=secretary, action=action, student=student, target=student.student_number)

    event(10, AccessEvent.Action.RECORD_VIEW, school.me)  # before the range
    event(12, AccessEvent.Action.RECORD_VIEW, school.classmate)
    event(14, AccessEvent.Action.EVIDENCE_DOWNLOAD, school.other)  # another action
    event(15, AccessEvent.Action.RECORD_VIEW, school.other)
    event(18, AccessEvent.Action.RECORD_VIEW, school.outsider)  # after the range
    sign_in(client, registrar)
    filters = {"since": "2025-09-11", "until": "2025-09-16", "action": AccessEvent.Action.RECORD_VIEW}

    page = client.get(reverse("students:access_log"), filters).content.decode()
    shown = [(row[0], row[3]) for row in page_table(page)]
    data = button_data(page)
    with time_machine.travel(EXPORTED_AT, tick=False):
        book = workbook(download(client.post(reverse("exports:export_create"), data)))

    assert shown == [("2025-09-15 09:00:00", "2025100003"), ("2025-09-12 09:00:00", "2025100002")]
    written = [(f"{row[0]:%Y-%m-%d %H:%M:%S}", row[4]) for row in data_rows(book.active)]
    assert written == shown
    assert book.active["A5"].is_date
    export = Export.objects.get()
    assert export.file_name == "访问日志-20250911至20250916-查看完整学籍记录-20250920.xlsx"
    assert "20250911至20250916" in export.params["label"]


def flags_on_the_page(page: str) -> dict[str, list[tuple]]:
    """The correction queue's groups: heading → (学号, field code) of each card, in order."""
    groups = {}
    for part in re.split(r"<h2>", page)[1:]:
        heading = re.sub(r"（\d+）$", "", part.split("</h2>")[0])
        ids = [int(pk) for pk in re.findall(r'name="flags" value="(\d+)"', part)]
        flags = Flag.objects.in_bulk(ids)
        groups[heading] = [(flags[pk].checklist.student.student_number, flags[pk].field_code) for pk in ids]
    return groups


def flags_in_the_file(book) -> dict[str, list[tuple]]:
    return {sheet.title: [(row[0], row[3]) for row in data_rows(sheet)] for sheet in book.worksheets}


@pytest.mark.parametrize("status", ["", S.ACCEPTED, S.CORRECTED])
def test_the_correction_list_holds_what_the_correction_queue_shows(registrar_client, school, status):
    add_flag(school.me, school.campaign, "XM", "王晓明", status=S.FORWARDED)
    add_flag(school.me, school.campaign, "BH", "计算2502", status=S.ACCEPTED)
    add_flag(school.other, school.campaign, "XB", "女", status=S.ACCEPTED)
    add_flag(school.classmate, school.campaign, "MZ", "回族", status=S.CORRECTED)
    add_flag(school.outsider, school.campaign, "XM", "外院学生", status=S.SUBMITTED)  # not with the registrar

    page = registrar_client.get(reverse("workspace:correction_queue"), {"status": status}).content.decode()
    with time_machine.travel(EXPORTED_AT, tick=False):
        book = workbook(download(registrar_client.post(reverse("exports:export_create"), button_data(page))))

    on_page, in_file = flags_on_the_page(page), flags_in_the_file(book)
    # The same groups under the same labels, the same flags in the same order (empty sheets aside).
    assert on_page == {title: rows for title, rows in in_file.items() if rows}
    expected = {
        "": {("2025100001", "XM"), ("2025100001", "BH"), ("2025100003", "XB")},
        S.ACCEPTED: {("2025100001", "BH"), ("2025100003", "XB")},
        S.CORRECTED: {("2025100002", "MZ")},
    }[status]
    assert {flag for rows in on_page.values() for flag in rows} == expected


def test_corrected_flags_can_be_found_in_the_correction_queue(registrar_client, school):
    add_flag(school.classmate, school.campaign, "MZ", "回族", status=S.CORRECTED)

    pending = registrar_client.get(reverse("workspace:correction_queue")).content.decode()
    corrected = registrar_client.get(reverse("workspace:correction_queue"), {"status": S.CORRECTED}).content.decode()

    assert '<option value="corrected"' in pending and "学信网已更正" in pending
    assert "2025100002" not in pending
    assert "2025100002" in corrected and "学信网已更正" in corrected


def test_the_correction_queue_filters_by_campaign_like_its_file(registrar_client, school, registrar):
    from verification.tests.factories import CampaignFactory

    add_flag(school.me, school.campaign, "XM", "王晓明", status=S.FORWARDED)
    other = CampaignFactory(name="2024级复核", cohorts=[school.me.cohort], by=registrar)
    page = registrar_client.get(reverse("workspace:correction_queue"), {"campaign": other.pk}).content.decode()
    assert "2025100001" not in page
    data = button_data(page)
    assert data["campaign"] == [str(other.pk)]
    book = workbook(download(registrar_client.post(reverse("exports:export_create"), data)))
    assert flags_in_the_file(book) == {"学校可直接修改": [], "需省级主管部门审核": []}


def test_a_classes_unverified_list_and_its_file_hold_the_same_students(secretary_client, school):
    Checklist.objects.filter(campaign=school.campaign, student=school.other).update(state=Checklist.State.IN_PROGRESS)
    url = reverse("workspace:class_detail", args=[school.first_class.pk])

    page = secretary_client.get(url, {"campaign": school.campaign.pk, "filter": "not_done"}).content.decode()
    shown = [row[1] for row in page_table(page)]
    data = button_data(page.split("导出核对登记表")[1])  # the second button: this class's unverified students
    assert data["kind"] == ["unverified"]
    with time_machine.travel(EXPORTED_AT, tick=False):
        book = workbook(download(secretary_client.post(reverse("exports:export_create"), data)))

    assert shown == ["2025100001"]  # 李雷 has confirmed; 韩梅梅 is in another class
    assert [row[2] for row in data_rows(book.active)] == shown
    export = Export.objects.get()
    assert export.file_name == "计算2501-未完成核对名单-20250920.xlsx"
    assert export.params["label"] == "2025级新生学籍核对 · 计算机学院 · 计算2501"


def test_the_findings_file_holds_what_the_data_quality_page_shows(registrar_client, school, department):
    ImportFinding.objects.create(student=school.me, field_code="CSRQ", kind="birth_date_mismatch", message="甲")
    ImportFinding.objects.create(student=school.other, field_code="MZ", kind="unknown_ethnicity", message="乙")
    ImportFinding.objects.create(student=school.classmate, field_code="CSRQ", kind="birth_date_mismatch", message="丙")
    ImportFinding.objects.create(student=school.outsider, field_code="CSRQ", kind="birth_date_mismatch", message="丁")

    filters = {"department": department.pk, "finding_kind": "birth_date_mismatch"}
    page = registrar_client.get(reverse("workspace:findings"), filters).content.decode()
    shown = [(row[2], row[6]) for row in page_table(page)]
    book = workbook(download(registrar_client.post(reverse("exports:export_create"), button_data(page))))

    assert shown == [("2025100001", "甲"), ("2025100002", "丙")]
    assert [(row[2], row[6]) for row in data_rows(book.active)] == shown


def test_rows_fetched_ahead_come_in_order_and_stop_cleanly_when_the_writer_gives_up(school):
    """The rows of an export are fetched ahead by a thread on PostgreSQL (docs/performance.md §4): every piece in
    turn, in order, and an export that fails half-way (a full disk, say) leaves no thread on the connection and
    the connection usable for what follows (marking the export failed)."""
    numbers = list(Student.objects.order_by("student_number").values_list("student_number", flat=True))
    pieces = [Student.objects.order_by("student_number").values_list("student_number", flat=True)] * 2
    threads = threading.active_count()

    assert [n for chunk in export_base.fetched_chunks(pieces, chunk_size=1) for n in chunk] == numbers * 2

    chunks = export_base.fetched_chunks(pieces, chunk_size=1)
    assert next(chunks) == numbers[:1]
    chunks.close()  # what the writer's failure does to the generator
    assert threading.active_count() == threads
    assert Student.objects.filter(student_number__in=numbers).count() == len(numbers) == 4
