"""Completion counts for the department and school dashboards.

Each function runs a fixed number of queries whatever the number of classes
and students: checklists are grouped by (group, state) in the database and
pivoted here (shared/PERFORMANCE.md, finding 4).
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate

from students.models import ClassGroup, Cohort, Department

from .models import Campaign, Checklist

State = Checklist.State


@dataclass
class Counts:
    by_state: dict = field(default_factory=lambda: defaultdict(int))

    def add(self, state: str, n: int):
        self.by_state[state] += n

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

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
        return self.confirmed + self.flagged

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


def _grouped(checklists: QuerySet, key: str) -> tuple[dict, Counts]:
    groups: dict = defaultdict(Counts)
    total = Counts()
    for group_id, state, n in checklists.values_list(key, "state").annotate(n=Count("id")).order_by():
        groups[group_id].add(state, n)
        total.add(state, n)
    return groups, total


def class_progress(*, campaign: Campaign, departments: QuerySet) -> tuple[list[tuple], Counts]:
    """[(class, Counts)] for the classes of some departments, plus their total.  Two queries."""
    groups, total = _grouped(
        Checklist.objects.filter(campaign=campaign, student__department__in=departments), "student__class_group_id"
    )
    classes = {c.pk: c for c in ClassGroup.objects.filter(pk__in=[k for k in groups if k]).select_related("department")}
    rows = [(classes.get(class_id), counts) for class_id, counts in groups.items()]
    rows.sort(key=lambda row: (row[0].department.name, row[0].name) if row[0] else ("", ""))
    return rows, total


def department_progress(*, campaign: Campaign) -> tuple[list[tuple], Counts]:
    """[(department, Counts)] across the school, plus the school total.  Two queries."""
    groups, total = _grouped(Checklist.objects.filter(campaign=campaign), "student__department_id")
    departments = Department.objects.in_bulk(list(groups))
    rows = sorted(((departments[k], v) for k, v in groups.items()), key=lambda row: row[0].name)
    return rows, total


def cohort_progress(*, campaign: Campaign) -> list[tuple]:
    groups, _total = _grouped(Checklist.objects.filter(campaign=campaign), "student__cohort_id")
    cohorts = Cohort.objects.in_bulk([k for k in groups if k])
    return sorted(((cohorts.get(k), v) for k, v in groups.items()), key=lambda row: str(row[0]))


def daily_progress(*, campaign: Campaign) -> list[dict]:
    """Students finishing per day and cumulative completion, for the progress chart."""
    total = Checklist.objects.filter(campaign=campaign).count()
    per_day = (
        Checklist.objects.filter(campaign=campaign, finished_at__isnull=False)
        .annotate(day=TruncDate("finished_at"))
        .values_list("day")
        .annotate(n=Count("id"))
        .order_by("day")
    )
    cumulative, days = 0, []
    for day, n in per_day:
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
    for state, n in checklists.values_list("state").annotate(n=Count("id")).order_by():
        counts.add(state, n)
    return counts
