"""Excel exports: each report yields rows, one shared writer makes the .xlsx.

The writer uses openpyxl's write-only mode (flat memory), writes every
string as a text cell (text a student typed that starts with ``=`` never
becomes a formula), keeps identifiers (学号, 证件号码, 考生号) as text with the
Text number format so Excel never turns them into numbers, strips characters
XML cannot hold, and names the exporter and the time in the first rows.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

from students import fields as roll_fields
from students.models import ClassGroup

from .models import Campaign, Checklist, Flag

TEXT_FORMAT = "@"


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

    def sheets(self) -> Iterator[Sheet]:
        raise NotImplementedError

    def filename(self) -> str:
        return f"{self.identifier}-{timezone.localtime():%Y%m%d-%H%M}.xlsx"


def _safe(sheet, value, *, text: bool):
    if value is None:
        return None
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
        cell = WriteOnlyCell(sheet, value=value)
        # Assigning "=…" makes openpyxl store a formula; force plain text.
        cell.data_type = "s"
        if text:
            cell.number_format = TEXT_FORMAT
        return cell
    return value


def write_xlsx(exporter: Exporter, target, *, exported_by) -> int:
    """Write the export to ``target`` (a path or binary file); returns the number of data rows."""
    workbook = Workbook(write_only=True)
    bold = Font(bold=True)
    total = 0
    who = exported_by.get_full_name() or exported_by.get_username()
    stamp = f"{_('导出人')}：{who}    {_('导出时间')}：{timezone.localtime():%Y-%m-%d %H:%M}"
    for spec in exporter.sheets():
        sheet = workbook.create_sheet(title=ILLEGAL_CHARACTERS_RE.sub("", spec.title)[:31])
        title = WriteOnlyCell(sheet, value=str(exporter.verbose_name))
        title.font = bold
        sheet.append([title])
        sheet.append([stamp])
        sheet.append([])
        header = []
        for name in spec.header:
            cell = WriteOnlyCell(sheet, value=str(name))
            cell.font = bold
            header.append(cell)
        sheet.append(header)
        text_columns = spec.text_columns
        for row in spec.rows:
            sheet.append([_safe(sheet, value, text=index in text_columns) for index, value in enumerate(row)])
            total += 1
    workbook.save(target)
    return total


def _state_labels() -> dict:
    return dict(Checklist.State.choices)


def _field_label(code: str) -> str:
    field = roll_fields.BY_CODE.get(code)
    return str(field.label) if field else code


# ---------------------------------------------------------------------------
# 1. Class sign-off sheet (核对登记表, seed 003)
# ---------------------------------------------------------------------------


class ClassSignOffSheet(Exporter):
    identifier = "class-sign-off"

    def __init__(self, *, campaign: Campaign, class_group: ClassGroup):
        self.campaign, self.class_group = campaign, class_group
        self.verbose_name = _("%(campaign)s 核对登记表 · %(cls)s") % {
            "campaign": campaign.name,
            "cls": class_group.name,
        }

    def filename(self) -> str:
        return f"sign-off-{self.class_group.pk}-{timezone.localtime():%Y%m%d}.xlsx"

    def sheets(self):
        labels = _state_labels()
        checklists = (
            Checklist.objects.filter(campaign=self.campaign, student__class_group=self.class_group)
            .select_related("student")
            .order_by("student__student_number")
        )

        def students():
            for number, checklist in enumerate(checklists.iterator(chunk_size=2000), start=1):
                finished = (
                    timezone.localtime(checklist.finished_at).strftime("%Y-%m-%d %H:%M")
                    if checklist.finished_at
                    else ""
                )
                yield [
                    number,
                    checklist.student.student_number,
                    checklist.student.name,
                    labels[checklist.state],
                    finished,
                ]

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
                    _claimed_for_list(f),
                    f.explanation,
                    f.checklist.student.phone,
                    f.get_status_display(),
                ]
                for f in flags.iterator(chunk_size=2000)
            ),
            frozenset({0}),
        )


def _claimed_for_list(flag: Flag) -> str:
    from students.idnumbers import mask

    # Lists outside the registrar's correction list never carry a full ID number.
    return mask(flag.claimed_value) if flag.field_code == "SFZH" else flag.claimed_value


# ---------------------------------------------------------------------------
# 2. Department error list (学院新生学籍信息有误学生名单, seed 002)
# ---------------------------------------------------------------------------


class DepartmentErrorList(Exporter):
    identifier = "department-errors"

    def __init__(self, *, campaign: Campaign, departments: QuerySet):
        self.campaign, self.departments = campaign, departments
        self.verbose_name = _("%(campaign)s 学籍信息有误学生名单") % {"campaign": campaign.name}

    def sheets(self):
        flags = (
            Flag.objects.filter(checklist__campaign=self.campaign, checklist__student__department__in=self.departments)
            .exclude(status=Flag.Status.WITHDRAWN)
            .select_related("checklist__student__department", "checklist__student__class_group")
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
                    _claimed_for_list(flag),
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
            frozenset({2, 4}),
        )  # fmt: skip


def _masked_if_id(code: str, value: str) -> str:
    from students.idnumbers import mask

    return mask(value) if code == "SFZH" else value


# ---------------------------------------------------------------------------
# 3. CHSI correction list (for the registrar, one sheet per authority)
# ---------------------------------------------------------------------------


class CHSICorrectionList(Exporter):
    """What the registrar keys into the school-side platform: CHSI codes, old and new values.

    The one export that carries full ID numbers: the platform needs them.
    """

    identifier = "chsi-corrections"
    STATUSES = (Flag.Status.FORWARDED, Flag.Status.ACCEPTED, Flag.Status.SUBMITTED_TO_CHSI)

    def __init__(self, *, campaign: Campaign | None = None):
        self.campaign = campaign
        self.verbose_name = _("学信网学籍信息更正清单")

    def sheets(self):
        flags = Flag.objects.filter(status__in=self.STATUSES).select_related("checklist__student")
        if self.campaign:
            flags = flags.filter(checklist__campaign=self.campaign)
        flags = flags.order_by("checklist__student__student_number", "field_code")
        by_authority = {roll_fields.Authority.SCHOOL: [], roll_fields.Authority.PROVINCE: []}
        for flag in flags.iterator(chunk_size=2000):
            by_authority.setdefault(flag.field.authority, []).append(flag)
        titles = {
            roll_fields.Authority.SCHOOL: _("学校可直接修改"),
            roll_fields.Authority.PROVINCE: _("需省级审核"),
            roll_fields.Authority.NONE: _("其他"),
        }
        for authority, items in by_authority.items():
            yield Sheet(
                titles[authority],
                ["XH", "XM", "SFZH", "ZDDM", "ZDMC", "YZ", "XZ_NEW", "SM", "ZT"],
                (
                    [
                        f.checklist.student.student_number,
                        f.checklist.student.name,
                        f.checklist.student.id_number,
                        f.field_code,
                        _field_label(f.field_code),
                        f.recorded_value,
                        f.claimed_value,
                        f.explanation,
                        f.get_status_display(),
                    ]
                    for f in items
                ),
                frozenset({0, 2, 5, 6}),
            )


# ---------------------------------------------------------------------------
# 4. Unverified students per department
# ---------------------------------------------------------------------------


class UnverifiedStudents(Exporter):
    identifier = "unverified"

    def __init__(self, *, campaign: Campaign, departments: QuerySet):
        self.campaign, self.departments = campaign, departments
        self.verbose_name = _("%(campaign)s 未完成核对学生名单") % {"campaign": campaign.name}

    def sheets(self):
        labels = _state_labels()
        rows = (
            Checklist.objects.filter(campaign=self.campaign, student__department__in=self.departments)
            .exclude(state__in=Checklist.FINISHED)
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
