"""Every roster format an office really receives imports to the same stored values.

.xlsx with number cells, date cells and a title row; .xls (BIFF8); DBF in GBK
with CHSI or admission code columns; Excel's "Unicode text"; CSV and
tab-separated text in UTF-8 or GBK.  Row numbers read the same in every format.
"""

import datetime

import pytest

from students import normalize
from students.models import Student
from students.services import roster_import
from students.tests.rosters import as_table, base_rows, write_csv, write_dbf, write_text, write_xls, write_xlsx

pytestmark = pytest.mark.django_db

TITLE = "示范大学2025级新生名单"
DATES = ("CSRQ", "RXRQ", "YJBYRQ")


def run(path, **options):
    return roster_import(path=path, **options)


def stored() -> list[tuple]:
    """Every stored value of every student, decrypted ID included, in a stable order."""
    # row_fingerprint remembers how the row was spelled, which differs by format on purpose.
    skip = {"id", "version", "updated_at", "created_at", "row_fingerprint"}
    keys = [f.name for f in Student._meta.concrete_fields if f.name not in skip]
    return sorted((s.student_number, s.id_number, *[str(getattr(s, k)) for k in keys]) for s in Student.objects.all())


def typed(rows: list[dict]) -> list[dict]:
    """The rows as a spreadsheet holds them: 学号/考生号 typed as numbers, dates as date cells."""
    out = []
    for row in rows:
        row = dict(row)
        row["XH"], row["KSH"] = int(row["XH"]), int(row["KSH"])
        for code in DATES:
            row[code] = datetime.datetime.strptime(row[code], "%Y%m%d").date()
        out.append(row)
    return out


def admission_coded(header: list, data: list[list]) -> tuple[list, list[list]]:
    """XB and MZ as admission DBFs carry them: XBDM 1/2 and MZDM two-digit GB/T 3304 codes."""
    coded_header = [{"XB": "XBDM", "MZ": "MZDM", "手机号码": "SJHM"}.get(name, name) for name in header]
    coded = []
    for row in data:
        row = list(row)
        row[header.index("XB")] = {"男": "1", "女": "2"}[row[header.index("XB")]]
        row[header.index("MZ")] = f"{normalize.ETHNIC_GROUPS.index(row[header.index('MZ')]) + 1:02d}"
        coded.append(row)
    return coded_header, coded


@pytest.fixture
def roster_rows():
    return base_rows(12)


def _dbf(tmp_path, rows):
    header, data = as_table(typed(rows))
    header = [name if name != "手机号码" else "SJHM" for name in header]
    return write_dbf(tmp_path / "r.dbf", header, data, types=dict.fromkeys(DATES, "D") | {"XH": "N"})


def _dbf_admission_codes(tmp_path, rows):
    return write_dbf(tmp_path / "a.dbf", *admission_coded(*as_table(rows)))


WRITERS = {
    "xlsx": lambda tmp, rows: write_xlsx(tmp / "r.xlsx", *as_table(typed(rows)), title=TITLE),
    "xls": lambda tmp, rows: write_xls(tmp / "r.xls", *as_table(typed(rows)), title=TITLE),
    "dbf": _dbf,
    "dbf_admission_codes": _dbf_admission_codes,
    "utf16_text": lambda tmp, rows: write_text(tmp / "r.txt", *as_table(rows), title=TITLE),
    "csv_gbk": lambda tmp, rows: write_csv(tmp / "r.csv", *as_table(rows), encoding="gbk"),
    "tsv_utf8": lambda tmp, rows: write_text(tmp / "r.tsv", *as_table(rows), encoding="utf-8-sig"),
}


def every_format(tmp_path, rows):
    return {name: write(tmp_path, rows) for name, write in WRITERS.items()}


def test_one_roster_in_every_format_imports_to_identical_rows(tmp_path, roster_rows):
    files = every_format(tmp_path, roster_rows)
    first = run(files.pop("xlsx"))
    assert first.errors == []
    assert first.created == len(roster_rows)
    snapshot = stored()
    assert {s[0] for s in snapshot} == {row["XH"] for row in roster_rows}
    for name, path in files.items():
        report = run(path)
        assert report.errors == [], name
        assert (report.created, report.updated, report.unchanged) == (0, 0, len(roster_rows)), name
        assert stored() == snapshot, name


@pytest.mark.parametrize("fmt", ["xls", "dbf", "dbf_admission_codes", "utf16_text", "csv_gbk", "tsv_utf8"])
def test_each_format_imports_a_fresh_school(tmp_path, roster_rows, fmt):
    report = run(WRITERS[fmt](tmp_path, roster_rows))
    assert report.errors == []
    assert report.created == len(roster_rows)
    student = Student.objects.get(student_number=roster_rows[0]["XH"])
    assert student.name == roster_rows[0]["XM"]
    assert student.gender == roster_rows[0]["XB"]
    assert student.ethnicity == roster_rows[0]["MZ"]
    assert student.birth_date == datetime.datetime.strptime(roster_rows[0]["CSRQ"], "%Y%m%d").date()


def test_xls_reports_the_same_rows_and_errors_as_xlsx(tmp_path, roster_rows):
    roster_rows[4]["CSRQ"] = "2007-02-30"
    header, data = as_table(roster_rows)
    reports = [
        run(write_xlsx(tmp_path / "r.xlsx", header, data, title=TITLE)),
        run(write_xls(tmp_path / "r.xls", header, data, title=TITLE)),
    ]
    assert reports[0].errors == reports[1].errors
    assert [(e["row"], e["field"]) for e in reports[1].errors] == [(8, "CSRQ")]  # title, blank, header, rows 4…


def test_dbf_rows_are_record_numbers_and_deleted_records_are_skipped(tmp_path, roster_rows):
    header, data = as_table(roster_rows[:4])
    data[2][header.index("CSRQ")] = "20070230"
    path = write_dbf(tmp_path / "r.dbf", [h if h != "手机号码" else "SJHM" for h in header], data)
    raw = bytearray(path.read_bytes())
    header_length = int.from_bytes(raw[8:10], "little")
    record_length = int.from_bytes(raw[10:12], "little")
    raw[header_length] = ord("*")  # the first record was deleted in FoxPro
    path.write_bytes(bytes(raw))

    report = run(path)

    assert [(e["row"], e["field"]) for e in report.errors] == [(4, "CSRQ")]  # record 3 = row 4
    assert "CSRQ 字段" in report.errors[0]["message"]
    assert record_length > 1


def test_a_dbf_whose_code_page_byte_is_wrong_is_still_read_as_gbk(tmp_path, roster_rows):
    header, data = as_table(roster_rows[:3])
    path = write_dbf(tmp_path / "r.dbf", [h if h != "手机号码" else "SJHM" for h in header], data, codepage=0x03)
    report = run(path)
    assert report.errors == []
    assert Student.objects.get(student_number=roster_rows[0]["XH"]).name == roster_rows[0]["XM"]
    assert [w["code"] for w in report.warnings if w["code"] == "dbf_codepage"] == ["dbf_codepage"]


def test_a_big5_dbf_needs_the_encoding_override(tmp_path, roster_rows):
    rows = roster_rows[:2]
    for row in rows:
        row["XM"], row["XSH"] = "陳大文", "電機學院"
    header, data = as_table(rows, ["XH", "XM", "SFZH", "XSH", "CSRQ"])
    path = write_dbf(tmp_path / "r.dbf", header, data, codepage=0x00, encoding="big5")
    report = run(path, encoding="big5")
    assert report.errors == []
    assert Student.objects.get(student_number=rows[0]["XH"]).name == "陳大文"


def test_an_unknown_admission_code_names_the_row_and_field(tmp_path, roster_rows):
    header, data = as_table(roster_rows[:3])
    coded_header, coded_data = admission_coded(header, data)
    coded_data[1][coded_header.index("MZDM")] = "77"
    report = run(write_dbf(tmp_path / "a.dbf", coded_header, coded_data))
    assert [(e["row"], e["field"]) for e in report.errors] == [(3, "MZ")]
    assert "77" in report.errors[0]["message"]
    assert Student.objects.count() == 0


def test_admission_code_columns_are_decoded_in_sheets_too(tmp_path, roster_rows):
    header, data = as_table(roster_rows[:3])
    coded_header, coded_data = admission_coded(header, data)
    coded_header[coded_header.index("SJHM")] = "手机号码"
    report = run(write_xlsx(tmp_path / "a.xlsx", coded_header, coded_data))
    assert report.errors == []
    assert Student.objects.get(student_number=roster_rows[1]["XH"]).gender == roster_rows[1]["XB"]


def test_a_broken_xls_gets_a_clear_message(tmp_path):
    path = tmp_path / "r.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    report = run(path)
    assert len(report.errors) == 1
    assert ".xls" in report.errors[0]["message"]
    assert Student.objects.count() == 0


def test_the_command_and_the_upload_page_take_the_encoding_override(tmp_path, client, registrar):
    import json
    from io import StringIO

    from django.core.management import call_command
    from django.urls import reverse

    rows = base_rows(2)
    for row in rows:
        row["XM"], row["XSH"] = "陳大文", "電機學院"
    header, data = as_table(rows, ["XH", "XM", "SFZH", "XSH", "CSRQ"])
    path = write_dbf(tmp_path / "r.dbf", header, data, codepage=0x00, encoding="big5")
    out = StringIO()
    call_command("import_roster", str(path), "--encoding", "big5", "--dry-run", "--format", "json", stdout=out)
    assert json.loads(out.getvalue())["created"] == 2

    client.force_login(registrar)
    with open(path, "rb") as upload:
        response = client.post(reverse("students:roster_upload"), {"file": upload, "encoding": "big5"})
    assert response.status_code == 200
    assert Student.objects.get(student_number=rows[0]["XH"]).name == "陳大文"


def _upload(client, path, **data):
    from django.urls import reverse

    with open(path, "rb") as handle:
        return client.post(reverse("students:roster_upload"), {"file": handle, **data})


def test_unknown_headers_are_mapped_on_the_page_and_saved_as_a_preset(tmp_path, client, registrar):
    from django.urls import reverse

    from students.models import RosterPreset

    rows = base_rows(3)
    header, data = as_table(rows)
    # 教务 calls them 学生编号 and 学生姓名: no header row is recognised at all.
    header = ["学生编号" if h == "XH" else "学生姓名" if h == "XM" else h for h in header]
    path = write_xlsx(tmp_path / "jw.xlsx", header, data, title=TITLE)
    client.force_login(registrar)

    page = _upload(client, path)
    assert "未找到表头行" in page.content.decode()
    form = page.context["mapping_form"]
    assert "学生编号" in form.headers and "学生姓名" in form.headers
    assert Student.objects.count() == 0

    answer = {f"column_{i}": "" for i in range(len(form.headers))}
    answer[f"column_{form.headers.index('学生编号')}"] = "student_number"
    answer[f"column_{form.headers.index('学生姓名')}"] = "name"
    page = client.post(reverse("students:roster_upload"), {**answer, "preset_name": "教务系统导出", "remap": "1"})
    assert page.context["report"].errors == []
    assert Student.objects.count() == 3
    preset = RosterPreset.objects.get(name="教务系统导出")

    # The next file from the same source only needs the preset.
    rows[0]["XM"] = "新名字"
    path = write_xlsx(tmp_path / "jw2.xlsx", header, as_table(rows)[1])
    page = _upload(client, path, preset=preset.pk)
    assert page.context["report"].updated == 1
    assert Student.objects.get(student_number=rows[0]["XH"]).name == "新名字"


def test_an_upload_waiting_for_its_column_mapping_is_encrypted_on_disk(tmp_path, client, registrar, settings):
    """The waiting file is CHSI's export with full ID numbers: nothing of it is readable on disk."""
    import os

    from django.urls import reverse

    settings.PRIVATE_ROOT = str(tmp_path / "private")
    rows = base_rows(2)
    header, data = as_table(rows)
    header = ["学生编号" if h == "XH" else "学生姓名" if h == "XM" else h for h in header]
    path = write_xlsx(tmp_path / "jw.xlsx", header, data)
    client.force_login(registrar)
    form = _upload(client, path).context["mapping_form"]

    folder = tmp_path / "private" / "pending-rosters"
    [waiting] = os.listdir(folder)  # no plain copy is left beside it
    stored = (folder / waiting).read_bytes()
    assert waiting.endswith(".roster") and not stored.startswith(b"PK")
    assert path.read_bytes()[:64] not in stored

    answer = {f"column_{i}": "" for i in range(len(form.headers))}
    answer[f"column_{form.headers.index('学生编号')}"] = "student_number"
    answer[f"column_{form.headers.index('学生姓名')}"] = "name"
    page = client.post(reverse("students:roster_upload"), {**answer, "remap": "1"})
    assert page.context["report"].errors == []
    assert Student.objects.count() == 2
    assert not folder.exists()  # imported: the waiting file and its decrypted copy are gone


def test_two_columns_mapped_to_one_field_are_refused(tmp_path, client, registrar):
    from django.urls import reverse

    rows = base_rows(2)
    header, data = as_table(rows)
    header = ["学生编号" if h == "XH" else "学生姓名" if h == "XM" else h for h in header]
    client.force_login(registrar)
    form = _upload(client, write_xlsx(tmp_path / "jw.xlsx", header, data)).context["mapping_form"]
    answer = {f"column_{i}": "name" for i in range(2)}
    page = client.post(reverse("students:roster_upload"), {**answer, "remap": "1"})
    assert "同一个字段只能对应一列" in page.content.decode()
    assert Student.objects.count() == 0
    assert form.headers
