"""Completion counts for the department and school dashboards.

Each function runs a fixed number of queries whatever the number of classes
and students: checklists are grouped by (group, state) in the database and
pivoted here (docs/performance.md §2, decision 4).
"""

import datetime
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import BooleanField, Count, DateTimeField, ExpressionWrapper, Func, Q, QuerySet, Value
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext

from students.models import ClassGroup, Cohort, Department

from .models import Campaign, Checklist

State = Checklist.State


class DateBin(Func):
    """PostgreSQL's ``date_bin(stride, source, origin)``: plain arithmetic, unlike AT TIME ZONE per row."""

    function = "date_bin"
    output_field = DateTimeField()


def finish_day(campaign: Campaign):
    """The local day of each first finish, as an expression to group by.

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
        return TruncDate("finished_at")
    return DateBin(Value(datetime.timedelta(days=1)), "finished_at", Value(origin))


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


def class_progress(
    *, campaign: Campaign, departments: QuerySet, classes: QuerySet | None = None
) -> tuple[list[tuple], Counts]:
    """[(class or NoClass, Counts)] for the classes of some departments (or only ``classes``: a
    counsellor's), plus their total.

    Grouped by department too, so that students without a class still count
    in their own department.  Two queries (three when some have no class); the
    counts are an index-only scan of the checklists' own scope columns
    (checklist_scope_counts), with no join to the students (docs/performance.md §6).
    """
    groups: dict = defaultdict(Counts)
    total = Counts()
    checklists = Checklist.objects.filter(campaign=campaign, department__in=departments)
    if classes is not None:
        checklists = checklists.filter(class_group__in=classes)
    grouped = (
        checklists.values_list("department_id", "class_group_id", "state")
        .annotate(n=Count("*"), finished_once=Count("finished_at"))
        .order_by()
    )
    for department_id, class_id, state, n, finished_once in grouped:
        groups[(department_id, class_id)].add_row(state, n, finished_once)
        total.add_row(state, n, finished_once)
    classes = ClassGroup.objects.select_related("department").in_bulk([c for _d, c in groups if c])
    classless = [d for d, c in groups if c is None]
    departments_by_id = Department.objects.in_bulk(classless) if classless else {}
    rows = [(classes[c] if c else NoClass(departments_by_id[d]), counts) for (d, c), counts in groups.items()]
    rows.sort(key=lambda row: (row[0].department.name, row[0].pk is None, row[0].name))
    return rows, total


def school_overview(*, campaign: Campaign) -> tuple[list[tuple], list[tuple], Counts, dict]:
    """[(department, Counts)], [(cohort, Counts)], the school total and {day: first finishes}
    (for ``daily_progress``).  Three queries.

    The tables and the chart come from one aggregate over the checklists' own
    scope columns, with no join to the students (docs/performance.md §6).
    """
    by_department, by_cohort, total = defaultdict(Counts), defaultdict(Counts), Counts()
    per_day: dict = defaultdict(int)
    grouped = (
        Checklist.objects.filter(campaign=campaign)
        .annotate(day=finish_day(campaign))
        .values_list("department_id", "cohort_id", "state", "day")
        .annotate(n=Count("*"))
        .order_by()
    )
    for department_id, cohort_id, state, day, n in grouped:
        day = day_of(day)
        was_finished = day is not None
        by_department[department_id].add(state, n, was_finished)
        by_cohort[cohort_id].add(state, n, was_finished)
        total.add(state, n, was_finished)
        if was_finished and state != State.EXCLUDED:
            per_day[day] += n
    departments = Department.objects.in_bulk(list(by_department))
    cohorts = Cohort.objects.in_bulk([k for k in by_cohort if k])
    department_rows = sorted(((departments[k], v) for k, v in by_department.items()), key=lambda row: row[0].name)
    cohort_rows = sorted(((cohorts.get(k), v) for k, v in by_cohort.items()), key=lambda row: str(row[0]))
    return department_rows, cohort_rows, total, dict(per_day)


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
