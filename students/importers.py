"""Reading roster files in every format a registrar office receives.

``.xlsx`` and ``.xls`` through python-calamine; DBF (dBase III/IV, FoxPro) with
the small reader below; text as CSV or tab-separated (Excel's "Unicode text"
is UTF-16 with tabs) in UTF-8, UTF-16 or GBK/GB18030.  The reader only turns a
file into numbered rows of raw cell values and refuses files that are not
rosters.  It knows nothing about fields beyond finding the header; see
``students.services.roster_import`` for validation and writing.

Rows are numbered as a spreadsheet shows them (the first row is 1), so an
error message can send the registrar to the exact cell.  A DBF has no rows on
screen: its field names count as row 1 and its first record as row 2, so the
report reads the same whatever the format (docs/domain.md §2).
"""

import codecs
import csv
import datetime
import io
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.utils.translation import gettext as _

from . import fields as roll_fields
from . import normalize

# A genuine 200,000-student sheet unpacks to ~250 MB of XML; a zip bomb to far more.
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200
HEADER_SEARCH_ROWS = 20
# A PDF can be plain ASCII at its start and would pass for a CSV without a header.
NOT_ROSTER_SIGNATURES = (b"%PDF", b"\x89PNG", b"\xff\xd8\xff", b"GIF8")
OLE2_SIGNATURE = b"\xd0\xcf\x11\xe0"

# Text encodings the upload form and the command offer as an override.
ENCODINGS = ("gb18030", "utf-8", "utf-16", "big5")


class RosterFileError(Exception):
    """The file as a whole cannot be read as a roster: nothing is imported."""

    def __init__(self, message, *, row=None, field=None, headers=None):
        super().__init__(message)
        self.message = str(message)
        self.row = row
        self.field = field
        # When no header row was found: the likeliest one's cells, to offer a column mapping.
        self.headers = headers or []


@dataclass
class RosterTable:
    header_row: int
    # Column index → field key, for the columns the portal understands.
    columns: dict[int, str]
    ignored_columns: list[str]
    rows: Iterator[tuple[int, list]]
    total_rows: int | None = None
    # Column index → decoder of an admission code column (XBDM 1 → 男).
    decoders: dict[int, Callable] = field(default_factory=dict)
    # Column index → the header text, for formats whose columns have names, not letters.
    column_names: dict[int, str] | None = None
    warnings: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def where(self, index: int) -> str:
        """How an error names a column: ``C 列`` in a sheet, ``SFZH 字段`` in a DBF."""
        if self.column_names is not None:
            return _("%(name)s 字段") % {"name": self.column_names.get(index, "")}
        return _("%(col)s 列") % {"col": column_letter(index + self.extra.get("start_col", 0))}


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


# ----------------------------------------------------------------------------
# Admission code columns (docs/domain.md §3): decoded to the text CHSI stores
# ----------------------------------------------------------------------------


def _code(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return normalize.compact(value)


def _table_decoder(table: dict[str, str], what: str, width: int = 0) -> Callable:
    def decode(value):
        code = _code(value)
        if not code:
            return ""
        key = code.zfill(width) if width and code.isdigit() else code
        if key not in table:
            raise ValueError(_("%(what)s代码 %(code)s 不在代码表中") % {"what": what, "code": code})
        return table[key]

    return decode


_ETHNIC_CODES = {f"{number:02d}": name for number, name in enumerate(normalize.ETHNIC_GROUPS, start=1)}
_ETHNIC_CODES.update({"97": "其他", "98": "外国血统中国籍人士"})
_POLITICAL_CODES = {f"{number:02d}": name for number, name in enumerate(normalize.POLITICAL_SHORT_NAMES, start=1)}

# Header (as admission DBFs and sheets name it) → (field key, decoder).
CODE_COLUMNS: dict[str, tuple[str, Callable]] = {
    "XBDM": ("gender", _table_decoder({"1": "男", "2": "女"}, _("性别"))),
    "MZDM": ("ethnicity", _table_decoder(_ETHNIC_CODES, _("民族"), width=2)),
    "MZM": ("ethnicity", _table_decoder(_ETHNIC_CODES, _("民族"), width=2)),
    "CCDM": ("level", _table_decoder({"1": "本科", "2": "专科"}, _("层次"))),
    "ZZMMDM": ("political_status", _table_decoder(_POLITICAL_CODES, _("政治面貌"), width=2)),
    "ZZMMM": ("political_status", _table_decoder(_POLITICAL_CODES, _("政治面貌"), width=2)),
}


def _resolve(cell, mapping: dict | None = None) -> tuple[str | None, Callable | None]:
    if not isinstance(cell, str):
        return None, None
    if mapping:
        mapped = mapping.get(roll_fields.header_key(cell))
        if mapped is not None:
            return (mapped or None), None  # "" = the registrar chose to ignore the column
    coded = CODE_COLUMNS.get(normalize.compact(cell).upper())
    if coded:
        return coded
    return roll_fields.resolve_header(cell), None


def recognised_header(cell) -> bool:
    """Whether the portal understands a header without a mapping."""
    return _resolve(cell)[0] is not None


# ----------------------------------------------------------------------------
# Opening a file
# ----------------------------------------------------------------------------


def open_roster(path, *, max_rows: int, encoding: str | None = None, mapping: dict | None = None) -> RosterTable:
    """Open a roster file and locate its header row; raise ``RosterFileError`` if it is none.

    ``encoding`` overrides what a text file or a DBF's code page byte says;
    ``mapping`` (a saved preset) names columns whose headers the portal does not know.
    """
    with open(path, "rb") as handle:
        head = handle.read(64)
        size = handle.seek(0, io.SEEK_END)
    if head.startswith(NOT_ROSTER_SIGNATURES):
        raise RosterFileError(_("文件不是表格：请上传 .xlsx、.xls、.dbf、.csv 或制表符分隔的文本文件"))
    if head.startswith(b"PK\x03\x04"):
        _check_zip(path)
        return _open_workbook(path, max_rows=max_rows, mapping=mapping)
    if head.startswith(OLE2_SIGNATURE):
        # An OLE2 container is a legacy .xls or an encrypted .xlsx.
        return _open_workbook(path, max_rows=max_rows, legacy=True, mapping=mapping)
    if _looks_like_dbf(head, size):
        return _open_dbf(path, max_rows=max_rows, encoding=encoding, mapping=mapping)
    return _open_text(path, encoding=encoding, mapping=mapping)


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


def _open_workbook(path, *, max_rows: int, legacy: bool = False, mapping=None) -> RosterTable:
    import python_calamine

    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
        with workbook:  # the sheet reads on without the workbook, whose shared strings (20 MB at 200,000 rows) go
            sheet = workbook.get_sheet_by_index(0)
    except Exception as exc:  # calamine raises its own error types for broken files
        if legacy:
            raise RosterFileError(
                _("无法读取该 .xls 文件：文件可能受密码保护或已损坏，请取消密码后另存为 .xlsx 再导入")
            ) from None
        raise RosterFileError(_("无法读取 Excel 文件：%(error)s") % {"error": exc}) from None
    start_col = sheet.start[1] if sheet.start else 0
    # iter_rows() starts at the sheet's first row but at its first used column.
    rows = enumerate(sheet.iter_rows(), start=1)
    table = _locate_header(rows, start_col=start_col, mapping=mapping)
    data_rows = (sheet.end[0] + 1 - table.header_row) if sheet.end else 0
    if data_rows > max_rows:
        raise RosterFileError(_("文件超过 %(max)s 行，请分批导入") % {"max": max_rows})
    table.total_rows = data_rows
    return table


# ----------------------------------------------------------------------------
# Text: CSV and tab-separated, UTF-8 / UTF-16 / GBK
# ----------------------------------------------------------------------------


def _decode(raw: bytes, encoding: str | None) -> str:
    if encoding:
        try:
            return codecs.decode(raw, "utf-16" if encoding == "utf-16" else encoding)
        except (UnicodeDecodeError, LookupError):
            raise RosterFileError(_("文件不能按所选编码 %(encoding)s 读取") % {"encoding": encoding}) from None
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode text" (Unicode 文本) is UTF-16 with a byte order mark.
        try:
            return codecs.decode(raw, "utf-16")
        except UnicodeDecodeError:
            raise RosterFileError(_("UTF-16 文本文件已损坏")) from None
    if b"\x00" in raw[:4096]:
        raise RosterFileError(_("文件不是表格：请上传 .xlsx、.xls、.dbf、.csv 或制表符分隔的文本文件"))
    for candidate in ("utf-8-sig", "gb18030"):
        try:
            return codecs.decode(raw, candidate)
        except UnicodeDecodeError:
            continue
    raise RosterFileError(_("无法识别文本文件的编码：请另存为 UTF-8 或 GBK"))


def _delimiter(text: str) -> str:
    """Tabs when the top lines hold more tabs than commas (Excel's text export), else commas."""
    top = text[:20000].splitlines()[:HEADER_SEARCH_ROWS]
    tabs = sum(line.count("\t") for line in top)
    commas = sum(line.count(",") for line in top)
    return "\t" if tabs > commas else ","


def _open_text(path, *, encoding: str | None, mapping=None) -> RosterTable:
    with open(path, "rb") as handle:
        text = _decode(handle.read(), encoding)
    records = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    numbered = ((number, record) for number, record in enumerate(records, start=1))
    # The row limit is enforced while the rows are read (students.services).
    return _locate_header(numbered, start_col=0, mapping=mapping)


# ----------------------------------------------------------------------------
# DBF: dBase III/IV, FoxPro, Visual FoxPro
# ----------------------------------------------------------------------------

_DBF_VERSIONS = frozenset({0x02, 0x03, 0x04, 0x05, 0x30, 0x31, 0x32, 0x43, 0x63, 0x83, 0x8B, 0x8E, 0xCB, 0xF5, 0xFB})
# Language driver byte (offset 29) → codec.  GBK files are read as GB18030, its superset.
_DBF_CODEPAGES = {
    0x01: "cp437", 0x02: "cp850", 0x03: "cp1252", 0x57: "cp1252", 0x58: "cp1252", 0x59: "cp1252",
    0x64: "cp852", 0x65: "cp866", 0x66: "cp865", 0x78: "big5", 0x79: "cp949", 0x7A: "gb18030",
    0x7B: "cp932", 0x4D: "gb18030", 0x4E: "cp949", 0x4F: "big5", 0xC8: "cp1250", 0xC9: "cp1251",
}  # fmt: skip
_CHINESE_CODECS = {"gb18030", "big5"}


@dataclass(frozen=True)
class _DbfField:
    name: str
    type: str
    offset: int
    length: int


def _looks_like_dbf(head: bytes, size: int) -> bool:
    """A DBF header is binary; checking its arithmetic tells it from text reliably."""
    if len(head) < 32 or head[0] not in _DBF_VERSIONS:
        return False
    month, day = head[2], head[3]
    records, header_length, record_length = struct.unpack("<IHH", head[4:12])
    return (
        1 <= month <= 12
        and 1 <= day <= 31
        and header_length >= 65
        and record_length >= 2
        and size >= header_length + records * record_length
    )


def _dbf_fields(header: bytes) -> list[_DbfField]:
    fields, offset = [], 1  # byte 0 of a record is its deletion mark
    for start in range(32, len(header) - 31, 32):
        if header[start] == 0x0D:
            break
        descriptor = header[start : start + 32]
        name = descriptor[:11].split(b"\x00")[0].decode("ascii", "replace").strip()
        kind, length = chr(descriptor[11]), descriptor[16]
        if kind == "C" and descriptor[17]:
            length += descriptor[17] * 256  # FoxPro's long character fields
        fields.append(_DbfField(name, kind, offset, length))
        offset += length
    return fields


def _dbf_value(raw: bytes, kind: str, codec: str):
    if kind == "D":
        text = raw.decode("ascii", "replace").strip()
        if not text:
            return ""
        try:
            return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        except ValueError:
            return text  # reported by the field's normaliser with the row number
    if kind in "NFL":
        return raw.decode("ascii", "replace").strip()
    return raw.decode(codec).rstrip(" \x00")


def _dbf_codec(page: int, fields: list[_DbfField], first_record: bytes, override: str | None) -> tuple[str, str]:
    """The codec to read text fields with, and a warning when the code page byte was wrong."""
    if override:
        return override, ""
    declared = _DBF_CODEPAGES.get(page)
    if declared in _CHINESE_CODECS:
        return declared, ""
    # No code page, or a western one: Chinese rosters are GBK whatever the byte says.
    names = [f for f in fields if f.type == "C" and roll_fields.resolve_header(f.name) == "name"]
    sample = b"".join(first_record[f.offset : f.offset + f.length] for f in names)
    try:
        decoded = sample.decode("gb18030")
    except UnicodeDecodeError:
        return declared or "gb18030", ""
    if declared and any("\u4e00" <= char <= "\u9fff" for char in decoded):
        return "gb18030", _("DBF 文件的代码页字节（0x%(page)02X）与内容不符，已按 GBK 读取") % {"page": page}
    return declared or "gb18030", ""


def _open_dbf(path, *, max_rows: int, encoding: str | None, mapping=None) -> RosterTable:
    handle = open(path, "rb")  # closed by the table's close()
    try:
        prefix = handle.read(32)
        records, header_length, record_length = struct.unpack("<IHH", prefix[4:12])
        header = prefix + handle.read(header_length - 32)
        fields = _dbf_fields(header)
        if not fields:
            raise RosterFileError(_("DBF 文件没有字段定义"))
        if records > max_rows:
            raise RosterFileError(_("文件超过 %(max)s 行，请分批导入") % {"max": max_rows})
        first = handle.read(record_length)
        handle.seek(header_length)
        codec, warning = _dbf_codec(header[29], fields, first, encoding)
    except Exception:
        handle.close()
        raise

    def rows():
        for number in range(2, records + 2):
            record = handle.read(record_length)
            if len(record) < record_length or record[:1] == b"\x1a":
                return
            if record[:1] == b"*":
                continue  # deleted in dBase: not part of the roster
            try:
                yield number, [_dbf_value(record[f.offset : f.offset + f.length], f.type, codec) for f in fields]
            except UnicodeDecodeError:
                raise RosterFileError(
                    _("第 %(row)s 条记录不能按 %(codec)s 解码：请在导入时选择正确的编码")
                    % {"row": number, "codec": codec},
                    row=number,
                ) from None

    header_cells = [f.name for f in fields]
    try:
        table = _locate_header(iter([(1, header_cells)]), start_col=0, mapping=mapping)
    except RosterFileError:
        handle.close()
        raise
    table.rows = rows()
    table.total_rows = records
    table.column_names = dict(enumerate(header_cells))
    table.extra["close"] = handle.close
    if warning:
        table.warnings.append({"row": None, "field": None, "code": "dbf_codepage", "message": str(warning)})
    return table


# ----------------------------------------------------------------------------
# The header row
# ----------------------------------------------------------------------------


def _locate_header(numbered_rows, *, start_col: int, mapping: dict | None = None) -> RosterTable:
    """The header is the first of the top rows that names 学号 and 姓名 (title rows above it are skipped)."""
    consumed, likeliest = 0, []
    for number, cells in numbered_rows:
        consumed += 1
        texts = [str(cell).strip() for cell in cells if isinstance(cell, str) and cell.strip()]
        if len(texts) > len(likeliest):
            likeliest = texts
        resolved = [_resolve(cell, mapping) for cell in cells]
        keys = [key for key, _decoder in resolved]
        if "student_number" in keys and "name" in keys:
            columns, decoders, ignored, seen = {}, {}, [], set()
            for index, (cell, (key, decoder)) in enumerate(zip(cells, resolved, strict=True)):
                if key and key not in seen:
                    columns[index] = key
                    if decoder:
                        decoders[index] = decoder
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
                decoders=decoders,
                extra={"start_col": start_col},
            )
        if consumed >= HEADER_SEARCH_ROWS:
            break
    raise RosterFileError(
        _("未找到表头行：前 %(n)s 行中没有同时包含“学号”(XH) 和“姓名”(XM) 的行") % {"n": HEADER_SEARCH_ROWS},
        row=1,
        headers=likeliest,
    )
