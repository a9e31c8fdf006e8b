"""Reading roster files: .xlsx through python-calamine, .csv in UTF-8 or GBK.

The reader only turns a file into numbered rows of raw cell values and
refuses files that are not rosters.  It knows nothing about fields; see
``students.services.roster_import`` for validation and writing.

Rows are numbered as a spreadsheet shows them (the first row is 1), so an
error message can send the registrar to the exact cell.
"""

import codecs
import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.utils.translation import gettext as _

from . import fields as roll_fields

# A genuine 200,000-student sheet unpacks to ~250 MB of XML; a zip bomb to far more.
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200
HEADER_SEARCH_ROWS = 20
# A PDF can be plain ASCII at its start and would pass for a CSV without a header.
NOT_ROSTER_SIGNATURES = (b"%PDF", b"\x89PNG", b"\xff\xd8\xff", b"GIF8")


class RosterFileError(Exception):
    """The file as a whole cannot be read as a roster: nothing is imported."""

    def __init__(self, message, *, row=None, field=None):
        super().__init__(message)
        self.message = str(message)
        self.row = row
        self.field = field


@dataclass
class RosterTable:
    header_row: int
    # Column index → field key, for the columns the portal understands.
    columns: dict[int, str]
    ignored_columns: list[str]
    rows: Iterator[tuple[int, list]]
    total_rows: int | None = None
    extra: dict = field(default_factory=dict)


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def open_roster(path, *, max_rows: int) -> RosterTable:
    """Open a roster file and locate its header row; raise ``RosterFileError`` if it is none."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(NOT_ROSTER_SIGNATURES):
        raise RosterFileError(_("文件不是表格：请上传 .xlsx 或 .csv 文件"))
    if head.startswith(b"PK\x03\x04"):
        return _open_xlsx(path, max_rows=max_rows)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        # OLE2 container: either an encrypted .xlsx or a legacy .xls.
        raise RosterFileError(_("文件受密码保护或为旧版 .xls 格式：请取消密码并另存为 .xlsx 或 .csv 后再导入"))
    return _open_csv(path)


def _check_zip(path):
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile:
        raise RosterFileError(_("文件已损坏，不是有效的 .xlsx 文件")) from None
    names = {member.filename for member in members}
    if "xl/workbook.xml" not in names:
        raise RosterFileError(_("文件不是 Excel 工作簿（.xlsx）"))
    unpacked = sum(member.file_size for member in members)
    if unpacked > MAX_UNPACKED_BYTES:
        raise RosterFileError(_("文件解压后过大，拒绝读取（可能是压缩炸弹）"))
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > 1024 * 1024 and ratio > MAX_COMPRESSION_RATIO:
            raise RosterFileError(_("文件压缩比异常，拒绝读取（可能是压缩炸弹）"))


def _open_xlsx(path, *, max_rows: int) -> RosterTable:
    import python_calamine

    _check_zip(path)
    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
        sheet = workbook.get_sheet_by_index(0)
    except Exception as exc:  # calamine raises its own error types for broken files
        raise RosterFileError(_("无法读取 Excel 文件：%(error)s") % {"error": exc}) from None
    start_col = sheet.start[1] if sheet.start else 0
    # iter_rows() starts at the sheet's first row but at its first used column.
    rows = enumerate(sheet.iter_rows(), start=1)
    table = _locate_header(rows, start_col=start_col)
    data_rows = (sheet.end[0] + 1 - table.header_row) if sheet.end else 0
    if data_rows > max_rows:
        workbook.close()
        raise RosterFileError(_("文件超过 %(max)s 行，请分批导入") % {"max": max_rows})
    table.total_rows = data_rows
    table.extra["close"] = workbook.close
    return table


def _decode(raw: bytes) -> str:
    if b"\x00" in raw[:4096]:
        raise RosterFileError(_("文件不是表格：请上传 .xlsx 或 .csv 文件"))
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return codecs.decode(raw, encoding)
        except UnicodeDecodeError:
            continue
    raise RosterFileError(_("无法识别 CSV 文件的编码：请另存为 UTF-8 或 GBK"))


def _open_csv(path) -> RosterTable:
    with open(path, "rb") as handle:
        text = _decode(handle.read())
    records = csv.reader(io.StringIO(text, newline=""))
    numbered = ((number, record) for number, record in enumerate(records, start=1))
    # The row limit is enforced while the rows are read (students.services).
    return _locate_header(numbered, start_col=0)


def _locate_header(numbered_rows, *, start_col: int) -> RosterTable:
    """The header is the first of the top rows that names 学号 and 姓名."""
    consumed = 0
    for number, cells in numbered_rows:
        consumed += 1
        keys = [roll_fields.resolve_header(cell) if isinstance(cell, str) else None for cell in cells]
        if "student_number" in keys and "name" in keys:
            columns, ignored, seen = {}, [], set()
            for index, (cell, key) in enumerate(zip(cells, keys, strict=True)):
                if key and key not in seen:
                    columns[index] = key
                    seen.add(key)
                elif str(cell).strip():
                    ignored.append(str(cell).strip())
            missing = [f.code for f in roll_fields.ROLL_FIELDS if f.required and f.key not in seen]
            if missing:
                raise RosterFileError(
                    _("缺少必需的列：%(columns)s") % {"columns": _("、").join(missing)}, row=number, field=missing[0]
                )
            return RosterTable(
                header_row=number,
                columns=columns,
                ignored_columns=ignored,
                rows=numbered_rows,
                extra={"start_col": start_col},
            )
        if consumed >= HEADER_SEARCH_ROWS:
            break
    raise RosterFileError(
        _("未找到表头行：前 %(n)s 行中没有同时包含“学号”(XH) 和“姓名”(XM) 的行") % {"n": HEADER_SEARCH_ROWS},
        row=1,
    )
