"""The one .xlsx writer every export uses (XlsxWriter in constant_memory mode: flat memory, fast).

Each sheet opens with the export's title (A1), who exported it and when (A2)
and, after a blank row, the column names (row 4), frozen and repeated on every
printed page; the page is A4, fitted to the page width.  Cells follow the
column's declared type: text columns are text cells with the Text number
format (学号, ID numbers and 考生号 never turn into numbers), numbers are
numbers, dates are date cells in the school's time zone.

Typed text that a spreadsheet would read as a formula (``=…``, ``+…``, ``-…``,
``@…``, OWASP's CSV-injection list) or an error (``#N/A``) is written as text
with Excel's quote prefix, so it stays text even when someone edits the cell;
characters XML cannot hold are dropped.
"""

import datetime
import re

import xlsxwriter
from django.utils import timezone
from django.utils.translation import gettext as _

from .base import ColumnType, Exporter

FORMULA_TRIGGERS = frozenset("=+-@\t\r")
ERROR_CODES = frozenset({"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A"})
# Control characters XML 1.0 cannot hold (openpyxl's ILLEGAL_CHARACTERS_RE).
ILLEGAL_CHARACTERS = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")
# A text cell that needs the column writer's care: a formula trigger or "#" first (every error code starts with
# it), or a character XML cannot hold anywhere.  Must agree with FORMULA_TRIGGERS, ERROR_CODES and
# ILLEGAL_CHARACTERS (a test checks it).
_NEEDS_CARE = re.compile(r"[=+\-@\t\r#]|[^\000-\010\013\014\016-\037]*[\000-\010\013\014\016-\037]")
# Excel refuses these in sheet titles, and titles longer than 31 characters.
_SHEET_TITLE_FORBIDDEN = re.compile(r"[\\/*?:\[\]]")
A4 = 9
HEADER_ROW = 3  # zero-based: rows 1–3 are the title, the stamp and a blank row


def _sheet_title(title, used: set) -> str:
    base = _SHEET_TITLE_FORBIDDEN.sub("", ILLEGAL_CHARACTERS.sub("", str(title))).strip("'")[:31] or "Sheet"
    name, n = base, 2
    while name.lower() in used:
        name = f"{base[:28]}({n})"
        n += 1
    used.add(name.lower())
    return name


def _clean(value: str) -> str:
    return ILLEGAL_CHARACTERS.sub("", value) if ILLEGAL_CHARACTERS.search(value) else value


def exported_by_line(exported_by) -> str:
    who = exported_by.get_full_name() or exported_by.get_username()
    if who != exported_by.get_username():
        who = _("%(name)s（%(username)s）") % {"name": who, "username": exported_by.get_username()}
    return _("导出人：%(who)s    导出时间：%(time)s") % {"who": who, "time": f"{timezone.localtime():%Y-%m-%d %H:%M}"}


def write_xlsx(exporter: Exporter, user, params, target, *, exported_by) -> int:
    """Write the export to ``target`` (a path or a binary file); returns the number of data rows."""
    workbook = xlsxwriter.Workbook(target, {"constant_memory": True, "strings_to_numbers": False})
    fmt = {
        "title": workbook.add_format({"bold": True, "font_size": 14}),
        "stamp": workbook.add_format({"font_color": "#555555"}),
        "header": workbook.add_format(
            {"bold": True, "bg_color": "#E8EEF4", "border": 1, "text_wrap": True, "valign": "vcenter"}
        ),
        ColumnType.TEXT: workbook.add_format({"num_format": "@", "border": 1}),
        "quoted": workbook.add_format({"num_format": "@", "border": 1, "quote_prefix": True}),
        ColumnType.NUMBER: workbook.add_format({"border": 1}),
        ColumnType.DATE: workbook.add_format({"num_format": "yyyy-mm-dd", "border": 1, "align": "left"}),
        ColumnType.DATETIME: workbook.add_format({"num_format": "yyyy-mm-dd hh:mm", "border": 1, "align": "left"}),
        ColumnType.TIMESTAMP: workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss", "border": 1, "align": "left"}),
        "footer": workbook.add_format({}),
    }
    title = _clean(str(exporter.title(user, params)))
    stamp = _clean(exported_by_line(exported_by))
    used: set = set()
    total = 0
    try:
        for spec in exporter.sheets(user, params):
            sheet = workbook.add_worksheet(_sheet_title(spec.title, used))
            _page_setup(sheet, spec, title)
            sheet.write_string(0, 0, title, fmt["title"])
            sheet.write_string(1, 0, stamp, fmt["stamp"])
            for col, column in enumerate(spec.columns):
                sheet.write_string(HEADER_ROW, col, _clean(str(column.title)), fmt["header"])
            row = HEADER_ROW
            writers = [_cell_writer(sheet, column.type, fmt) for column in spec.columns]
            # The common cells are written here: plain text in a text column (one regex match rules out
            # everything the column's writer guards against), an int in a number column, an aware datetime in
            # a date column (its serial number computed here, the time zone looked up once per sheet, not per
            # cell: that cost more than the cell).  Every other cell goes through the column's writer.
            plain_text = [column.type == ColumnType.TEXT for column in spec.columns]
            number_col = [column.type == ColumnType.NUMBER for column in spec.columns]
            date_col = [column.type in _DATE_TYPES for column in spec.columns]
            formats = [fmt[column.type] for column in spec.columns]
            # XlsxWriter's write_string and write_number are these behind a decorator that accepts "A1"
            # notation (a call and an int() per cell); the cells here are addressed by numbers.
            write_string, write_number = sheet._write_string, sheet._write_number
            text_format, needs_care, local = fmt[ColumnType.TEXT], _NEEDS_CARE.match, timezone.get_current_timezone()
            width = len(spec.columns)
            for values in spec.rows:
                row += 1
                if len(values) != width:
                    raise ValueError(f"row {row + 1} has {len(values)} cells for {width} columns")
                for col, value in enumerate(values):
                    kind = value.__class__
                    if kind is str:
                        if not value:
                            continue
                        if plain_text[col] and not needs_care(value):
                            write_string(row, col, value, text_format)
                            continue
                    elif value is None:
                        continue
                    elif kind is int:
                        if number_col[col]:
                            write_number(row, col, value, formats[col])
                            continue
                    elif kind is datetime.datetime and date_col[col] and value.tzinfo is not None:
                        value = value.astimezone(local).replace(tzinfo=None)
                        if value >= _SERIAL_FROM:
                            write_number(row, col, _serial(value), formats[col])
                            continue
                    elif value == "":
                        continue
                    writers[col](row, col, value)
            total += row - HEADER_ROW
            if spec.footer:
                row += 1
                for line in spec.footer:
                    row += 1
                    sheet.set_row(row, 30)
                    sheet.write_string(row, 0, _clean(str(line)), fmt["footer"])
    finally:
        workbook.close()
    return total


def _page_setup(sheet, spec, title):
    for col, column in enumerate(spec.columns):
        sheet.set_column(col, col, column.width)
    if spec.row_height:
        sheet.set_default_row(spec.row_height)
        # The title rows keep their normal height.
        for row in range(HEADER_ROW):
            sheet.set_row(row, 18)
    sheet.freeze_panes(HEADER_ROW + 1, 0)
    sheet.repeat_rows(HEADER_ROW)
    sheet.set_paper(A4)
    if spec.landscape:
        sheet.set_landscape()
    sheet.fit_to_pages(1, 0)  # as wide as one page, as many pages long as it takes
    sheet.set_margins(left=0.5, right=0.5, top=0.6, bottom=0.6)
    sheet.set_footer("&C" + _("第 &P 页，共 &N 页"))


_DATE_TYPES = frozenset({ColumnType.DATE, ColumnType.DATETIME, ColumnType.TIMESTAMP})
# From here on a date's serial number is plain arithmetic (before it, Excel's 1900 leap-year bug and its day 0).
_SERIAL_FROM = datetime.datetime(1900, 3, 1)
_EPOCH = datetime.datetime(1899, 12, 31)


def _serial(value: datetime.datetime) -> float:
    """Excel's serial number of a naive datetime from 1900-03-01 on, exactly as XlsxWriter's ``write_datetime``
    computes it (same float operations, so the same cell)."""
    delta = value - _EPOCH
    return delta.days + (float(delta.seconds) + float(delta.microseconds) / 1e6) / 86400 + 1


def _local_naive(value):
    # Excel has no time zones: write the school's local time.
    if isinstance(value, datetime.datetime) and timezone.is_aware(value):
        return timezone.make_naive(value, timezone.get_current_timezone())
    return value


def _cell_writer(sheet, column_type, fmt):
    write_string = sheet.write_string
    text_format, quoted = fmt[ColumnType.TEXT], fmt["quoted"]

    def text(row, col, value):
        if not isinstance(value, str):
            value = str(value)
        if ILLEGAL_CHARACTERS.search(value):
            value = ILLEGAL_CHARACTERS.sub("", value)
        if value[:1] in FORMULA_TRIGGERS or value in ERROR_CODES:
            write_string(row, col, value, quoted)
        else:
            write_string(row, col, value, text_format)

    if column_type == ColumnType.TEXT:
        return text
    if column_type == ColumnType.NUMBER:
        number_format = fmt[ColumnType.NUMBER]

        def number(row, col, value):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                sheet.write_number(row, col, value, number_format)
            else:
                text(row, col, value)

        return number
    date_format = fmt[column_type]

    def date(row, col, value):
        if isinstance(value, (datetime.date, datetime.datetime)):
            sheet.write_datetime(row, col, _local_naive(value), date_format)
        else:
            text(row, col, value)

    return date
