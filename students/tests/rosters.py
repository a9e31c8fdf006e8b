"""Build roster files for tests from literal rows (NetBox style)."""

import csv
import datetime
import io

import xlsxwriter

from students.demo import generate_roster, roster_headers


def base_rows(count=3, **kwargs) -> list[dict]:
    return generate_roster(count, with_errors=False, **kwargs)


def write_xlsx(path, header: list, rows: list[list], *, start_row=0, start_col=0, text_cells=True, title=None):
    """Rows are written as given: str as text cells, numbers as number cells, dates as date cells.

    ``title`` adds a merged title row and a blank row above the header, as offices do.
    """
    # in_memory: the same file, without a temporary file for each of its ~10 parts (creating and removing
    # them was nine tenths of writing a small roster).
    workbook = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "in_memory": True})
    sheet = workbook.add_worksheet()
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    if title:
        sheet.merge_range(start_row, start_col, start_row, start_col + len(header) - 1, title)
        start_row += 2
    sheet.write_row(start_row, start_col, header)
    for offset, row in enumerate(rows, start=1):
        for col, value in enumerate(row):
            r, c = start_row + offset, start_col + col
            if isinstance(value, (datetime.date, datetime.datetime)):
                sheet.write_datetime(r, c, value, date_format)
            elif isinstance(value, (int, float)):
                sheet.write_number(r, c, value)
            elif value is None:
                continue
            else:
                sheet.write_string(r, c, value)
    workbook.close()
    return path


def write_csv(path, header: list, rows: list[list], *, encoding="utf-8"):
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def as_table(rows: list[dict], headers: list[str] | None = None) -> tuple[list, list[list]]:
    headers = headers or roster_headers()
    return headers, [[row.get(h, "") for h in headers] for row in rows]


def write_xls(path, header: list, rows: list[list], *, title: str | None = None):
    """An Excel 97–2003 workbook (BIFF8), as the CHSI school platform still exports; numbers stay number cells."""
    import xlwt

    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("Sheet1")
    date_style = xlwt.easyxf(num_format_str="yyyy-mm-dd")
    top = 0
    if title:
        sheet.write_merge(0, 0, 0, len(header) - 1, title)
        top = 2  # a title row and a blank row above the header
    for col, name in enumerate(header):
        sheet.write(top, col, name)
    for offset, row in enumerate(rows, start=1):
        for col, value in enumerate(row):
            if isinstance(value, datetime.date):
                sheet.write(top + offset, col, value, date_style)
            elif value not in (None, ""):
                sheet.write(top + offset, col, value)
    book.save(str(path))
    return path


def write_dbf(path, header: list, rows: list[list], *, codepage=0x7A, encoding="gbk", types: dict | None = None):
    """A dBase III table as admission offices exchange rosters: field names are the CHSI codes.

    ``types`` maps a field to ``"D"`` (dates, written YYYYMMDD) or ``"N"``; the rest are
    character fields wide enough for their longest value.
    """
    import struct

    types = types or {}
    encoded = [[("" if value is None else value) for value in row] for row in rows]
    fields = []
    for col, name in enumerate(header):
        kind = types.get(name, "C")
        if kind == "D":
            length = 8
        else:
            length = max([len(str(row[col]).encode(encoding)) for row in encoded] + [1])
        fields.append((name, kind, length))
    header_length = 32 + 32 * len(fields) + 1
    record_length = 1 + sum(length for _name, _kind, length in fields)
    today = datetime.date.today()
    head = bytearray(struct.pack("<BBBBIHH", 0x03, today.year - 1900, today.month, today.day, len(rows),
                                 header_length, record_length) + bytes(20))  # fmt: skip
    head[29] = codepage
    for name, kind, length in fields:
        head += name.encode("ascii").ljust(11, b"\x00") + kind.encode() + bytes(4) + bytes([length, 0]) + bytes(14)
    head += b"\r"
    body = bytearray()
    for row in encoded:
        body += b" "
        for (_name, kind, length), value in zip(fields, row, strict=True):
            if kind == "D":
                text = value.strftime("%Y%m%d") if isinstance(value, datetime.date) else str(value)
                body += text.encode("ascii").ljust(8)
            elif kind == "N":
                body += str(value).encode("ascii").rjust(length)
            else:
                body += str(value).encode(encoding).ljust(length)
    with open(path, "wb") as handle:
        handle.write(bytes(head) + bytes(body) + b"\x1a")
    return path


def write_text(path, header: list, rows: list[list], *, encoding="utf-16", delimiter="\t", title: str | None = None):
    """Excel's "Unicode text" (UTF-16 with BOM, tabs) or any delimited text in the given encoding."""
    out = io.StringIO(newline="")
    if title:
        out.write(title + "\r\n\r\n")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    with open(path, "wb") as handle:
        handle.write(out.getvalue().encode(encoding))
    return path
