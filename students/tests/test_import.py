"""Roster import: files as registrars really send them, all rows or none, findings kept.

Every roster is built here from literal rows (students/tests/rosters.py);
rows are numbered as the spreadsheet shows them, header = row 1.
"""

import datetime
import io
import json
import zipfile

import pytest
from django.core.management import CommandError, call_command

from students.fields import BY_CODE, ROLL_FIELDS
from students.idnumbers import check_digit
from students.models import ClassGroup, Cohort, Department, ImportFinding, Major, RosterImport, Student
from students.services import roster_import
from students.tests.factories import StudentFactory, UserFactory
from students.tests.rosters import as_table, base_rows, write_csv, write_xlsx

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2025, 9, 15)
# Roster columns: the record's fields (photos are checked on the card but never a roster column).
ROSTER_CODES = [f.code for f in ROLL_FIELDS]
CODES = ROSTER_CODES + ["手机号码"]
# The same columns as a registrar's Chinese export labels them.
LABELS = {code: str(BY_CODE[code].label) for code in ROSTER_CODES} | {
    "SFZH": "身份证号",
    "BH": "班号",
    "手机号码": "手机号码",
}
# A short header whose column letters the tests can spell out: A B C D E.
SHORT = ["XH", "XM", "SFZH", "XSH", "CSRQ"]


def roster(tmp_path, rows, headers=None, *, name="roster.xlsx", **options):
    """Write dict rows (keyed by CHSI code) under ``headers`` as .xlsx or .csv."""
    header, data = as_table(rows, headers or CODES)
    path = tmp_path / name
    if path.suffix == ".csv":
        return write_csv(path, header, data, **options)
    return write_xlsx(path, header, data, **options)


@pytest.fixture(autouse=True)
def changes_hook(monkeypatch):
    """Stands in for the verification app, which reopens fields a roster changed."""
    from verification import services as verification_services

    calls = []
    monkeypatch.setattr(
        verification_services, "roster_changes_apply", lambda **kwargs: calls.append(kwargs), raising=False
    )
    return calls


def run(path, **options):
    options.setdefault("today", TODAY)
    return roster_import(path=path, **options)


def codes_by_row(report):
    found = {}
    for warning in report.warnings:
        found.setdefault(warning["row"], set()).add(warning["code"])
    return found


def assert_nothing_written(report, students_before=0):
    assert report.errors
    assert report.created == report.updated == 0
    assert Student.objects.count() == students_before
    assert not ImportFinding.objects.exists()
    run_record = RosterImport.objects.get(pk=report.roster_import_id)
    assert run_record.status == RosterImport.Status.REJECTED
    assert run_record.error_count == len(report.errors)


def stored(rows):
    """(学号, 姓名, 证件号码, 院系, 班级, 出生日期) per row, as the file meant them."""
    return sorted(
        (r["XH"], r["XM"], r["SFZH"], r["XSH"], r["BH"], datetime.datetime.strptime(r["CSRQ"], "%Y%m%d").date())
        for r in rows
    )


def stored_students():
    return sorted(
        Student.objects.values_list(
            "student_number", "name", "id_number", "department__name", "class_group__name", "birth_date"
        )
    )


# --- header styles -------------------------------------------------------------------------


def test_chsi_code_headers(tmp_path):
    rows = base_rows(3)
    report = run(roster(tmp_path, rows))
    assert (report.created, report.updated, report.unchanged, report.errors) == (3, 0, 0, [])
    assert stored_students() == stored(rows)


def test_chinese_label_headers(tmp_path):
    rows = base_rows(3)
    header, data = as_table(rows, CODES)
    path = write_xlsx(tmp_path / "名单.xlsx", [LABELS[code] for code in header], data)
    assert "系（所、函授站）" in LABELS.values() and "身份证号" in LABELS.values()

    report = run(path)

    assert (report.created, report.errors, report.ignored_columns) == (3, [], [])
    assert stored_students() == stored(rows)
    assert Student.objects.get(student_number=rows[0]["XH"]).phone == rows[0]["手机号码"]


def test_mixed_headers_in_any_order(tmp_path):
    rows = base_rows(3)
    order = list(reversed(CODES))
    header, data = as_table(rows, order)
    mixed = [LABELS[code] if i % 2 else code for i, code in enumerate(header)]
    report = run(write_xlsx(tmp_path / "roster.xlsx", mixed, data))
    assert (report.created, report.errors) == (3, [])
    assert stored_students() == stored(rows)
    student = Student.objects.get(student_number=rows[1]["XH"])
    assert (student.exam_number, student.major_code, student.ethnicity) == (rows[1]["KSH"], "080901", rows[1]["MZ"])


def test_title_row_above_the_header(tmp_path):
    rows = base_rows(3)
    rows[2]["CSRQ"] = "2008-13-01"
    header, data = as_table(rows)
    path = write_xlsx(tmp_path / "roster.xlsx", ["示范大学2025级新生学籍名单"], [header, *data])

    report = run(path)

    # Title = row 1, header = row 2, so the third student sits on row 5.
    assert [(e["row"], e["field"]) for e in report.errors] == [(5, "CSRQ")]


def test_title_row_above_the_header_in_csv(tmp_path):
    rows = base_rows(2)
    header, data = as_table(rows)
    path = write_csv(tmp_path / "roster.csv", ["2025级新生学籍名单"], [header, *data])
    report = run(path)
    assert (report.created, report.errors) == (2, [])


def test_data_starting_in_column_c_keeps_rows_and_columns_exact(tmp_path):
    rows = base_rows(3)
    rows[1]["CSRQ"] = "明年"
    header, data = as_table(rows, SHORT)
    # Title in C1, row 2 empty, header on row 3 from column C: CSRQ is column G.
    path = write_xlsx(tmp_path / "roster.xlsx", ["学籍名单"], [[], header, *data], start_col=2)

    report = run(path)

    assert len(report.errors) == 1
    error = report.errors[0]
    assert (error["row"], error["field"]) == (5, "CSRQ")
    assert error["message"].startswith("G 列")
    assert "明年" in error["message"]


def test_header_starting_below_empty_rows_and_right_of_empty_columns(tmp_path):
    rows = base_rows(2)
    rows[1]["SFZH"] = 440308199901101512  # a number cell, reported by its column letter
    header, data = as_table(rows, SHORT)
    path = write_xlsx(tmp_path / "roster.xlsx", header, data, start_row=3, start_col=2)

    report = run(path)

    assert [(e["row"], e["field"]) for e in report.errors] == [(6, "SFZH")]
    assert "E 列" in report.errors[0]["message"]


def test_extra_columns_are_ignored_and_named(tmp_path):
    rows = base_rows(2)
    for number, row in enumerate(rows, start=1):
        row["序号"] = str(number)
        row["备注"] = "专升本"
    report = run(roster(tmp_path, rows, ["序号", *CODES, "备注"]))
    assert report.ignored_columns == ["序号", "备注"]
    assert report.created == 2
    assert RosterImport.objects.get().report["ignored_columns"] == ["序号", "备注"]


def test_blank_rows_are_skipped_and_row_numbers_stay_as_shown(tmp_path):
    rows = base_rows(3)
    rows[2]["XM"] = ""
    header, data = as_table(rows)
    # Rows 3 and 5 are blank; the third student is on row 6.
    path = write_xlsx(tmp_path / "roster.xlsx", header, [data[0], [None] * len(header), data[1], [], data[2]])

    report = run(path)

    assert report.errors == [{"row": 6, "field": "XM", "message": "必填项为空"}]


def test_blank_rows_in_csv(tmp_path):
    rows = base_rows(3)
    header, data = as_table(rows)
    path = write_csv(tmp_path / "roster.csv", header, [data[0], [], [""] * len(header), data[1], data[2]])
    report = run(path)
    assert (report.created, report.errors) == (3, [])
    assert report.rows == 3


# --- encodings -----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_encodings(tmp_path, encoding):
    rows = base_rows(3)
    rows[0]["XM"] = "欧阳娜"
    header, data = as_table(rows, CODES)
    labels = [LABELS[code] for code in header]
    report = run(write_csv(tmp_path / "roster.csv", labels, data, encoding=encoding))
    assert (report.created, report.errors, report.ignored_columns) == (3, [], [])
    assert stored_students() == stored(rows)
    assert Student.objects.get(student_number=rows[0]["XH"]).roll_status == "在籍（注册学籍）"


def test_gb18030_name_outside_gbk(tmp_path):
    rows = base_rows(1)
    rows[0]["XM"] = "刘䶮"  # CJK Extension A: GB18030 has it, GBK does not
    report = run(roster(tmp_path, rows, name="roster.csv", encoding="gb18030"))
    assert report.errors == []
    assert Student.objects.get().name == "刘䶮"


def test_full_width_and_spaces_are_normalised_before_storing(tmp_path):
    rows = base_rows(1)
    rows[0].update(
        XH=" ２０２５００００１ ",
        SFZH="１１０１０５１９４９１２３１００２ｘ",
        CSRQ="1949年12月31日",
        XB="女",
        XZ="4 年",
        MZ="毛难族",
        XM="张 三",
    )
    report = run(roster(tmp_path, rows))
    assert report.errors == [] and report.warnings == []
    student = Student.objects.get()
    assert (student.student_number, student.id_number, student.name) == ("202500001", "11010519491231002X", "张三")
    assert (student.birth_date, student.duration, student.ethnicity) == (datetime.date(1949, 12, 31), "4", "毛南族")


def test_excel_date_cells_and_number_cells(tmp_path):
    rows = base_rows(1)
    born = datetime.datetime.strptime(rows[0]["CSRQ"], "%Y%m%d").date()
    rows[0].update(CSRQ=born, RXRQ=datetime.date(2025, 9, 6), YJBYRQ=47299, XZ=4, LQNF=2025, 手机号码=13800000000)
    report = run(roster(tmp_path, rows))
    assert (report.errors, report.warnings) == ([], [])
    student = Student.objects.get()
    assert (student.birth_date, student.admission_date) == (born, datetime.date(2025, 9, 6))
    assert student.expected_graduation_date == datetime.date(2029, 6, 30)  # Excel serial 47299
    assert (student.duration, student.admission_year, student.phone) == ("4", "2025", "13800000000")


# --- files that stop the import ------------------------------------------------------------


@pytest.mark.parametrize("code", ["XH", "XM", "SFZH"])
@pytest.mark.parametrize("empty", ["", "   "])
def test_required_value_missing(tmp_path, code, empty):
    rows = base_rows(3)
    rows[1][code] = empty
    report = run(roster(tmp_path, rows))
    assert report.errors == [{"row": 3, "field": code, "message": "必填项为空"}]
    assert_nothing_written(report)


def test_student_number_twice_in_the_file(tmp_path):
    rows = base_rows(3)
    rows[2]["XH"] = "  " + rows[0]["XH"].replace("2", "２")  # the same 学号, typed differently
    report = run(roster(tmp_path, rows))
    assert [(e["row"], e["field"]) for e in report.errors] == [(4, "XH")]
    assert "第 2 行" in report.errors[0]["message"]
    assert rows[0]["XH"] in report.errors[0]["message"]
    assert_nothing_written(report)


@pytest.mark.parametrize(("code", "letter"), [("XH", "A"), ("KSH", "F")])
def test_an_identifier_in_a_number_cell_is_read_as_its_digits_with_a_warning(tmp_path, code, letter):
    rows = base_rows(3)
    rows[1][code] = int(rows[1][code])
    report = run(roster(tmp_path, rows, [*SHORT, "KSH"]))
    assert report.errors == []
    assert report.created == 3
    warning = next(w for w in report.warnings if w["code"] == "number_cell")
    assert (warning["row"], warning["field"]) == (3, code)
    assert "开头的 0" in warning["message"]
    key = {"XH": "student_number", "KSH": "exam_number"}[code]
    assert Student.objects.filter(**{key: str(rows[1][code])}).exists()


def test_an_id_number_in_a_number_cell_is_refused_because_excel_lost_digits(tmp_path):
    rows = base_rows(3)
    rows[1]["SFZH"] = 440308199901101512
    report = run(roster(tmp_path, rows, [*SHORT, "KSH"]))
    assert [(e["row"], e["field"]) for e in report.errors] == [(3, "SFZH")]
    assert "C 列" in report.errors[0]["message"]
    assert "15 位有效数字" in report.errors[0]["message"]
    assert "文本" in report.errors[0]["message"]
    assert_nothing_written(report)


def test_a_number_cell_shorter_than_its_column_lost_a_leading_zero(tmp_path):
    rows = base_rows(3)
    for row in rows:
        row["XH"] = "0" + row["XH"][1:]
    rows[1]["XH"] = int(rows[1]["XH"])  # Excel dropped the 0
    report = run(roster(tmp_path, rows, [*SHORT, "KSH"]))
    assert [(e["row"], e["field"]) for e in report.errors] == [(3, "XH")]
    assert "开头的 0" in report.errors[0]["message"]
    assert "A 列" in report.errors[0]["message"]
    assert_nothing_written(report)


@pytest.mark.parametrize(("code", "value"), [("CSRQ", "2006-02-30"), ("RXRQ", "九月一日"), ("YJBYRQ", "2029/6")])
def test_unreadable_date(tmp_path, code, value):
    rows = base_rows(3)
    rows[2][code] = value
    report = run(roster(tmp_path, rows, name="roster.csv"))
    assert [(e["row"], e["field"]) for e in report.errors] == [(4, code)]
    assert value in report.errors[0]["message"]
    assert "无法识别的日期" in report.errors[0]["message"]
    assert_nothing_written(report)


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


@pytest.mark.parametrize("content", [PNG, PDF], ids=["png", "pdf"])
def test_not_a_spreadsheet(tmp_path, content):
    path = tmp_path / "学籍名单.xlsx"
    path.write_bytes(content)
    report = run(path)
    assert len(report.errors) == 1
    assert "不是表格" in report.errors[0]["message"]
    assert_nothing_written(report)


def test_zip_that_is_not_a_workbook(tmp_path):
    path = tmp_path / "roster.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<document/>")
    report = run(path)
    assert "不是 Excel 工作簿" in report.errors[0]["message"]
    assert_nothing_written(report)


def test_truncated_xlsx(tmp_path):
    path = roster(tmp_path, base_rows(3))
    path.write_bytes(path.read_bytes()[:300])
    report = run(path)
    assert "已损坏" in report.errors[0]["message"]
    assert_nothing_written(report)


def test_no_header_row(tmp_path):
    header, data = as_table(base_rows(3))
    path = write_csv(tmp_path / "roster.csv", data[0], data[1:])  # the header row was deleted
    report = run(path)
    assert [(e["row"], e["field"]) for e in report.errors] == [(1, None)]
    assert "未找到表头行" in report.errors[0]["message"]
    assert_nothing_written(report)


@pytest.mark.parametrize(("dropped", "code"), [(["SFZH"], "SFZH"), (["XSH", "FY"], "XSH")])
def test_required_column_missing(tmp_path, dropped, code):
    headers = [c for c in CODES if c not in dropped]
    report = run(roster(tmp_path, base_rows(3), headers))
    assert [(e["row"], e["field"]) for e in report.errors] == [(1, code)]
    assert code in report.errors[0]["message"]
    assert_nothing_written(report)


def test_required_column_missing_below_a_title_row(tmp_path):
    header, data = as_table(base_rows(2), [c for c in CODES if c != "SFZH"])
    report = run(write_xlsx(tmp_path / "roster.xlsx", ["2025级名单"], [header, *data]))
    assert [(e["row"], e["field"]) for e in report.errors] == [(2, "SFZH")]
    assert_nothing_written(report)


def test_student_number_column_missing(tmp_path):
    report = run(roster(tmp_path, base_rows(3), [c for c in CODES if c != "XH"]))
    assert len(report.errors) == 1
    assert report.errors[0]["row"] == 1
    assert "学号" in report.errors[0]["message"]
    assert_nothing_written(report)


def test_department_may_come_from_branch_alone(tmp_path):
    rows = base_rows(2)
    for row in rows:
        row["FY"] = "继续教育学院"
    report = run(roster(tmp_path, rows, [c for c in CODES if c != "XSH"]))
    assert report.errors == []
    assert set(Student.objects.values_list("department__name", flat=True)) == {"继续教育学院"}


def test_password_protected_workbook(tmp_path):
    path = tmp_path / "roster.xlsx"
    # Excel saves an encrypted .xlsx inside an OLE2 compound file.
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504)
    report = run(path)
    assert len(report.errors) == 1
    assert "密码" in report.errors[0]["message"]
    assert_nothing_written(report)


def test_zip_bomb(tmp_path):
    path = tmp_path / "roster.xlsx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as member:
            block = b" " * (1024 * 1024)
            for _ in range(20):
                member.write(block)
    assert path.stat().st_size < 200_000
    report = run(path)
    assert len(report.errors) == 1
    assert "压缩炸弹" in report.errors[0]["message"]
    assert_nothing_written(report)


@pytest.mark.parametrize("name", ["roster.xlsx", "roster.csv"])
def test_more_rows_than_the_limit(tmp_path, settings, name):
    settings.ROSTER_MAX_ROWS = 5
    report = run(roster(tmp_path, base_rows(6), name=name))
    assert len(report.errors) == 1
    assert "超过 5 行" in report.errors[0]["message"]
    assert_nothing_written(report)


@pytest.mark.parametrize("name", ["roster.xlsx", "roster.csv"])
def test_exactly_the_row_limit_is_imported(tmp_path, settings, name):
    settings.ROSTER_MAX_ROWS = 5
    report = run(roster(tmp_path, base_rows(5), name=name))
    assert (report.errors, report.created) == ([], 5)


def test_blank_csv_rows_do_not_count_towards_the_limit(tmp_path, settings):
    settings.ROSTER_MAX_ROWS = 5
    header, data = as_table(base_rows(5))
    report = run(write_csv(tmp_path / "roster.csv", header, [*data[:2], [], [], *data[2:]]))
    assert (report.errors, report.created) == ([], 5)


@pytest.mark.parametrize(("code", "length", "limit"), [("XM", 101, 100), ("KSH", 33, 32), ("XSH", 101, 100)])
def test_value_longer_than_the_column(tmp_path, code, length, limit):
    rows = base_rows(2)
    rows[1][code] = "学" * length if code != "KSH" else "1" * length
    report = run(roster(tmp_path, rows))
    assert [(e["row"], e["field"]) for e in report.errors] == [(3, code)]
    assert f"超过 {limit} 个字符" in report.errors[0]["message"]
    assert_nothing_written(report)


def test_long_name_within_the_column_is_kept_whole(tmp_path):
    rows = base_rows(1)
    rows[0]["XM"] = "阿卜杜热合曼·买买提艾力·库尔班江·吐尔逊托合提·阿不都克热木"
    report = run(roster(tmp_path, rows))
    assert report.errors == []
    assert Student.objects.get().name == rows[0]["XM"]


def test_one_good_row_and_one_bad_row_write_nothing(tmp_path):
    rows = base_rows(2)
    rows[1]["SFZH"] = ""
    report = run(roster(tmp_path, rows))
    assert [(e["row"], e["field"]) for e in report.errors] == [(3, "SFZH")]
    assert_nothing_written(report)
    assert not Department.objects.exists()
    assert not Major.objects.exists()


def test_errors_leave_existing_students_untouched(tmp_path):
    rows = base_rows(2)
    run(roster(tmp_path, rows))
    rows[0]["XM"] = "改名"
    rows[1]["CSRQ"] = "20080231"
    report = run(roster(tmp_path, rows, name="second.xlsx"))
    assert_nothing_written(report, students_before=2)
    assert Student.objects.get(student_number=rows[0]["XH"]).name != "改名"
    assert Student.objects.get(student_number=rows[0]["XH"]).version == 1


def test_every_bad_row_is_reported_at_once(tmp_path):
    rows = base_rows(4)
    rows[0]["XM"] = ""
    rows[2]["CSRQ"] = "bad"
    rows[3]["XH"] = rows[1]["XH"]
    report = run(roster(tmp_path, rows))
    assert sorted((e["row"], e["field"]) for e in report.errors) == [(2, "XM"), (4, "CSRQ"), (5, "XH")]


# --- findings: imported, stored and reported ------------------------------------------------

ID_MALE_1999 = "440308199901101512"


def import_with(tmp_path, **changes):
    """Three students; the second (row 3) carries ``changes``."""
    rows = base_rows(3)
    rows[1].update(changes)
    report = run(roster(tmp_path, rows))
    assert report.errors == []
    assert report.created == 3
    return report, Student.objects.get(student_number=rows[1]["XH"])


def findings_of(student):
    return sorted(student.findings.values_list("field_code", "kind"))


FINDING_CASES = {
    "id_checksum": (dict(SFZH="440308199901101510", CSRQ="19990110", XB="男"), "SFZH"),
    "gender_mismatch": (dict(SFZH=ID_MALE_1999, CSRQ="19990110", XB="女"), "XB"),
    "id_15_digit": (dict(SFZH="610104620927690", CSRQ="19620927", XB="女"), "SFZH"),
    "unknown_ethnicity": (dict(MZ="穿青人"), "MZ"),
    "unusual_duration": (dict(CC="本科", XZ="3", YJBYRQ="20280630"), "XZ"),
    "graduation_date_off": (dict(XZ="4", RXRQ="20250901", YJBYRQ="20310630"), "YJBYRQ"),
    "birth_date_future": (dict(ZJLX="护照", SFZH="E12345678", CSRQ="20260101"), "CSRQ"),
    "roll_status": (dict(XJZT="在籍（休学）"), "XJZT"),
}


@pytest.mark.parametrize("kind", FINDING_CASES)
def test_finding_is_stored_and_reported_without_stopping_the_import(tmp_path, kind):
    changes, field = FINDING_CASES[kind]
    report, student = import_with(tmp_path, **changes)
    assert codes_by_row(report) == {3: {kind}}
    assert [w["field"] for w in report.warnings] == [field]
    assert findings_of(student) == [(field, kind)]
    finding = student.findings.get()
    assert finding.message == report.warnings[0]["message"]
    assert finding.roster_import_id == report.roster_import_id
    assert RosterImport.objects.get().warning_count == 1


def test_birth_date_mismatch_names_both_dates(tmp_path):
    body = "11010520060314251"
    report, student = import_with(tmp_path, SFZH=body + check_digit(body), CSRQ="20060315", XB="男")
    assert codes_by_row(report) == {3: {"birth_date_mismatch"}}
    message = report.warnings[0]["message"]
    assert "2006-03-14" in message and "2006-03-15" in message
    assert report.warnings[0]["field"] == "CSRQ"
    assert findings_of(student) == [("CSRQ", "birth_date_mismatch")]
    # The record keeps what the roster says: the student settles which is right.
    assert student.birth_date == datetime.date(2006, 3, 15)


def test_checksum_finding_tells_the_right_digit(tmp_path):
    report, _student = import_with(tmp_path, SFZH="440308199901101510", CSRQ="19990110", XB="男")
    assert "应为 2" in report.warnings[0]["message"]


def test_fifteen_digit_finding_asks_for_the_18_digit_number_without_quoting_it(tmp_path):
    report, student = import_with(tmp_path, SFZH="610104620927690", CSRQ="19620927", XB="女")
    assert [w["code"] for w in report.warnings] == ["id_15_digit"]
    assert "18 位" in report.warnings[0]["message"]
    # Findings show up in lists and exports: they never quote an ID number.
    assert "610104" not in report.warnings[0]["message"]
    assert student.id_number == "610104620927690"


def test_duplicate_id_within_the_file(tmp_path):
    rows = base_rows(3)
    for key in ("SFZH", "CSRQ", "XB"):
        rows[2][key] = rows[0][key]
    report = run(roster(tmp_path, rows))
    assert report.created == 3
    assert codes_by_row(report) == {2: {"duplicate_id"}, 4: {"duplicate_id"}}
    messages = {w["row"]: w["message"] for w in report.warnings}
    assert "另外 1 名学生" in messages[2] and "另外 1 名学生" in messages[4]
    assert ImportFinding.objects.filter(kind="duplicate_id", field_code="SFZH").count() == 2


def test_duplicate_id_with_a_student_not_in_the_file(tmp_path):
    other = StudentFactory(student_number="2019000001", id_number=ID_MALE_1999)
    report, student = import_with(tmp_path, SFZH=ID_MALE_1999, CSRQ="19990110", XB="男")
    assert codes_by_row(report) == {3: {"duplicate_id"}}
    # The other student may be in another department: the message does not name them.
    assert "另外 1 名学生" in report.warnings[0]["message"]
    assert "2019000001" not in report.warnings[0]["message"]
    assert findings_of(student) == [("SFZH", "duplicate_id")]
    assert not other.findings.exists()


def test_legacy_ethnic_name_is_normalised_without_finding(tmp_path):
    report, student = import_with(tmp_path, MZ="崩龙族")
    assert report.warnings == []
    assert student.ethnicity == "德昂族"


@pytest.mark.parametrize(
    ("id_type", "number", "born", "region"),
    [
        ("", "810000199408230021", "19940823", "香港"),
        ("港澳居民居住证", "810000199408230021", "19940823", "香港"),
        ("", "830000199201300022", "19920130", "台湾"),
    ],
)
def test_residence_permit_holders_validate_like_resident_ids(tmp_path, id_type, number, born, region):
    report, student = import_with(tmp_path, ZJLX=id_type, SFZH=number, CSRQ=born, XB="女", MZ=region)
    # A home region in 民族 is normal for 港澳台 students: no unknown_ethnicity.
    assert report.warnings == []
    assert student.ethnicity == region


def test_residence_permit_with_wrong_date_is_caught(tmp_path):
    report, _student = import_with(tmp_path, SFZH="810000199408230021", CSRQ="19940824", XB="男", MZ="香港")
    assert codes_by_row(report) == {3: {"birth_date_mismatch", "gender_mismatch"}}


def test_residence_permit_with_wrong_check_digit(tmp_path):
    report, _student = import_with(tmp_path, SFZH="810000199408230022", CSRQ="19940823", XB="女", MZ="香港")
    assert codes_by_row(report) == {3: {"id_checksum"}}


def test_passport_number_gets_no_checksum_or_id_findings(tmp_path):
    report, student = import_with(tmp_path, ZJLX="护照", SFZH="e12345678", CSRQ="20060314", XB="女", MZ="汉族")
    assert report.warnings == []
    assert (student.id_type, student.id_number) == ("护照", "E12345678")


def test_origin_province_and_exam_number_away_from_the_id_region_are_normal(tmp_path):
    # Born in Beijing (110105…), sat the exam in Guangdong.
    report, student = import_with(tmp_path, SYD="广东", KSH="25440301000123")
    assert report.warnings == []
    assert (student.origin_province, student.exam_number) == ("广东", "25440301000123")


def test_findings_are_replaced_when_the_record_is_corrected(tmp_path):
    rows = base_rows(2)
    good = rows[1]["SFZH"]
    rows[1]["SFZH"] = good[:17] + ("0" if good[17] != "0" else "1")
    run(roster(tmp_path, rows))
    student = Student.objects.get(student_number=rows[1]["XH"])
    assert findings_of(student) == [("SFZH", "id_checksum")]

    rows[1]["SFZH"] = good
    report = run(roster(tmp_path, rows, name="fixed.xlsx"))

    assert (report.updated, report.warnings) == (1, [])
    assert findings_of(student) == []


def test_dry_run_reports_findings_but_stores_none(tmp_path):
    rows = base_rows(2)
    rows[1]["MZ"] = "穿青人"
    report = run(roster(tmp_path, rows), dry_run=True)
    assert codes_by_row(report) == {3: {"unknown_ethnicity"}}
    assert not ImportFinding.objects.exists()


# --- upsert, idempotency and what is recorded ------------------------------------------------


def test_importing_the_same_file_twice_changes_nothing(tmp_path, changes_hook):
    rows = base_rows(3)
    rows[1]["MZ"] = "穿青人"
    path = roster(tmp_path, rows)
    run(path)
    before = {s.student_number: (s.version, s.updated_at) for s in Student.objects.all()}
    counts = (Department.objects.count(), Major.objects.count(), Cohort.objects.count(), ClassGroup.objects.count())
    findings_before = ImportFinding.objects.count()

    report = run(path)

    assert (report.created, report.updated, report.unchanged) == (0, 0, 3)
    assert report.changes == {}
    assert changes_hook == []
    assert {s.student_number: (s.version, s.updated_at) for s in Student.objects.all()} == before
    assert (Department.objects.count(), Major.objects.count(), Cohort.objects.count(), ClassGroup.objects.count()) == (
        counts
    )
    assert ImportFinding.objects.count() == findings_before == 1
    assert RosterImport.objects.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_importing_the_same_file_twice_outside_a_transaction_changes_nothing(tmp_path):
    # Outside a transaction the stored rows are read on a second connection while the file is read.
    rows = base_rows(3)
    rows[1]["MZ"] = "穿青人"
    path = roster(tmp_path, rows)
    first = run(path)

    report = run(path)

    assert (report.created, report.updated, report.unchanged) == (0, 0, 3)
    assert report.warnings == first.warnings
    assert set(Student.objects.values_list("version", flat=True)) == {1}


def test_text_moved_to_the_next_cell_is_a_change(tmp_path):
    # FY and XSH are neighbours: the row's cells, run together, read the same before and after.
    rows = base_rows(2)
    run(roster(tmp_path, rows))
    rows[0]["FY"], rows[0]["XSH"] = rows[0]["XSH"], ""

    report = run(roster(tmp_path, rows, name="second.xlsx"))

    assert (report.updated, report.unchanged) == (1, 1)
    student = Student.objects.get(student_number=rows[0]["XH"])
    assert (student.branch, student.department_name, student.version) == ("计算机学院", "", 2)


def test_changed_field_is_an_update_with_old_and_new_value(tmp_path, changes_hook):
    rows = base_rows(3)
    run(roster(tmp_path, rows))
    student = Student.objects.get(student_number=rows[2]["XH"])
    rows[2]["XJZT"] = "在籍（休学）"

    report = run(roster(tmp_path, rows, name="second.xlsx"))

    assert (report.created, report.updated, report.unchanged) == (0, 1, 2)
    assert report.changes == {student.pk: {"roll_status": ("在籍（注册学籍）", "在籍（休学）")}}
    assert changes_hook == [{"changes": report.changes, "roster_import_id": report.roster_import_id}]
    student.refresh_from_db()
    assert (student.roll_status, student.version) == ("在籍（休学）", 2)
    assert set(Student.objects.exclude(pk=student.pk).values_list("version", flat=True)) == {1}


def test_new_and_changed_students_in_one_file(tmp_path):
    rows = base_rows(4)
    run(roster(tmp_path, rows[:2]))
    rows[0]["XM"] = "王小明"
    report = run(roster(tmp_path, rows, name="second.xlsx"))
    assert (report.created, report.updated, report.unchanged) == (2, 1, 1)
    assert Student.objects.count() == 4
    assert Student.objects.get(student_number=rows[0]["XH"]).name == "王小明"


def test_an_update_keeps_the_id_number_and_a_corrected_one_replaces_it(tmp_path):
    rows = base_rows(3)
    rows[1]["SFZH"] = rows[1]["SFZH"][:17] + ("0" if rows[1]["SFZH"][17] != "0" else "1")  # wrong check digit
    run(roster(tmp_path, rows))
    assert list(ImportFinding.objects.values_list("student__student_number", "kind")) == [
        (rows[1]["XH"], "id_checksum")
    ]
    rows[0]["XM"] = "王小明"  # the name changes, the ID number does not
    rows[1]["SFZH"] = rows[1]["SFZH"][:17] + check_digit(rows[1]["SFZH"][:17])

    report = run(roster(tmp_path, rows, name="second.xlsx"))

    assert (report.created, report.updated, report.unchanged) == (0, 2, 1)
    first, second = (Student.objects.get(student_number=rows[i]["XH"]) for i in (0, 1))
    assert (first.name, first.id_number) == ("王小明", rows[0]["SFZH"])
    assert second.id_number == rows[1]["SFZH"]
    assert Student.objects.filter(id_number_hash=second.id_number_hash).count() == 1
    assert not ImportFinding.objects.exists()


def test_date_spelled_differently_is_not_a_change(tmp_path):
    rows = base_rows(2)
    run(roster(tmp_path, rows))
    csrq = rows[0]["CSRQ"]
    rows[0]["CSRQ"] = f"{csrq[:4]}年{csrq[4:6]}月{csrq[6:]}日"
    rows[1]["XZ"] = "4 年"
    report = run(roster(tmp_path, rows, name="second.csv", encoding="gbk"))
    assert (report.updated, report.unchanged) == (0, 2)


def test_missing_column_does_not_blank_existing_values(tmp_path):
    rows = base_rows(2)
    run(roster(tmp_path, rows))
    rows[0]["XM"] = "新名字"
    headers = [c for c in CODES if c not in ("手机号码", "ZZMM", "KSH", "BH")]

    report = run(roster(tmp_path, rows, headers, name="partial.xlsx"))

    assert (report.updated, report.unchanged) == (1, 1)
    first = Student.objects.get(student_number=rows[0]["XH"])
    assert first.name == "新名字"
    assert (first.phone, first.political_status) == (rows[0]["手机号码"], rows[0]["ZZMM"])
    assert (first.exam_number, first.class_name, first.class_group.name) == (
        rows[0]["KSH"],
        rows[0]["BH"],
        rows[0]["BH"],
    )


def test_moving_a_student_to_another_class_is_an_update(tmp_path):
    rows = base_rows(2)
    run(roster(tmp_path, rows))
    rows[0]["BH"] = "计算2599"
    report = run(roster(tmp_path, rows, name="second.xlsx"))
    assert (report.updated, report.unchanged) == (1, 1)
    student = Student.objects.get(student_number=rows[0]["XH"])
    assert student.class_group.name == "计算2599"
    assert student.version == 2


def test_departments_majors_classes_and_cohorts_are_created_as_needed(tmp_path):
    existing = Department.objects.create(name="计算机学院")
    rows = base_rows(20)
    report = run(roster(tmp_path, rows))
    assert report.created == 20

    assert set(Department.objects.values_list("name", flat=True)) == {r["XSH"] for r in rows}
    assert Department.objects.filter(name="计算机学院").get() == existing
    assert set(Major.objects.values_list("code", "name")) == {(r["ZYDM"], r["ZYMC"]) for r in rows}
    assert list(Cohort.objects.values_list("admission_year", "level")) == [(2025, "本科")]
    assert set(ClassGroup.objects.values_list("department__name", "name")) == {(r["XSH"], r["BH"]) for r in rows}
    for row in rows[:5]:
        student = Student.objects.get(student_number=row["XH"])
        assert (student.department.name, student.major.code, student.major.name) == (
            row["XSH"],
            row["ZYDM"],
            row["ZYMC"],
        )
        assert (student.class_group.name, str(student.cohort)) == (row["BH"], "2025级本科")
        assert student.class_group.major == student.major
        assert student.class_group.cohort == student.cohort


def test_applied_import_is_recorded(tmp_path):
    user = UserFactory(username="registrar1", role="registrar")
    rows = base_rows(3)
    rows[0]["MZ"] = "穿青人"
    report = run(roster(tmp_path, rows), file_name="2025级名单.xlsx", imported_by=user)

    record = RosterImport.objects.get()
    assert record.pk == report.roster_import_id
    assert (record.status, record.file_name, record.imported_by) == (
        RosterImport.Status.APPLIED,
        "2025级名单.xlsx",
        user,
    )
    assert (record.rows, record.created, record.updated, record.unchanged) == (3, 3, 0, 0)
    assert (record.error_count, record.warning_count) == (0, 1)
    assert record.started_at <= record.finished_at
    assert record.report == json.loads(json.dumps(report.as_dict()))
    assert ImportFinding.objects.get().roster_import == record


def test_rejected_import_is_recorded(tmp_path):
    user = UserFactory(username="registrar1", role="registrar")
    rows = base_rows(3)
    rows[1]["XH"] = ""
    report = run(roster(tmp_path, rows, name="bad.csv"), imported_by=user)
    record = RosterImport.objects.get()
    assert (record.status, record.file_name, record.imported_by) == (RosterImport.Status.REJECTED, "bad.csv", user)
    assert (record.created, record.error_count) == (0, 1)
    assert record.report["errors"] == report.errors == [{"row": 3, "field": "XH", "message": "必填项为空"}]


def test_dry_run_writes_no_students_but_is_recorded(tmp_path):
    user = UserFactory(username="registrar1", role="registrar")
    rows = base_rows(3)
    report = run(roster(tmp_path, rows), dry_run=True, imported_by=user)

    assert (report.created, report.updated, report.unchanged) == (3, 0, 0)
    assert not Student.objects.exists()
    assert not Department.objects.exists() and not ClassGroup.objects.exists() and not Major.objects.exists()
    record = RosterImport.objects.get()
    assert (record.status, record.imported_by, record.created) == (RosterImport.Status.DRY_RUN, user, 3)


def test_dry_run_counts_updates_without_applying_them(tmp_path, changes_hook):
    rows = base_rows(2)
    run(roster(tmp_path, rows))
    original = rows[0]["XM"]
    rows[0]["XM"] = "王小明"
    report = run(roster(tmp_path, rows, name="second.xlsx"), dry_run=True)
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)
    student = Student.objects.get(student_number=rows[0]["XH"])
    assert (student.name, student.version) == (original, 1)
    assert changes_hook == []


# --- the report: a stable interface --------------------------------------------------------


def test_report_shape(tmp_path):
    rows = base_rows(2)
    rows[1]["MZ"] = "穿青人"
    rows[1]["备注"] = "复学"
    report = run(roster(tmp_path, rows, [*CODES, "备注"])).as_dict()
    assert report == {
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "errors": [],
        "warnings": [
            {"row": 3, "field": "MZ", "code": "unknown_ethnicity", "message": "民族“穿青人”不在 GB/T 3304 名录中"}
        ],
        "ignored_columns": ["备注"],
    }
    assert json.loads(json.dumps(report, ensure_ascii=False)) == report


def test_error_report_shape(tmp_path):
    rows = base_rows(2)
    rows[1]["SFZH"] = ""
    report = run(roster(tmp_path, rows)).as_dict()
    assert list(report) == ["created", "updated", "unchanged", "errors", "warnings", "ignored_columns"]
    assert report["errors"] == [{"row": 3, "field": "SFZH", "message": "必填项为空"}]
    assert report["warnings"] == []


# --- manage.py import_roster ------------------------------------------------------------------


def call(*args):
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_roster", *map(str, args), stdout=out, stderr=err)
        code = 0
    except SystemExit as exit:
        code = exit.code
    return code, out.getvalue(), err.getvalue()


def test_command_imports_and_prints_counts(tmp_path):
    code, out, _err = call(roster(tmp_path, base_rows(3)))
    assert code == 0
    assert "新增 3，更新 0，未变 0" in out
    assert Student.objects.count() == 3
    assert RosterImport.objects.get().status == RosterImport.Status.APPLIED


def test_command_json_report(tmp_path):
    rows = base_rows(2)
    rows[0]["XZ"] = "3"
    rows[0]["YJBYRQ"] = "20280630"
    code, out, _err = call(roster(tmp_path, rows, [*CODES, "备注"]), "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["created"] == 2
    assert report["warnings"] == [
        {"row": 2, "field": "XZ", "code": "unusual_duration", "message": "本科 的学制为 3 年，不常见"}
    ]
    assert report["ignored_columns"] == ["备注"]


def test_command_exits_non_zero_on_errors(tmp_path):
    rows = base_rows(2)
    rows[1]["CSRQ"] = "20080231"
    code, out, _err = call(roster(tmp_path, rows), "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(3, "CSRQ")]
    assert report["created"] == 0
    assert not Student.objects.exists()


def test_command_text_errors_name_row_and_field(tmp_path):
    rows = base_rows(2)
    rows[1]["XM"] = ""
    code, _out, err = call(roster(tmp_path, rows))
    assert code == 1
    assert "第 3 行 [XM] 必填项为空" in err
    assert "未导入任何记录" in err


def test_command_dry_run(tmp_path):
    code, out, _err = call(roster(tmp_path, base_rows(3)), "--dry-run")
    assert code == 0
    assert "试运行" in out and "新增 3" in out
    assert not Student.objects.exists()
    assert RosterImport.objects.get().status == RosterImport.Status.DRY_RUN


def test_command_dry_run_json_with_errors_exits_non_zero(tmp_path):
    path = tmp_path / "roster.xlsx"
    path.write_bytes(PNG)
    code, out, _err = call(path, "--dry-run", "--format", "json")
    assert code == 1
    assert json.loads(out)["errors"][0]["message"]


def test_command_missing_file(tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_roster", str(tmp_path / "none.xlsx"))
