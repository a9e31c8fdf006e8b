"""A second source (the school's own roster) beside CHSI's, and the comparison of the two."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from students.models import RosterImport, RosterSource, SourceRecord, SourceResolution, Student
from students.services import roster_import
from students.sources import difference_decide, roster_diff
from students.tests.rosters import as_table, base_rows, write_csv, write_xlsx

pytestmark = pytest.mark.django_db


@pytest.fixture
def chsi_rows():
    rows = base_rows(10)
    header, data = as_table(rows)
    return rows, header, data


@pytest.fixture
def imported(tmp_path, chsi_rows):
    rows, header, data = chsi_rows
    report = roster_import(path=write_xlsx(tmp_path / "chsi.xlsx", header, data))
    assert report.errors == []
    return rows


def school_roster(tmp_path, rows, name="jw.csv"):
    return write_csv(tmp_path / name, *as_table(rows), encoding="gbk")


def test_a_source_is_stored_beside_chsi_and_never_touches_it(tmp_path, imported):
    before = list(Student.objects.values_list("student_number", "name", "version"))
    school = [dict(row) for row in imported]
    school[0]["XM"] = "别的名字"
    report = roster_import(path=school_roster(tmp_path, school), source="教务系统")
    assert report.errors == []
    assert report.created == len(school)
    assert list(Student.objects.values_list("student_number", "name", "version")) == before
    source = RosterSource.objects.get(name="教务系统")
    assert source.rows == len(school)
    assert RosterImport.objects.filter(source="教务系统").count() == 1
    # The ID number is stored only encrypted.
    record = SourceRecord.objects.get(source=source, student_number=school[0]["XH"])
    assert school[0]["SFZH"] not in json.dumps(record.values, ensure_ascii=False)
    assert record.id_number == school[0]["SFZH"]


def test_a_later_file_under_the_same_name_replaces_the_source(tmp_path, imported):
    roster_import(path=school_roster(tmp_path, imported), source="教务系统")
    again = [dict(row) for row in imported[:6]]
    again[0]["XM"] = "改过的名字"
    report = roster_import(path=school_roster(tmp_path, again, "jw2.csv"), source="教务系统")
    assert (report.created, report.updated, report.unchanged) == (0, 1, 5)
    assert SourceRecord.objects.filter(source__name="教务系统").count() == 6


def test_a_broken_source_file_stores_nothing(tmp_path, imported):
    school = [dict(row) for row in imported]
    school[3]["CSRQ"] = "2007-02-30"
    report = roster_import(path=school_roster(tmp_path, school), source="教务系统")
    assert [(e["row"], e["field"]) for e in report.errors] == [(5, "CSRQ")]
    assert not RosterSource.objects.exists()


def test_the_diff_finds_planted_differences_and_nothing_else(tmp_path, imported):
    school = [dict(row) for row in imported]
    # Spelled differently but the same value: never a difference.
    school[1]["ZYMC"] = school[1]["ZYMC"] + "（软件方向）"
    school[1]["CSRQ"] = f"{school[1]['CSRQ'][:4]}-{school[1]['CSRQ'][4:6]}-{school[1]['CSRQ'][6:]}"
    school[2]["XH"] = "".join(chr(ord(c) + 0xFEE0) for c in school[2]["XH"])  # full-width digits
    # Planted differences.
    school[3]["XM"] = "张冠李"
    school[4]["MZ"] = "满族" if school[4]["MZ"] != "满族" else "回族"
    school[5]["SFZH"] = "110101200001011234" if school[5]["SFZH"] != "110101200001011234" else "110101200001021230"
    # Same person (same ID), another 学号 in 教务.
    school[6]["XH"] = "2099000001"
    # In 教务, not on CHSI: the "not registered" case.
    stranger = dict(school[7], XH="2099000002", SFZH="44030819990110151X")
    school.append(stranger)
    # Only on CHSI.
    dropped = school.pop(8)
    roster_import(path=school_roster(tmp_path, school), source="教务系统")

    diff = roster_diff(RosterSource.objects.get(name="教务系统"))
    found = {(d.student_number, d.field) for d in diff.differences}
    assert found == {
        (imported[3]["XH"], "XM"),
        (imported[4]["XH"], "MZ"),
        (imported[5]["XH"], "SFZH"),
        (imported[6]["XH"], "XH"),
    }
    assert diff.only_in_source == ["2099000002"]
    assert diff.only_in_chsi == [dropped["XH"]]
    assert diff.compared == len(imported) - 1
    id_difference = next(d for d in diff.differences if d.field == "SFZH")
    assert imported[5]["SFZH"] not in id_difference.chsi and "*" in id_difference.chsi


def test_roster_diff_command_prints_the_stable_report_with_ids_masked(tmp_path, imported):
    school = [dict(row) for row in imported]
    school[0]["SFZH"] = "44030819990110151X"
    school[1]["XM"] = "王某某"
    roster_import(path=school_roster(tmp_path, school), source="教务系统")
    out = StringIO()
    call_command("roster_diff", "教务系统", "--format", "json", stdout=out)
    report = json.loads(out.getvalue())
    assert set(report) == {"compared", "only_in_chsi", "only_in_source", "differences"}
    assert report["compared"] == len(school)
    assert {"xh": imported[1]["XH"], "field": "XM", "chsi": imported[1]["XM"], "source": "王某某"} in report[
        "differences"
    ]
    assert "44030819990110151X" not in out.getvalue()
    assert imported[0]["SFZH"] not in out.getvalue()


def test_a_decision_lapses_when_either_value_changes(tmp_path, imported):
    school = [dict(row) for row in imported]
    school[0]["XM"] = "王某某"
    roster_import(path=school_roster(tmp_path, school), source="教务系统")
    source = RosterSource.objects.get()
    difference = roster_diff(source).differences[0]
    difference_decide(source=source, difference=difference, decision=SourceResolution.Decision.SOURCE_WRONG, by=None)
    assert roster_diff(source).differences[0].decision == "source_wrong"
    school[0]["XM"] = "王某"
    roster_import(path=school_roster(tmp_path, school, "jw2.csv"), source="教务系统")
    assert roster_diff(source).differences[0].decision == ""
