"""Build roster files for tests from literal rows (NetBox style)."""

import csv
import datetime

import xlsxwriter

from students.demo import generate_roster, roster_headers


def base_rows(count=3, **kwargs) -> list[dict]:
    return generate_roster(count, with_errors=False, **kwargs)


def write_xlsx(path, header: list, rows: list[list], *, start_row=0, start_col=0, text_cells=True):
    """Rows are written as given: str as text cells, numbers as number cells, dates as date cells."""
    workbook = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False})
    sheet = workbook.add_worksheet()
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
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
