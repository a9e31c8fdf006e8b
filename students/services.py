"""Writes to roll records: the roster import.

``roster_import`` reads a CHSI roster, validates every row, and only if no row
has an error upserts all of them by 学号 in one transaction.  Findings are
stored beside the records and never stop an import.  The report it returns
is a stable interface (README, "Roster import report").
"""

import datetime
import logging
from collections import ChainMap, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from . import crypto, normalize
from . import fields as roll_fields
from .findings import Finding, record_findings
from .importers import RosterFileError, column_letter, open_roster
from .models import ClassGroup, Cohort, Department, ImportFinding, Major, RosterImport, Student

logger = logging.getLogger(__name__)

# Fields a roster may carry besides the CHSI ones.
CONTACT_KEYS = ("phone", "email")
# Stored report lists are capped; the full list goes back to the caller.
STORED_ISSUES = 1000
WRITE_BATCH = 2000


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    ignored_columns: list = field(default_factory=list)
    rows: int = 0
    dry_run: bool = False
    roster_import_id: int | None = None
    # student id → {field key: (old, new)} for records whose values changed;
    # the verification app reopens confirmed fields from it.
    changes: dict = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": self.errors,
            "warnings": self.warnings,
            "ignored_columns": self.ignored_columns,
        }

    def error(self, row, code, message):
        self.errors.append({"row": row, "field": code, "message": str(message)})

    def warn(self, row, code, kind, message):
        self.warnings.append({"row": row, "field": code, "code": kind, "message": str(message)})


def _normalise_phone(value) -> str:
    return normalize.compact(value)


def _normalise_email(value) -> str:
    text = normalize.compact(value).lower()
    if text:
        try:
            validate_email(text)
        except ValidationError:
            raise ValueError(_("电子邮箱格式不正确")) from None
    return text


def _column_rules(columns: dict[int, str]):
    """(index, key, code, normaliser, max_length, is_identifier) per understood column."""
    rules = []
    for index, key in columns.items():
        model_field = Student._meta.get_field(key)
        if key in roll_fields.BY_KEY:
            roll_field = roll_fields.BY_KEY[key]
            normaliser, code = roll_field.normalise, roll_field.code
        else:
            normaliser = _normalise_email if key == "email" else _normalise_phone
            code = roll_fields.code_of(key)
        rules.append(
            (
                index,
                key,
                code,
                normaliser,
                getattr(model_field, "max_length", None),
                code in roll_fields.IDENTIFIER_CODES,
            )
        )
    return rules


def _parse_rows(table, report: ImportReport) -> list[tuple[int, dict]]:
    """Every data row as (row number, normalised values); problems go to ``report.errors``."""
    rules = _column_rules(table.columns)
    start_col = table.extra.get("start_col", 0)
    keys = set(table.columns.values())
    if not keys & {"department_name", "branch"}:
        raise RosterFileError(
            _("缺少院系列：需要“系（所、函授站）”(XSH) 或“分院”(FY)"), row=table.header_row, field="XSH"
        )
    max_rows = settings.ROSTER_MAX_ROWS
    required = [(f.key, f.code) for f in roll_fields.ROLL_FIELDS if f.required]
    first_row_of: dict[str, int] = {}
    shared = _Shared()
    parsed = []
    for row_number, cells in table.rows:
        if not any(cell not in ("", None) and str(cell).strip() for cell in cells):
            continue  # blank rows are skipped
        if len(parsed) >= max_rows:
            raise RosterFileError(_("文件超过 %(max)s 行，请分批导入") % {"max": max_rows}, row=row_number)
        values, row_errors = {}, set()
        width = len(cells)
        for index, key, code, normaliser, max_length, is_identifier in rules:
            raw = cells[index] if index < width else None
            where = column_letter(index + start_col)
            if is_identifier and isinstance(raw, (int, float)) and not isinstance(raw, bool):
                report.error(
                    row_number,
                    code,
                    _("%(col)s 列是数字格式，超过 15 位的数字已被 Excel 截断：请把该列设为文本后重新填写")
                    % {"col": where},
                )
                row_errors.add(code)
                continue
            try:
                value = normaliser(raw)
            except ValueError as exc:
                report.error(row_number, code, _("%(col)s 列：%(error)s") % {"col": where, "error": exc})
                row_errors.add(code)
                continue
            if max_length and isinstance(value, str) and len(value) > max_length:
                report.error(
                    row_number,
                    code,
                    _("%(col)s 列超过 %(max)s 个字符") % {"col": where, "max": max_length},
                )
                row_errors.add(code)
                continue
            values[key] = shared(key, value)
        for key, code in required:
            if key not in values and code not in row_errors:
                report.error(row_number, code, _("缺少必填列"))
            elif key in values and not values[key]:
                report.error(row_number, code, _("必填项为空"))
        number = values.get("student_number")
        if number:
            if number in first_row_of:
                report.error(
                    row_number,
                    "XH",
                    _("学号 %(number)s 与第 %(row)s 行重复") % {"number": number, "row": first_row_of[number]},
                )
            else:
                first_row_of[number] = row_number
        # A department value already reported as unreadable is not reported again as empty.
        if not (values.get("department_name") or values.get("branch")) and not row_errors & {"XSH", "FY"}:
            report.error(row_number, "XSH", _("院系为空：需要“系（所、函授站）”或“分院”"))
        parsed.append((row_number, values))
    return parsed


def _load_existing(keys: list[str]) -> dict[str, dict]:
    """Every stored record by 学号.  ID numbers stay encrypted (``id_token``) and are
    compared by their keyed hash; only the ones that changed are ever decrypted."""
    plain = [key for key in keys if key != "id_number"]
    columns = ["id", "version", "department_id", "major_id", "class_group_id", "cohort_id", *plain, "id_number_hash"]
    columns.append("id_token")
    rows = Student.objects.annotate(id_token=Cast("id_number", output_field=TextField())).values_list(*columns)
    shared = _Shared()
    existing = {}
    for row in rows.iterator(chunk_size=5000):
        record = {column: shared(column, value) for column, value in zip(columns, row, strict=True)}
        existing[record["student_number"]] = record
    return existing


class _Shared:
    """One object per distinct value of the repetitive columns (school, major, class…).

    50,000 records repeat a few hundred such values; sharing them keeps a
    whole-school import well inside its memory budget.
    """

    KEYS = frozenset(
        {f.key for f in roll_fields.ROLL_FIELDS} - {"name", "id_number", "student_number", "exam_number", "birth_date"}
    )

    def __init__(self):
        self.values: dict = {}

    def __call__(self, key, value):
        if key in self.KEYS:
            return self.values.setdefault(value, value)
        return value


def _cohort_key(values: dict):
    year = values.get("admission_year") or (values["admission_date"].year if values.get("admission_date") else None)
    level = values.get("level")
    return (int(year), level) if year and level else None


def _major_key(values: dict):
    return (values.get("major_code") or "", values["major_name"]) if values.get("major_name") else None


def _department_name(values: dict) -> str:
    return values.get("department_name") or values.get("branch")


class _Groups:
    """Departments, majors, cohorts and classes named by a roster, created on demand."""

    def __init__(self):
        self.departments = {d.name: d.id for d in Department.objects.all()}
        self.majors = {(m.code, m.name): m.id for m in Major.objects.all()}
        self.cohorts = {(c.admission_year, c.level): c.id for c in Cohort.objects.all()}
        self.classes = {(c.department_id, c.name): c.id for c in ClassGroup.objects.all()}

    def ensure(self, records: list[dict]):
        for name in {_department_name(r) for r in records} - self.departments.keys():
            self.departments[name] = Department.objects.create(name=name).id
        for key in {_major_key(r) for r in records} - self.majors.keys() - {None}:
            self.majors[key] = Major.objects.create(code=key[0], name=key[1]).id
        for key in {_cohort_key(r) for r in records} - self.cohorts.keys() - {None}:
            self.cohorts[key] = Cohort.objects.create(admission_year=key[0], level=key[1]).id
        for record in records:
            if not record.get("class_name"):
                continue
            key = (self.departments[_department_name(record)], record["class_name"])
            if key not in self.classes:
                self.classes[key] = ClassGroup.objects.create(
                    department_id=key[0],
                    name=key[1],
                    major_id=self.majors.get(_major_key(record)),
                    cohort_id=self.cohorts.get(_cohort_key(record)),
                ).id

    def placement(self, record: dict) -> dict:
        department_id = self.departments.get(_department_name(record))
        return {
            "department_id": department_id,
            "major_id": self.majors.get(_major_key(record)),
            "cohort_id": self.cohorts.get(_cohort_key(record)),
            "class_group_id": self.classes.get((department_id, record.get("class_name"))),
        }


def _duplicate_ids(parsed, existing, hashes) -> dict[str, list[str]]:
    """Keyed hash of a 证件号码 → every 学号 holding it, across the file and the rest of the school."""
    holders: dict[str, set] = defaultdict(set)
    in_file = {values["student_number"] for _row, values in parsed}
    for number, record in existing.items():
        if number not in in_file and record.get("id_number_hash"):
            holders[record["id_number_hash"]].add(number)
    for _row, values in parsed:
        holders[hashes[values["student_number"]]].add(values["student_number"])
    return {key: sorted(numbers) for key, numbers in holders.items() if len(numbers) > 1}


PLACEMENT_KEYS = ("department_id", "major_id", "cohort_id", "class_group_id")


def roster_import(
    *,
    path: str | Path,
    file_name: str | None = None,
    imported_by=None,
    dry_run: bool = False,
    today: datetime.date | None = None,
) -> ImportReport:
    """Import a CHSI roster file: all rows or none.

    Errors (unreadable values, duplicate 学号, missing required values, a file
    that is not a roster) stop the import and nothing is written.  Findings are
    reported as warnings and stored.  Re-importing the same file changes nothing.
    """
    report = ImportReport(dry_run=dry_run)
    file_name = file_name or Path(path).name
    today = today or timezone.localdate()
    started = timezone.now()
    table = None
    try:
        table = open_roster(path, max_rows=settings.ROSTER_MAX_ROWS)
        report.ignored_columns = table.ignored_columns
        parsed = _parse_rows(table, report)
    except RosterFileError as exc:
        report.error(exc.row, exc.field, exc.message)
        parsed = []
    finally:
        if table is not None and "close" in table.extra:
            table.extra["close"]()
        del table  # frees the sheet calamine holds in memory
    report.rows = len(parsed)
    if report.errors:
        _record(report, file_name, imported_by, started, RosterImport.Status.REJECTED)
        return report

    file_keys = sorted({key for _row, values in parsed for key in values})
    all_keys = [f.key for f in roll_fields.ROLL_FIELDS] + list(CONTACT_KEYS)
    existing = _load_existing(all_keys)
    hashes = {values["student_number"]: crypto.keyed_hash(values["id_number"]) for _row, values in parsed}
    duplicates = _duplicate_ids(parsed, existing, hashes)

    with transaction.atomic():
        # A record is the file's values over the stored ones: a column the file
        # lacks never blanks a field.  ChainMap avoids copying unchanged records.
        merged = [
            (row, values, ChainMap(values, existing.get(values["student_number"]) or {})) for row, values in parsed
        ]
        groups = _Groups()
        groups.ensure([record for _row, _values, record in merged])
        to_save, findings = [], []
        for row_number, values, record in merged:
            number = values["student_number"]
            for finding in record_findings(record, today=today):
                findings.append((number, row_number, finding))
            others = duplicates.get(hashes[number])
            if others:
                n = len(others) - 1
                message = ngettext("证件号码与另外 %(n)s 名学生相同", "证件号码与另外 %(n)s 名学生相同", n) % {"n": n}
                findings.append((number, row_number, Finding("SFZH", "duplicate_id", message)))
            placement = groups.placement(record)
            old = existing.get(number)
            if old is None:
                report.created += 1
                values.update(placement)
                to_save.append(values)
                continue
            changed = {
                key: (old.get(key), value)
                for key, value in values.items()
                if key != "id_number" and old.get(key) != value
            }
            if old["id_number_hash"] != hashes[number]:
                old_id = crypto.decrypt(old["id_token"]) if old["id_token"] else ""
                changed["id_number"] = (old_id, values["id_number"])
            if not changed and all(old[key] == placement[key] for key in PLACEMENT_KEYS):
                report.unchanged += 1
                continue
            report.updated += 1
            if changed:
                report.changes[old["id"]] = changed
            to_save.append({**old, **values, **placement, "version": old["version"] + 1})
        del merged
        for _number, row_number, finding in findings:
            report.warn(row_number, finding.field_code, finding.kind, finding.message)
        if dry_run:
            transaction.set_rollback(True)
        else:
            run = _record(report, file_name, imported_by, started, RosterImport.Status.APPLIED)
            _write_students(to_save, file_keys)
            _write_findings(parsed, findings, run)
            _after_import(report)
    if dry_run:
        _record(report, file_name, imported_by, started, RosterImport.Status.DRY_RUN)
    return report


def _write_students(records: list[dict], file_keys: list[str]):
    model_fields = {f.attname for f in Student._meta.concrete_fields} - {"id"}
    # One INSERT … ON CONFLICT (学号) DO UPDATE for new and changed records alike,
    # built a batch at a time so that 50,000 model instances never coexist.
    update_fields = sorted(set(file_keys) | set(PLACEMENT_KEYS) | {"version", "updated_at", "id_number_hash"})
    for start in range(0, len(records), WRITE_BATCH):
        Student.objects.bulk_create(
            [
                Student(**{k: v for k, v in r.items() if k in model_fields})
                for r in records[start : start + WRITE_BATCH]
            ],
            update_conflicts=True,
            unique_fields=["student_number"],
            update_fields=update_fields,
        )


def _write_findings(parsed, findings, run: RosterImport):
    ids = dict(Student.objects.values_list("student_number", "id").iterator(chunk_size=10000))
    student_ids = [ids[values["student_number"]] for _row, values in parsed]
    for start in range(0, len(student_ids), 5000):
        ImportFinding.objects.filter(student_id__in=student_ids[start : start + 5000]).delete()
    ImportFinding.objects.bulk_create(
        [
            ImportFinding(
                student_id=ids[number], roster_import=run, field_code=f.field_code, kind=f.kind, message=f.message
            )
            for number, _row, f in findings
        ],
        batch_size=2000,
    )


def _record(report: ImportReport, file_name, imported_by, started, status) -> RosterImport:
    run = RosterImport.objects.create(
        file_name=file_name[:255],
        imported_by=imported_by,
        started_at=started,
        finished_at=timezone.now(),
        status=status,
        rows=report.rows,
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        error_count=len(report.errors),
        warning_count=len(report.warnings),
        report={
            **report.as_dict(),
            "errors": report.errors[:STORED_ISSUES],
            "warnings": report.warnings[:STORED_ISSUES],
        },
    )
    report.roster_import_id = run.pk
    logger.info(
        "roster import %s (%s): %s created, %s updated, %s unchanged, %s errors, %s warnings",
        run.pk,
        status,
        report.created,
        report.updated,
        report.unchanged,
        len(report.errors),
        len(report.warnings),
    )
    return run


def _after_import(report: ImportReport):
    """Let the verification app react in the same transaction: new students of open
    campaigns get checklists, and confirmed fields whose value changed reopen."""
    from verification import services as verification_services

    verification_services.campaigns_sync_open()
    if report.changes:
        verification_services.roster_changes_apply(changes=report.changes, roster_import_id=report.roster_import_id)
