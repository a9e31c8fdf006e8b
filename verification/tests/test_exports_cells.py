"""The writer's fast paths write the same cells as the column writers they bypass (no database)."""

import datetime
import io
import zoneinfo

import openpyxl
import xlsxwriter
from django.test import override_settings
from django.utils import timezone
from xlsxwriter.utility import _datetime_to_excel_datetime

from verification.exports import base, writer

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def test_the_serial_number_is_xlsxwriters_to_the_last_bit():
    values = [
        datetime.datetime(1900, 3, 1),
        datetime.datetime(2025, 9, 18, 8, 5),
        datetime.datetime(2025, 9, 18, 23, 59, 59, 999999),
        datetime.datetime(2038, 1, 19, 3, 14, 7, 123456),
        datetime.datetime(9999, 12, 31, 23, 59, 59),
    ]
    for value in values:
        assert writer._serial(value) == _datetime_to_excel_datetime(value, False, False), value


class _Cells(base.Exporter):
    key = "test-cells"
    columns = [
        base.text("文本"),
        base.number("数"),
        base.date("日期"),
        base.datetime_("时间"),
        base.timestamp("时刻"),
    ]

    def __init__(self, rows):
        self._rows = rows

    def rows(self, user, params):
        return iter(self._rows)


def _write(rows):
    user = type("U", (), {"get_full_name": lambda self: "", "get_username": lambda self: "u"})()
    out = io.BytesIO()
    with override_settings(TIME_ZONE="Asia/Shanghai"), timezone.override(SHANGHAI):
        writer.write_xlsx(_Cells(rows), user, {}, out, exported_by=user)
    out.seek(0)
    sheet = openpyxl.load_workbook(out).active
    return [[cell.value for cell in row] for row in sheet.iter_rows(min_row=writer.HEADER_ROW + 2)], sheet


def test_fast_cells_match_the_column_writers():
    utc = datetime.timezone.utc
    aware = datetime.datetime(2025, 9, 18, 0, 5, 30, tzinfo=utc)  # 08:05:30 in Shanghai
    early = datetime.datetime(1900, 1, 2, 12, 0, tzinfo=SHANGHAI)  # before 1900-03-01: the column writer's way
    rows = [
        ["2025100001", 3, datetime.date(2025, 9, 1), aware, aware],
        ["=1+1", True, "", None, datetime.datetime(2025, 9, 18, 8, 5)],  # formula as text, bool as text, naive
        ["", 2.5, "不详", early, "无"],
    ]
    cells, sheet = _write(rows)
    local = datetime.datetime(2025, 9, 18, 8, 5, 30)
    assert cells[0] == ["2025100001", 3, datetime.datetime(2025, 9, 1), local, local]
    assert cells[1] == ["=1+1", "True", None, None, datetime.datetime(2025, 9, 18, 8, 5)]
    assert cells[2] == [None, 2.5, "不详", datetime.datetime(1900, 1, 2, 12, 0), "无"]
    first = sheet.cell(row=writer.HEADER_ROW + 2, column=1)
    assert first.data_type == "s" and first.number_format == "@"
    assert sheet.cell(row=writer.HEADER_ROW + 3, column=1).quotePrefix
    assert sheet.cell(row=writer.HEADER_ROW + 2, column=4).number_format == "yyyy-mm-dd hh:mm"
    assert sheet.cell(row=writer.HEADER_ROW + 2, column=5).number_format == "yyyy-mm-dd hh:mm:ss"
    assert sheet.cell(row=writer.HEADER_ROW + 2, column=3).number_format == "yyyy-mm-dd"


def test_the_fast_datetime_is_the_cell_write_datetime_writes():
    # Same number in the file as XlsxWriter's own write_datetime of the local time.
    value = datetime.datetime(2025, 9, 18, 0, 5, 30, 250000, tzinfo=datetime.timezone.utc)
    ours, _sheet = _write([["x", 1, None, value, value]])
    out = io.BytesIO()
    workbook = xlsxwriter.Workbook(out, {"constant_memory": True})
    sheet = workbook.add_worksheet()
    sheet.write_datetime(
        0, 0, value.astimezone(SHANGHAI).replace(tzinfo=None), workbook.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    )
    workbook.close()
    out.seek(0)
    theirs = openpyxl.load_workbook(out).active["A1"].value
    assert ours[0][3] == ours[0][4] == theirs
