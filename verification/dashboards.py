"""Completion counts for the department and school dashboards.

Each function runs a fixed number of queries whatever the number of classes
and students: checklists are grouped by (group, state) in the database and
pivoted here (docs/performance.md §2, decision 4).
"""

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache

from django.db import connection, transaction
from django.db.models import BooleanField, Count, DateTimeField, ExpressionWrapper, Func, Q, QuerySet, Sum, Value
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext

from students.models import ClassGroup, Cohort, Department, Student

from .models import Campaign, Checklist, ChecklistCount, DepartmentSignOff, FinishCount, SupportRequest
from .selectors import ModelReader

State = Checklist.State


class DateBin(Func):
    """PostgreSQL's ``date_bin(stride, source, origin)``: plain arithmetic, unlike AT TIME ZONE per row."""

    function = "date_bin"
    output_field = DateTimeField()


def _day_origin(campaign: Campaign):
    """The local midnight from which whole days give the local days of ``campaign``'s finishes, or None.

    ``TruncDate`` converts every row's time to the local zone (a third of the school
    aggregate's time at 50,000 students).  Where the zone's offset is the same on every
    day from the campaign's opening to now (Asia/Shanghai always), whole days from a
    local midnight give the same days by arithmetic; the caller reads them with ``day_of``.
    """
    zone = timezone.get_current_timezone()
    first = timezone.localdate(campaign.opens_at) - datetime.timedelta(days=1)
    origin = datetime.datetime.combine(first, datetime.time(), tzinfo=zone)
    days = (timezone.localdate() - first).days + 2
    offsets = {(origin + datetime.timedelta(days=n)).utcoffset() for n in range(max(days, 1))}
    if connection.vendor != "postgresql" or len(offsets) != 1:
        return None
    return origin


def finish_day(campaign: Campaign, field_name: str = "finished_at"):
    """The local day of each first finish, as an expression to group by (``_day_origin``)."""
    origin = _day_origin(campaign)
    if origin is None:
        return TruncDate(field_name)
    return DateBin(Value(datetime.timedelta(days=1)), field_name, Value(origin))


def day_of(value) -> datetime.date | None:
    """A ``finish_day`` value as a date (a bin's start is a local midnight)."""
    if isinstance(value, datetime.datetime):
        return timezone.localdate(value)
    return value


# Grouped beside the state: a checklist that finished once (its first finish time is kept).
WAS_FINISHED = ExpressionWrapper(Q(finished_at__isnull=False), output_field=BooleanField())


@dataclass
class Counts:
    by_state: dict = field(default_factory=lambda: defaultdict(int))
    # Not finished now, but finished once: a re-import reopened a changed value or a flag came back.
    reopened: int = 0

    def add(self, state: str, n: int, was_finished: bool = False):
        self.by_state[state] += n
        if was_finished and state not in Checklist.FINISHED and state != State.EXCLUDED:
            self.reopened += n

    def add_row(self, state: str, n: int, finished_once: int):
        """``n`` checklists in ``state``, ``finished_once`` of them with a first finish time."""
        self.by_state[state] += n
        if state not in Checklist.FINISHED and state != State.EXCLUDED:
            self.reopened += finished_once

    def merge(self, other: "Counts"):
        for state, n in other.by_state.items():
            self.by_state[state] += n
        self.reopened += other.reopened

    @property
    def total(self) -> int:
        """The denominator: every student in the campaign except those excluded from it."""
        return sum(n for state, n in self.by_state.items() if state != State.EXCLUDED)

    @property
    def excluded(self) -> int:
        return self.by_state[State.EXCLUDED]

    @property
    def never_finished(self) -> int:
        return self.not_done - self.reopened

    @property
    def confirmed(self) -> int:
        return self.by_state[State.CONFIRMED]

    @property
    def flagged(self) -> int:
        return self.by_state[State.FLAGGED]

    @property
    def returned(self) -> int:
        return self.by_state[State.RETURNED]

    @property
    def in_progress(self) -> int:
        return self.by_state[State.IN_PROGRESS]

    @property
    def not_started(self) -> int:
        return self.by_state[State.NOT_STARTED]

    @property
    def overdue(self) -> int:
        return self.by_state[State.OVERDUE]

    @property
    def done(self) -> int:
        return sum(self.by_state[state] for state in Checklist.FINISHED)

    @property
    def not_done(self) -> int:
        return self.total - self.done

    @property
    def completion(self) -> float:
        """Share of students who finished (confirmed or flagged): the 查询率 authorities watch."""
        return self.done / self.total if self.total else 0.0

    @property
    def completion_percent(self) -> int:
        return round(self.completion * 100)


@dataclass(frozen=True)
class NoClass:
    """A department's students without a class (a roster without 班号 yet), as one dashboard row."""

    department: Department
    pk = None

    @property
    def name(self) -> str:
        return gettext("未分班")


def _ids(objects) -> list[int]:
    """Ids of departments or classes given as a queryset (one query), objects or ids."""
    if isinstance(objects, QuerySet):
        return list(objects.values_list("pk", flat=True))
    return [getattr(item, "pk", item) for item in objects]


def _in(column: str, ids: list) -> str:
    return f"{column} IN ({', '.join(['%s'] * len(ids))})"


@cache
def _tables() -> dict:
    """The tables the hand-built count queries read, by the models' names for them."""
    models = {
        "count": ChecklistCount,
        "finish": FinishCount,
        "department": Department,
        "class": ClassGroup,
        "cohort": Cohort,
    }
    return {key: connection.ops.quote_name(model._meta.db_table) for key, model in models.items()}


@cache
def _class_progress_sql() -> str:
    """``class_progress``'s query, built once per process: compiling it through the ORM cost more than
    running it (docs/performance.md §6).  ``{scope}`` is the departments' (and classes') ``IN`` lists."""
    t = _tables()
    return (
        "SELECT c.department_id, d.name, d.code, c.class_group_id, g.name, c.state, SUM(c.n), "
        "SUM(CASE WHEN c.finished THEN c.n ELSE 0 END) "
        f"FROM {t['count']} c LEFT OUTER JOIN {t['department']} d ON d.id = c.department_id "
        f"LEFT OUTER JOIN {t['class']} g ON g.id = c.class_group_id "
        "WHERE c.campaign_id = %s AND c.n <> 0 AND {scope} "
        "GROUP BY c.department_id, d.name, d.code, c.class_group_id, g.name, c.state"
    )


def class_progress(*, campaign: Campaign, departments, classes=None) -> tuple[list[tuple], Counts]:
    """[(class or NoClass, Counts)] for the classes of some departments (or only ``classes``: a
    counsellor's), plus their total.  ``departments`` and ``classes``: querysets, instances or ids.

    Grouped by department too, so that students without a class still count in their own
    department.  One query (one more for each queryset given), over the counts the triggers keep
    (``ChecklistCount``: a few rows a class) with the classes' and departments' names joined, not
    over the checklists (docs/performance.md §6).
    """
    groups: dict = defaultdict(Counts)
    places: dict = {}
    total = Counts()
    department_ids = _ids(departments)
    class_ids = None if classes is None else _ids(classes)
    if not department_ids or class_ids == []:
        return [], total
    scope = _in("c.department_id", department_ids)
    if class_ids is not None:
        scope += " AND " + _in("c.class_group_id", class_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            _class_progress_sql().replace("{scope}", scope), [campaign.pk, *department_ids, *(class_ids or ())]
        )
        grouped = cursor.fetchall()
    for department_id, department_name, code, class_id, class_name, state, n, finished_once in grouped:
        key = (department_id, class_id or None)
        groups[key].add_row(state, n, finished_once or 0)
        total.add_row(state, n, finished_once or 0)
        if key not in places:
            department = Department(id=department_id, name=department_name, code=code)
            if class_id:
                places[key] = ClassGroup(id=class_id, name=class_name, department=department)
            else:
                places[key] = NoClass(department)
    rows = [(places[key], counts) for key, counts in groups.items()]
    rows.sort(key=lambda row: (row[0].department.name, row[0].pk is None, row[0].name))
    return rows, total


def finishes_per_day(*, campaign: Campaign) -> dict:
    """{local day: first finishes}, from the quarter hours the triggers count (``FinishCount``).

    Quarter hours in UTC never straddle a local midnight, so summing them by local day
    gives the same days as the checklists' own finish times.  One query.
    """
    quarters = FinishCount.objects.filter(campaign=campaign).exclude(n=0)
    day = finish_day(campaign, "quarter")
    if isinstance(day, DateBin):
        grouped = quarters.annotate(day=day).values_list("day").annotate(total=Sum("n")).order_by()
        return {day_of(day): n for day, n in grouped if n}
    per_day: dict = defaultdict(int)
    for quarter, n in quarters.values_list("quarter", "n"):
        per_day[timezone.localdate(quarter)] += n
    return {day: n for day, n in per_day.items() if n}


@cache
def _school_counts_sql(no_day: str = "NULL") -> str:
    """``school_overview``'s counts by department, cohort, state and "finished once", built once per process
    (a last column, ``no_day``, to stand beside the days in ``_school_overview_sql``)."""
    t = _tables()
    return (
        "SELECT c.department_id, d.name, d.code, c.cohort_id, h.admission_year, h.level, c.state, c.finished, "
        f"SUM(c.n), {no_day} FROM {t['count']} c LEFT OUTER JOIN {t['department']} d ON d.id = c.department_id "
        f"LEFT OUTER JOIN {t['cohort']} h ON h.id = c.cohort_id WHERE c.campaign_id = %s AND c.n <> 0 "
        "GROUP BY c.department_id, d.name, d.code, c.cohort_id, h.admission_year, h.level, c.state, c.finished"
    )


@cache
def _school_overview_sql() -> str:
    """The counts and, in the same statement, the first finishes by local day (PostgreSQL's ``date_bin``
    from a local midnight, ``finish_day``): rows whose state is NULL are days."""
    return (
        _school_counts_sql("NULL::timestamptz")
        + " UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, SUM(f.n), "
        f"date_bin(INTERVAL '1 day', f.quarter, %s) FROM {_tables()['finish']} f "
        "WHERE f.campaign_id = %s AND f.n <> 0 GROUP BY 10"
    )


def school_overview(*, campaign: Campaign) -> tuple[list[tuple], list[tuple], Counts, dict]:
    """[(department, Counts)], [(cohort, Counts)], the school total and {day: first finishes}
    (for ``daily_progress``).  One query on PostgreSQL (two elsewhere).

    Read from the counts the triggers keep (``ChecklistCount``, ``FinishCount``), with the
    departments' and cohorts' names joined: a few hundred rows, however many students
    (docs/performance.md §6), by SQL built once per process.
    """
    by_department, by_cohort, total = defaultdict(Counts), defaultdict(Counts), Counts()
    departments, cohorts = {}, {}
    origin = _day_origin(campaign)
    with connection.cursor() as cursor:
        if origin is not None:
            cursor.execute(_school_overview_sql(), [campaign.pk, origin, campaign.pk])
            per_day = None
        else:
            cursor.execute(_school_counts_sql(), [campaign.pk])
            per_day = finishes_per_day(campaign=campaign)
        grouped = cursor.fetchall()
    days = {}
    for department_id, department_name, code, cohort_id, year, level, state, finished, n, day in grouped:
        if state is None:
            days[day_of(day)] = n
            continue
        department_id, cohort_id = department_id or None, cohort_id or None
        by_department[department_id].add(state, n, finished)
        by_cohort[cohort_id].add(state, n, finished)
        total.add(state, n, finished)
        if department_id not in departments:
            departments[department_id] = Department(id=department_id, name=department_name, code=code)
        if cohort_id and cohort_id not in cohorts:
            cohorts[cohort_id] = Cohort(id=cohort_id, admission_year=year, level=level)
    department_rows = sorted(((departments[k], v) for k, v in by_department.items() if k), key=lambda row: row[0].name)
    cohort_rows = sorted(((cohorts.get(k), v) for k, v in by_cohort.items()), key=lambda row: str(row[0]))
    return department_rows, cohort_rows, total, days if per_day is None else per_day


def school_progress(*, campaign: Campaign) -> tuple[list[tuple], list[tuple], Counts]:
    """[(department, Counts)], [(cohort, Counts)] and the school total."""
    return school_overview(campaign=campaign)[:3]


def daily_progress(
    *, campaign: Campaign, total: int | None = None, today: datetime.date | None = None, per_day: dict | None = None
) -> list[dict]:
    """Students finishing per day and cumulative completion, for the progress chart.

    Every day from the first finish up to today (or the deadline) is listed,
    days nobody finished included, so that the chart's axis is time.  Pass
    ``total`` (the campaign's number of students) and ``per_day`` (from
    ``school_overview``) when already counted.

    Drawn from each student's first finish, which a later reopening (a changed value, a
    returned flag) keeps: the line never goes down for days already past.
    """
    if total is None or per_day is None:
        counted = Checklist.objects.filter(campaign=campaign).exclude(state=State.EXCLUDED)
    if total is None:
        total = counted.count()
    if per_day is None:
        per_day = dict(
            counted.filter(finished_at__isnull=False)
            .annotate(day=TruncDate("finished_at"))
            .values_list("day")
            .annotate(n=Count("*"))
            .order_by("day")
        )
    if not per_day:
        return []
    today = today or timezone.localdate()
    first = min(per_day)
    last = max(max(per_day), min(today, timezone.localdate(campaign.closes_at)))
    cumulative, days = 0, []
    for offset in range((last - first).days + 1):
        day = first + datetime.timedelta(days=offset)
        n = per_day.get(day, 0)
        cumulative += n
        days.append({"day": day, "n": n, "cumulative": cumulative, "rate": cumulative / total if total else 0.0})
    return days


def progress_chart(days: list[dict], *, width: int = 640, height: int = 220) -> dict | None:
    """Coordinates for an inline SVG: bars for finishes per day, a line for cumulative rate.

    Drawn on the server so the page needs no script (and no CSP exception).
    """
    if not days:
        return None
    pad_left, pad_bottom, pad_top = 36, 24, 12
    inner_w, inner_h = width - pad_left - 8, height - pad_bottom - pad_top
    step = inner_w / len(days)
    top = max(day["n"] for day in days) or 1
    bars, points = [], []
    for index, day in enumerate(days):
        x = pad_left + index * step
        bar_h = inner_h * day["n"] / top
        bars.append(
            {
                "x": round(x + step * 0.15, 1),
                "y": round(pad_top + inner_h - bar_h, 1),
                "w": round(step * 0.7, 1),
                "h": round(bar_h, 1),
                "day": day["day"],
                "n": day["n"],
                "rate": round(day["rate"] * 100),
            }
        )
        points.append(f"{x + step / 2:.1f},{pad_top + inner_h * (1 - day['rate']):.1f}")
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "line": " ".join(points),
        "base_y": pad_top + inner_h,
        "top_y": pad_top,
        "left": pad_left,
        "max_n": top,
        "first": days[0]["day"],
        "last": days[-1]["day"],
        "final_rate": round(days[-1]["rate"] * 100),
    }


def counts_of(checklists: QuerySet) -> Counts:
    """Counts by state of any set of checklists: one query."""
    counts = Counts()
    grouped = (
        checklists.annotate(was_finished=WAS_FINISHED)
        .values_list("state", "was_finished")
        .annotate(n=Count("id"))
        .order_by()
    )
    for state, was_finished, n in grouped:
        counts.add(state, n, was_finished)
    return counts


# The key and quarter hour as the triggers compute them (migration verification.0012).
_COUNT_KEY = (
    "campaign_id, COALESCE(department_id, 0), COALESCE(class_group_id, 0), COALESCE(cohort_id, 0), "
    "state, finished_at IS NOT NULL"
)
_QUARTER = {
    "postgresql": "date_bin('15 minutes', finished_at, TIMESTAMPTZ '2000-01-01 00:00:00+00')",
    "sqlite": "strftime('%Y-%m-%d %H:%M:%S', (CAST(strftime('%s', finished_at) AS INTEGER) / 900) * 900, 'unixepoch')",
}


def rebuild_counts(*, campaign: Campaign | None = None):
    """Recompute ``ChecklistCount`` and ``FinishCount`` from the checklists (of one campaign, or all).

    The triggers keep them exact; this is for repair (a restore of only some tables, triggers
    dropped by hand).  Checklists are locked against writes meanwhile, so no change is lost.
    """
    where = f"WHERE campaign_id = {int(campaign.pk)}" if campaign else ""
    finished = f"{where or 'WHERE'}{' AND' if where else ''} finished_at IS NOT NULL AND state <> 'excluded'"
    statements = [
        f"DELETE FROM verification_checklistcount {where}",
        f"DELETE FROM verification_finishcount {where}",
        "INSERT INTO verification_checklistcount "
        "(campaign_id, department_id, class_group_id, cohort_id, state, finished, n) "
        f"SELECT {_COUNT_KEY}, COUNT(*) FROM verification_checklist {where} GROUP BY 1, 2, 3, 4, 5, 6",
        "INSERT INTO verification_finishcount (campaign_id, quarter, n) "
        f"SELECT campaign_id, {_QUARTER[connection.vendor]}, COUNT(*) FROM verification_checklist {finished} "
        "GROUP BY 1, 2",
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("LOCK TABLE verification_checklist IN SHARE MODE")
        for statement in statements:
            cursor.execute(statement)  # no parameters: the SQL has % signs


# ---------------------------------------------------------------------------
# The rest of a dashboard's data, as SQL built once per process (docs/performance.md §6): the ORM's
# compilation of these small queries cost more CPU than the database's work on them.
# ---------------------------------------------------------------------------


@cache
def _tickets_sql() -> tuple[str, str]:
    q = connection.ops.quote_name
    tickets, checklists, students = (q(m._meta.db_table) for m in (SupportRequest, Checklist, Student))
    school = f"SELECT t.status, COUNT(*) FROM {tickets} t WHERE t.status IN (%s, %s) GROUP BY t.status"
    departments = (
        f"SELECT t.status, COUNT(*) FROM {tickets} t INNER JOIN {checklists} k ON k.id = t.checklist_id "
        f"INNER JOIN {students} s ON s.id = k.student_id WHERE t.status IN (%s, %s) AND {{scope}} GROUP BY t.status"
    )
    return school, departments


def open_tickets(*, department_ids: list | None = None) -> dict[str, int]:
    """Open tickets for a dashboard (``new``, ``in_progress``, ``open``) of some departments (their students') or
    the school: one query by SQL built once per process."""
    T = SupportRequest.Status
    counts = {T.NEW.value: 0, T.IN_PROGRESS.value: 0}
    if department_ids == []:
        return {"new": 0, "in_progress": 0, "open": 0}
    school, departments = _tickets_sql()
    with connection.cursor() as cursor:
        if department_ids is None:
            cursor.execute(school, [T.NEW.value, T.IN_PROGRESS.value])
        else:
            cursor.execute(
                departments.replace("{scope}", _in("s.department_id", department_ids)),
                [T.NEW.value, T.IN_PROGRESS.value, *department_ids],
            )
        counts.update(cursor.fetchall())
    new, in_progress = counts[T.NEW.value], counts[T.IN_PROGRESS.value]
    return {"new": new, "in_progress": in_progress, "open": new + in_progress}


@cache
def _sign_offs_sql():
    reader = ModelReader(DepartmentSignOff)
    return (
        f'SELECT {reader.columns} FROM "{reader.table}" WHERE "{reader.table}"."campaign_id" = %s '
        f'AND "{reader.table}"."withdrawn_at" IS NULL',
        reader,
    )


def current_sign_offs(*, campaign: Campaign, department_ids: list | None = None) -> dict:
    """{department id: its sign-off not withdrawn} for a campaign (of some departments): one query."""
    sql, reader = _sign_offs_sql()
    params = [campaign.pk]
    if department_ids is not None:
        if not department_ids:
            return {}
        sql += f' AND "{reader.table}".' + _in('"department_id"', department_ids)
        params += department_ids
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        sign_offs = [reader.read(row, connection) for row in cursor.fetchall()]
    return {s.department_id: s for s in sign_offs}
