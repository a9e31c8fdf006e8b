"""A second roster source (教务, 学工, 迎新) and its comparison with CHSI's records.

CHSI and the school's own systems drift apart.  Before students are asked to
check, the registrar imports the school's roster as a named source (the same
reader, validation and normalisation as the CHSI import, so 专业 brackets,
date spellings and full-width digits are never differences) and compares the
two by 学号, or by ID number where the 学号 differs (docs/domain.md §2).
"""

import datetime
import hashlib
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from . import crypto
from . import fields as roll_fields
from .models import RosterSource, SourceRecord, SourceResolution, Student

# Keys a source may carry that are not compared field by field.
NOT_COMPARED = {"student_number", "id_number", "phone", "email"}
WRITE_BATCH = 2000


def _stored(value):
    return value.isoformat() if isinstance(value, datetime.date) else value


def source_write(*, name: str, file_name: str, parsed: list[tuple[int, dict]], imported_by, report) -> RosterSource:
    """Replace the source called ``name`` with the parsed rows; counts go to ``report``.

    Created/updated/unchanged compare with the source's previous file, so a
    registrar sees what the new export of 教务 changed.
    """
    with transaction.atomic():
        source, _created = RosterSource.objects.select_for_update().get_or_create(
            name=name, defaults={"file_name": file_name}
        )
        previous = {
            record.student_number: (record.values, record.id_number_hash)
            for record in SourceRecord.objects.filter(source=source).only("student_number", "values", "id_number_hash")
        }
        records = []
        for row, values in parsed:
            number = values["student_number"]
            id_number = values.get("id_number", "")
            stored = {key: _stored(value) for key, value in values.items() if key not in {"id_number"}}
            records.append(
                SourceRecord(source=source, row=row, student_number=number, id_number=id_number, values=stored)
            )
            before = previous.get(number)
            if before is None:
                report.created += 1
            elif before == (stored, crypto.keyed_hash(id_number) if id_number else ""):
                report.unchanged += 1
            else:
                report.updated += 1
        SourceRecord.objects.filter(source=source).delete()
        SourceRecord.objects.bulk_create(records, batch_size=WRITE_BATCH)
        source.file_name, source.imported_by, source.imported_at, source.rows = (
            file_name,
            imported_by,
            timezone.now(),
            len(records),
        )
        source.save()
    return source


# ----------------------------------------------------------------------------
# The comparison
# ----------------------------------------------------------------------------


@dataclass
class Difference:
    student_number: str
    field: str  # the field's CHSI code (the registry's identifier; docs/architecture.md)
    chsi: str  # as shown to staff: sensitive values masked
    source: str
    student_id: int
    department_id: int
    values_hash: str
    decision: str = ""
    # The source's full value and where it came from, for a correction; never in reports.
    source_value: object = field(default=None, repr=False)
    source_row: int = 0

    @property
    def roll_field(self):
        return roll_fields.BY_CODE[self.field]

    def as_dict(self) -> dict:
        return {"xh": self.student_number, "field": self.field, "chsi": self.chsi, "source": self.source}


@dataclass
class RosterDiff:
    source: RosterSource
    compared: int = 0
    only_in_chsi: list[str] = field(default_factory=list)
    only_in_source: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The stable report of ``manage.py roster_diff`` (README)."""
        return {
            "compared": self.compared,
            "only_in_chsi": self.only_in_chsi,
            "only_in_source": self.only_in_source,
            "differences": [d.as_dict() for d in self.differences],
        }

    def counts_by_field(self) -> list[tuple]:
        counts: dict[str, int] = {}
        for d in self.differences:
            counts[d.field] = counts.get(d.field, 0) + 1
        return [(roll_fields.BY_CODE[code], n) for code, n in sorted(counts.items(), key=lambda kv: -kv[1])]

    def counts_by_department(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for d in self.differences:
            counts[d.department_id] = counts.get(d.department_id, 0) + 1
        return counts


def _values_hash(chsi: str, source: str) -> str:
    """Both sides' full values, keyed, so a decision lapses when either changes and nothing sensitive is stored."""
    return crypto.keyed_hash(f"{chsi}\x1f{source}") if chsi or source else hashlib.sha256(b"").hexdigest()


def roster_diff(
    source: RosterSource, *, students: QuerySet[Student] | None = None, only: list[str] | None = None
) -> RosterDiff:
    """Where CHSI (``students``, the caller's scope) and ``source`` disagree, field by field.

    Only-in-CHSI counts the students of the cohorts the source covers (a 教务
    export of new students says nothing of older ones); with no match at all,
    every student in scope.  ``only`` limits the comparison to those 学号 (one decision's row).
    """
    students = Student.objects.all() if students is None else students
    if only is not None:
        students = students.filter(student_number__in=only)
    keys = [f.key for f in roll_fields.ROLL_FIELDS]
    chsi = list(students.only(*keys, "id_number_hash", "department_id", "cohort_id").order_by("student_number"))
    by_number = {s.student_number: s for s in chsi}
    by_hash = {s.id_number_hash: s for s in chsi if s.id_number_hash}
    decisions = {
        (r.student_number, r.field_code): (r.values_hash, r.decision)
        for r in SourceResolution.objects.filter(source=source)
    }
    diff = RosterDiff(source=source)
    matched: set[int] = set()

    def add(student, key, chsi_value, source_value, row):
        roll_field = roll_fields.BY_KEY[key]
        full_chsi, full_source = (
            roll_field.display(chsi_value, masked=False),
            roll_field.display(source_value, masked=False),
        )
        values_hash = _values_hash(full_chsi, full_source)
        stored_hash, decision = decisions.get((student.student_number, roll_field.code), ("", ""))
        diff.differences.append(
            Difference(
                student_number=student.student_number,
                field=roll_field.code,
                chsi=roll_field.display(chsi_value, masked=True),
                source=roll_field.display(source_value, masked=True),
                student_id=student.pk,
                department_id=student.department_id,
                values_hash=values_hash,
                decision=decision if stored_hash == values_hash else "",
                source_value=source_value,
                source_row=row,
            )
        )

    records = source.records.all().order_by("row")
    if only is not None:
        hashes = [s.id_number_hash for s in chsi if s.id_number_hash]
        records = records.filter(Q(student_number__in=only) | Q(id_number_hash__in=hashes))
    for record in records:
        student = by_number.get(record.student_number)
        if student is None and record.id_number_hash:
            student = by_hash.get(record.id_number_hash)
        if student is None:
            diff.only_in_source.append(record.student_number)
            continue
        matched.add(student.pk)
        diff.compared += 1
        if student.student_number != record.student_number:
            add(student, "student_number", student.student_number, record.student_number, record.row)
        for key, value in record.values.items():
            if key in NOT_COMPARED or key not in roll_fields.BY_KEY or value in ("", None):
                continue  # a blank in the source is no claim
            roll_field = roll_fields.BY_KEY[key]
            if not roll_field.same(getattr(student, key), value):
                add(student, key, getattr(student, key), value, record.row)
        if record.id_number_hash and record.id_number_hash != student.id_number_hash:
            add(student, "id_number", student.id_number, record.id_number, record.row)
    cohorts = {s.cohort_id for s in chsi if s.pk in matched}
    diff.only_in_chsi = [
        s.student_number for s in chsi if s.pk not in matched and (not cohorts or s.cohort_id in cohorts)
    ]
    return diff


def difference_decide(*, source: RosterSource, difference: Difference, decision: str, by) -> SourceResolution:
    """Record the registrar's decision on one difference (the caller has checked the capability)."""
    resolution, _created = SourceResolution.objects.update_or_create(
        source=source,
        student_number=difference.student_number,
        field_code=difference.field,
        defaults={
            "values_hash": difference.values_hash,
            "decision": decision,
            "decided_by": by,
            "decided_at": timezone.now(),
        },
    )
    return resolution
