"""Excel exports: each report yields rows, one shared writer makes the .xlsx.

The writer uses openpyxl's write-only mode (flat memory), writes every
string as a text cell (text a student typed that starts with ``=`` never
becomes a formula), keeps identifiers (学号, 证件号码, 考生号) as text with the
Text number format so Excel never turns them into numbers, strips characters
XML cannot hold, and names the exporter and the time in the first rows.

Every list but the registrar's CHSI correction list shows ID numbers masked.
"""

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

from students import fields as roll_fields
from students.idnumbers import mask
from students.models import ClassGroup, ImportFinding

from ..models import Campaign, Checklist, Flag

TEXT_FORMAT = "@"
# Characters that make a spreadsheet read typed text as a formula (OWASP CSV injection list).
FORMULA_TRIGGERS = frozenset("=+-@\t\r")
_ERROR_CODES = frozenset(ERROR_CODES)
# Excel refuses these in sheet titles.
_SHEET_TITLE_FORBIDDEN = re.compile(r"[\\/*?:\[\]]")


@dataclass
class Sheet:
    title: str
    header: list[str]
    rows: Iterable[list]
    # Column indexes holding identifiers, written with the Text number format.
    text_columns: frozenset = frozenset()


class Exporter:
    identifier = ""
    verbose_name = ""
    # Always built inside the request (one class is a few dozen rows).
    inline = False

    def sheets(self) -> Iterator[Sheet]:
        raise NotImplementedError

    def estimate(self) -> int:
        """How many data rows the export will have, from one COUNT query."""
        raise NotImplementedError

    def filename(self) -> str:
        return f"{self.identifier}-{timezone.localtime():%Y%m%d-%H%M}.xlsx"


class _CellMaker:
    """Turns row values into what ``sheet.append`` takes, cheaply.

    Plain values go through as they are: openpyxl then reuses one cell object
    for them.  Only strings that need protection (formula or error lookalikes)
    or the Text number format get a cell object of their own.
    """

    def __init__(self, sheet):
        self.sheet = sheet

    def __call__(self, value, text: bool = False):
        if value is None:
            return None
        if isinstance(value, Promise):
            value = str(value)
        if not isinstance(value, str):
            return value
        if ILLEGAL_CHARACTERS_RE.search(value):
            value = ILLEGAL_CHARACTERS_RE.sub("", value)
        risky = value[:1] in FORMULA_TRIGGERS or value in _ERROR_CODES
        if not (risky or text):
            return value
        cell = WriteOnlyCell(self.sheet, value=value)
        # Assigning "=…" makes openpyxl store a formula (and "#N/A" an error); force plain text.
        cell.data_type = "s"
        if text:
            cell.number_format = TEXT_FORMAT
        if risky:
            # Excel's leading apostrophe: the text stays text even when someone edits the cell.
            cell.quotePrefix = True
        return cell

    def styled(self, value, font):
        cell = WriteOnlyCell(self.sheet, value=ILLEGAL_CHARACTERS_RE.sub("", str(value)))
        cell.data_type = "s"
        cell.font = font
        return cell


def _sheet_title(title) -> str:
    return _SHEET_TITLE_FORBIDDEN.sub("", ILLEGAL_CHARACTERS_RE.sub("", str(title)))[:31] or "Sheet"


def write_xlsx(exporter: Exporter, target, *, exported_by) -> int:
    """Write the export to ``target`` (a path or binary file); returns the number of data rows."""
    workbook = Workbook(write_only=True)
    bold = Font(bold=True)
    total = 0
    who = exported_by.get_full_name() or exported_by.get_username()
    if who != exported_by.get_username():
        who = _("%(name)s（%(username)s）") % {"name": who, "username": exported_by.get_username()}
    stamp = _("导出人：%(who)s    导出时间：%(time)s") % {"who": who, "time": f"{timezone.localtime():%Y-%m-%d %H:%M}"}
    for spec in exporter.sheets():
        sheet = workbook.create_sheet(title=_sheet_title(spec.title))
        make = _CellMaker(sheet)
        sheet.append([make.styled(exporter.verbose_name, bold)])
        sheet.append([make(stamp)])
        sheet.append([])
        sheet.append([make.styled(name, bold) for name in spec.header])
        text_columns = spec.text_columns
        width = len(spec.header)
        # Per-column flag computed once: the loop below runs once per cell.
        is_text = [index in text_columns for index in range(width)]
        append = sheet.append
        for row in spec.rows:
            append([make(value, text) for value, text in zip(row, is_text, strict=True)])
            total += 1
    workbook.save(target)
    return total


def _state_labels() -> dict[str, str]:
    # Choice labels are lazy; openpyxl cannot write a lazy string.
    return {value: str(label) for value, label in Checklist.State.choices}


def _field_label(code: str) -> str:
    field = roll_fields.BY_CODE.get(code)
    return str(field.label) if field else code


def _masked_if_id(code: str, value: str) -> str:
    # Lists outside the registrar's correction list never carry a full ID number.
    return mask(value) if code == "SFZH" else value


# ---------------------------------------------------------------------------
# 1. Class sign-off sheet (核对登记表, seed 003)
# ---------------------------------------------------------------------------


class ClassSignOffSheet(Exporter):
    identifier = "class-sign-off"
    inline = True

    def __init__(self, *, campaign: Campaign, class_group: ClassGroup):
        self.campaign, self.class_group = campaign, class_group
        self.verbose_name = _("%(campaign)s 核对登记表 · %(cls)s") % {
            "campaign": campaign.name,
            "cls": class_group.name,
        }

    def filename(self) -> str:
        return f"sign-off-{self.class_group.pk}-{timezone.localtime():%Y%m%d}.xlsx"

    def estimate(self) -> int:
        return Checklist.objects.filter(campaign=self.campaign, student__class_group=self.class_group).count()

    def sheets(self):
        labels = _state_labels()
        checklists = (
            Checklist.objects.filter(campaign=self.campaign, student__class_group=self.class_group)
            .order_by("student__student_number")
            .values_list("student__student_number", "student__name", "state", "finished_at")
        )

        def students():
            for number, (student_number, name, state, finished_at) in enumerate(checklists, start=1):
                finished = timezone.localtime(finished_at).strftime("%Y-%m-%d %H:%M") if finished_at else ""
                yield [number, student_number, name, labels[state], finished]

        yield Sheet(
            _("核对登记表"), [_("序号"), _("学号"), _("姓名"), _("状态"), _("确认时间")], students(), frozenset({1})
        )
        flags = (
            Flag.objects.filter(checklist__campaign=self.campaign, checklist__student__class_group=self.class_group)
            .exclude(status=Flag.Status.WITHDRAWN)
            .select_related("checklist__student")
            .order_by("checklist__student__student_number", "field_code")
        )
        yield Sheet(
            _("信息错误反馈"),
            [_("学号"), _("姓名"), _("字段"), _("正确内容"), _("说明"), _("联系电话"), _("处理状态")],
            (
                [
                    f.checklist.student.student_number,
                    f.checklist.student.name,
                    _field_label(f.field_code),
                    _masked_if_id(f.field_code, f.claimed_value),
                    f.explanation,
                    f.checklist.student.phone,
                    f.get_status_display(),
                ]
                for f in flags
            ),
            frozenset({0, 3}),
        )


# ---------------------------------------------------------------------------
# 2. Department error list (学院新生学籍信息有误学生名单, seed 002)
# ---------------------------------------------------------------------------


class DepartmentErrorList(Exporter):
    identifier = "department-errors"

    def __init__(self, *, campaign: Campaign, departments: QuerySet):
        self.campaign, self.departments = campaign, departments
        self.verbose_name = _("%(campaign)s 学籍信息有误学生名单") % {"campaign": campaign.name}

    def _flags(self):
        return Flag.objects.filter(
            checklist__campaign=self.campaign, checklist__student__department__in=self.departments
        ).exclude(status=Flag.Status.WITHDRAWN)

    def estimate(self) -> int:
        return self._flags().count()

    def sheets(self):
        flags = (
            self._flags()
            .select_related("checklist__student__department")
            .prefetch_related("evidence")
            .order_by("checklist__student__department__name", "checklist__student__student_number", "field_code")
        )

        def rows():
            for flag in flags.iterator(chunk_size=2000):
                student = flag.checklist.student
                yield [
                    student.department.name,
                    student.class_name,
                    student.student_number,
                    student.name,
                    student.masked_id_number,
                    _field_label(flag.field_code),
                    _masked_if_id(flag.field_code, flag.recorded_value),
                    _masked_if_id(flag.field_code, flag.claimed_value),
                    flag.explanation,
                    len(flag.evidence.all()),
                    student.phone,
                    flag.get_status_display(),
                ]

        yield Sheet(
            _("有误学生名单"),
            [
                _("院系"), _("班级"), _("学号"), _("姓名"), _("证件号码"), _("有误字段"), _("学信网上的值"),
                _("正确的值"), _("说明"), _("证明材料数"), _("联系电话"), _("处理状态"),
            ],
            rows(),
            # The two value columns hold identifiers when the field is 学号 or 证件号码.
            frozenset({2, 4, 6, 7}),
        )  # fmt: skip


# ---------------------------------------------------------------------------
# 3. CHSI correction list (for the registrar, one sheet per authority)
# ---------------------------------------------------------------------------


class CHSICorrectionList(Exporter):
    """What the registrar keys into the school-side platform: CHSI codes, old and new values.

    Columns: XH, XM and SFZH (the CHSI codes identifying the student), 字段代码
    (the corrected field's CHSI code, e.g. CSRQ), 字段, 原值 (the value on
    CHSI), 更正值 (the value to enter), 说明, 状态.  The one export that
    carries full ID numbers: the platform needs them.
    """

    identifier = "chsi-corrections"
    STATUSES = (Flag.Status.FORWARDED, Flag.Status.ACCEPTED, Flag.Status.SUBMITTED_TO_CHSI)

    @staticmethod
    def header() -> list[str]:
        # XH, XM and SFZH are CHSI's codes and stay as they are; the rest are labels.
        return ["XH", "XM", "SFZH", _("字段代码"), _("字段"), _("原值"), _("更正值"), _("说明"), _("状态")]

    def __init__(self, *, campaign: Campaign | None = None):
        self.campaign = campaign
        self.verbose_name = _("学信网学籍信息更正清单")
        if campaign:
            self.verbose_name = f"{self.verbose_name} · {campaign.name}"

    def _flags(self):
        flags = Flag.objects.filter(status__in=self.STATUSES)
        if self.campaign:
            flags = flags.filter(checklist__campaign=self.campaign)
        return flags

    def estimate(self) -> int:
        return self._flags().count()

    def sheets(self):
        titles = {
            roll_fields.Authority.SCHOOL: _("学校可直接修改"),
            roll_fields.Authority.PROVINCE: _("需省级审核"),
            roll_fields.Authority.NONE: _("其他"),
        }
        # Authority is configured per school (settings), so split by field code
        # and stream each sheet with its own query instead of holding every flag.
        codes = {authority: [] for authority in titles}
        for field in roll_fields.ROLL_FIELDS:
            codes[field.authority].append(field.code)
        for authority, title in titles.items():
            flags = self._flags().filter(field_code__in=codes[authority])
            if authority == roll_fields.Authority.NONE and not flags.exists():
                continue
            yield Sheet(title, self.header(), self._rows(flags), frozenset({0, 2, 5, 6}))

    @staticmethod
    def _rows(flags):
        flags = flags.select_related("checklist__student").order_by("checklist__student__student_number", "field_code")
        for f in flags.iterator(chunk_size=2000):
            student = f.checklist.student
            yield [
                student.student_number,
                student.name,
                student.id_number,
                f.field_code,
                _field_label(f.field_code),
                f.recorded_value,
                f.claimed_value,
                f.explanation,
                f.get_status_display(),
            ]


# ---------------------------------------------------------------------------
# 4. Unverified students per department
# ---------------------------------------------------------------------------


class UnverifiedStudents(Exporter):
    identifier = "unverified"

    def __init__(self, *, campaign: Campaign, departments: QuerySet):
        self.campaign, self.departments = campaign, departments
        self.verbose_name = _("%(campaign)s 未完成核对学生名单") % {"campaign": campaign.name}

    def _checklists(self):
        return Checklist.objects.filter(campaign=self.campaign, student__department__in=self.departments).exclude(
            state__in=Checklist.FINISHED
        )

    def estimate(self) -> int:
        return self._checklists().count()

    def sheets(self):
        labels = _state_labels()
        rows = (
            self._checklists()
            .order_by("student__department__name", "student__class_name", "student__student_number")
            .values_list(
                "student__department__name",
                "student__class_name",
                "student__student_number",
                "student__name",
                "state",
                "student__phone",
            )
        )
        yield Sheet(
            _("未完成核对"),
            [_("院系"), _("班级"), _("学号"), _("姓名"), _("状态"), _("联系电话")],
            (
                [dept, cls, number, name, labels[state], phone]
                for dept, cls, number, name, state, phone in rows.iterator(chunk_size=5000)
            ),
            frozenset({2}),
        )


# ---------------------------------------------------------------------------
# 5. Data-quality findings (the registrar's data-quality page)
# ---------------------------------------------------------------------------


class Findings(Exporter):
    identifier = "findings"

    def __init__(self, *, departments: QuerySet, kind: str = ""):
        self.departments, self.kind = departments, kind
        self.verbose_name = _("学籍数据问题清单")
        if kind:
            self.verbose_name = f"{self.verbose_name} · {ImportFinding.Kind(kind).label}"

    def _findings(self):
        findings = ImportFinding.objects.filter(student__department__in=self.departments)
        if self.kind:
            findings = findings.filter(kind=self.kind)
        return findings

    def estimate(self) -> int:
        return self._findings().count()

    def sheets(self):
        kinds = {value: str(label) for value, label in ImportFinding.Kind.choices}
        rows = (
            self._findings()
            .order_by("student__department__name", "student__class_name", "student__student_number", "field_code")
            .values_list(
                "student__department__name",
                "student__class_name",
                "student__student_number",
                "student__name",
                "field_code",
                "kind",
                "message",
            )
        )
        yield Sheet(
            _("数据问题"),
            [_("院系"), _("班级"), _("学号"), _("姓名"), _("字段"), _("类型"), _("说明")],
            (
                [dept, cls, number, name, _field_label(code), kinds.get(kind, kind), message]
                for dept, cls, number, name, code, kind, message in rows.iterator(chunk_size=5000)
            ),
            frozenset({2}),
        )


# ---------------------------------------------------------------------------
# 6. The access log (registrar staff)
# ---------------------------------------------------------------------------


class AccessLogExport(Exporter):
    identifier = "access-log"

    def __init__(self, *, action: str = "", username: str = "", student_number: str = ""):
        from students.models import AccessEvent

        self.events = AccessEvent.objects.all()
        if action:
            self.events = self.events.filter(action=action)
        if username:
            self.events = self.events.filter(user__username=username)
        if student_number:
            self.events = self.events.filter(student__student_number=student_number)
        self.verbose_name = _("个人信息访问日志")

    def estimate(self) -> int:
        return self.events.count()

    def sheets(self):
        from students.models import AccessEvent

        actions = {value: str(label) for value, label in AccessEvent.Action.choices}
        rows = self.events.order_by("-at", "-id").values_list(
            "at", "user__username", "user__first_name", "action", "student__student_number", "target", "detail",
            "rows", "ip_address",
        )  # fmt: skip
        yield Sheet(
            _("访问日志"),
            [_("时间"), _("账号"), _("姓名"), _("操作"), _("学号"), _("对象"), _("说明"), _("行数"), _("来源地址")],
            (
                [
                    timezone.localtime(at).strftime("%Y-%m-%d %H:%M:%S"),
                    username,
                    name,
                    actions.get(action, action),
                    number,
                    target,
                    detail,
                    rows,
                    ip,
                ]
                for at, username, name, action, number, target, detail, rows, ip in rows.iterator(chunk_size=5000)
            ),  # fmt: skip
            frozenset({1, 4}),
        )


# ---------------------------------------------------------------------------
# 7. A campaign's records, kept before retention deletes the evidence
# ---------------------------------------------------------------------------


class CampaignRecords(Exporter):
    """Every checklist, answer and flag of a campaign (ID numbers masked)."""

    identifier = "campaign-records"

    def __init__(self, *, campaign: Campaign):
        self.campaign = campaign
        self.verbose_name = _("%(campaign)s 核对记录") % {"campaign": campaign.name}

    def estimate(self) -> int:
        return Checklist.objects.filter(campaign=self.campaign).count()

    def sheets(self):
        from ..models import FieldCheck

        labels = _state_labels()
        stamp = _local_stamp
        checklists = (
            Checklist.objects.filter(campaign=self.campaign)
            .order_by("student__student_number")
            .values_list(
                "student__student_number", "student__name", "student__department__name", "student__class_name",
                "state", "attested_at", "finished_at", "last_activity_at",
            )
        )  # fmt: skip
        yield Sheet(
            _("核对记录"),
            [
                _("学号"),
                _("姓名"),
                _("院系"),
                _("班级"),
                _("状态"),
                _("确认全部正确时间"),
                _("完成时间"),
                _("最近操作"),
            ],
            (
                [number, name, dept, cls, str(labels[state]), stamp(attested), stamp(finished), stamp(active)]
                for number, name, dept, cls, state, attested, finished, active in checklists.iterator(chunk_size=5000)
            ),
            frozenset({0}),
        )
        answer_labels = dict(FieldCheck.Status.choices)
        answers = (
            FieldCheck.objects.filter(checklist__campaign=self.campaign)
            .order_by("checklist__student__student_number", "field_code")
            .values_list(
                "checklist__student__student_number", "field_code", "status", "seen_value", "answered_at",
                "answered_by__username", "is_proxy",
            )
        )  # fmt: skip
        yield Sheet(
            _("逐项核对"),
            [_("学号"), _("字段"), _("结果"), _("核对时的值"), _("核对时间"), _("操作人"), _("代为登记")],
            (
                [
                    number,
                    _field_label(code),
                    str(answer_labels.get(status, status)),
                    seen,
                    stamp(at),
                    by or "",
                    _("是") if proxy else "",
                ]
                for number, code, status, seen, at, by, proxy in answers.iterator(chunk_size=5000)
            ),  # fmt: skip
            frozenset({0}),
        )
        flags = (
            Flag.objects.filter(checklist__campaign=self.campaign)
            .select_related("checklist__student")
            .prefetch_related("evidence")
            .order_by("checklist__student__student_number", "field_code", "created_at")
        )
        yield Sheet(
            _("报错"),
            [
                _("学号"),
                _("字段"),
                _("学信网上的值"),
                _("正确的值"),
                _("说明"),
                _("状态"),
                _("证明材料数"),
                _("提交时间"),
            ],
            (
                [
                    flag.checklist.student.student_number,
                    _field_label(flag.field_code),
                    _masked_if_id(flag.field_code, flag.recorded_value),
                    _masked_if_id(flag.field_code, flag.claimed_value),
                    flag.explanation,
                    flag.get_status_display(),
                    len(flag.evidence.all()),
                    stamp(flag.created_at),
                ]
                for flag in flags.iterator(chunk_size=2000)
            ),
            frozenset({0}),
        )


def _local_stamp(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else ""
