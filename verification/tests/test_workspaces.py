"""The department and registrar workspaces through real HTTP requests.

Dashboards, class pages and the class progress link; the review queue and its
actions; answers recorded on a student's behalf; the registrar's correction
queue and the loop back to the student once a new roster carries the fix.
Each page runs a fixed number of queries whatever the size of the school.
"""

import copy
import datetime
import re
from html.parser import HTMLParser

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from students.models import Cohort, ImportFinding, Student
from students.services import roster_import
from students.tests.factories import (
    ClassGroupFactory,
    CohortFactory,
    DepartmentFactory,
    SecretaryFactory,
    StudentFactory,
    UserFactory,
    another_id_number,
)
from students.tests.rosters import as_table, base_rows, write_xlsx
from students.tests.sessions import resume, session_of
from verification import services
from verification.models import Checklist, ClassProgressLink, FieldCheck, Flag, FlagEvent

from .factories import CampaignFactory, png_bytes, student_with_account, upload
from .pages import checklist_url, confirm, html, messages_of, row, text
from .shared_cast import SharedCast

pytestmark = pytest.mark.django_db

S = Flag.Status


# ---------------------------------------------------------------------------
# Reading pages
# ---------------------------------------------------------------------------


class _Tables(HTMLParser):
    """Every table of a page as rows of cell texts, with the heading above it."""

    def __init__(self):
        super().__init__()
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.heading = ""
        self._heading_parts = None
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        if tag in ("h1", "h2"):
            self._heading_parts = []
        elif tag == "table":
            self.tables.append((self.heading, []))
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("h1", "h2") and self._heading_parts is not None:
            self.heading = " ".join("".join(self._heading_parts).split())
            self._heading_parts = None
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1][1].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._heading_parts is not None:
            self._heading_parts.append(data)
        if self._cell is not None:
            self._cell.append(data)


def table(page: str, heading: str) -> list[dict]:
    """The rows of the table under the heading that starts with ``heading``, keyed by column title."""
    parser = _Tables()
    parser.feed(page)
    for title, (header, *rows) in parser.tables:
        if title.startswith(heading):
            return [dict(zip(header, cells, strict=False)) for cells in rows]
    raise AssertionError(f"no table under {heading!r}")


COLUMNS = ["人数", "已确认", "已报错", "核对中", "未开始", "逾期", "完成率"]


def counts(rows: list[dict], name: str) -> list:
    """The counts (人数 … 完成率) of the row whose first cell is ``name``."""
    for cells in rows:
        if next(iter(cells.values())) == name:
            return [int(cells[c]) if cells[c].isdigit() else cells[c] for c in COLUMNS]
    raise AssertionError(f"no row {name!r} in {rows}")


def first_column(rows: list[dict]) -> list[str]:
    return [next(iter(cells.values())) for cells in rows]


def flag_cards(page: str) -> list[str]:
    return re.findall(r'<article class="card flag-card">.*?</article>', page, re.S)


def card_of(page: str, student) -> str:
    cards = [card for card in flag_cards(page) if student.student_number in card]
    assert len(cards) == 1, f"{len(cards)} cards for {student}"
    return cards[0]


# ---------------------------------------------------------------------------
# Building a school and moving its students along
# ---------------------------------------------------------------------------


def pupils(class_group, n, cohort) -> list[Student]:
    return [
        student_with_account(department=class_group.department, class_group=class_group, cohort=cohort)
        for _ in range(n)
    ]


def checklist_of(campaign, student) -> Checklist:
    return Checklist.objects.get(campaign=campaign, student=student)


def refreshed(student) -> Student:
    return Student.objects.get(pk=student.pk)


def confirm_everything(campaign, student, *, by=None, now=None):
    return services.checklist_confirm_all(
        checklist_id=checklist_of(campaign, student).pk,
        record_version=refreshed(student).version,
        by=by or student.user,
        now=now,
    )


def start(campaign, student, *, now=None):
    """One field confirmed: 核对中."""
    return services.field_confirm(
        checklist_id=checklist_of(campaign, student).pk,
        field_code="XM",
        record_version=refreshed(student).version,
        by=student.user,
        now=now,
    )


def raise_flag(campaign, student, code="BH", claimed="计算机2599", *, files=(), now=None) -> Flag:
    return services.field_flag(
        checklist_id=checklist_of(campaign, student).pk,
        field_code=code,
        claimed_value=claimed,
        explanation="班号写错了",
        files=files,
        record_version=refreshed(student).version,
        by=student.user,
        now=now,
    )


def finish_with_flag(campaign, student, code="BH", claimed="计算机2599", **kwargs) -> Flag:
    """Every field answered, one of them flagged: 已报错 (a finished check)."""
    confirm_everything(campaign, student)
    return raise_flag(campaign, student, code, claimed, **kwargs)


def act(client, flags, action, note="", **extra):
    data = {"flags": [f.pk for f in flags], "action": action, "note": note, **extra}
    return client.post(reverse("workspace:review_act"), data, follow=True)


def status_of(flag) -> str:
    return Flag.objects.values_list("status", flat=True).get(pk=flag.pk)


def build_classes(department, other_department) -> dict:
    return {
        "A": ClassGroupFactory(department=department, name="计算机2501"),
        "B": ClassGroupFactory(department=department, name="计算机2502"),
        "C": ClassGroupFactory(department=department, name="软件2501"),
        "X": ClassGroupFactory(department=other_department, name="英语2501"),
    }


def build_school(classes, cohort, registrar) -> dict:
    """Four classes in two departments, every student in one open campaign.

    计算机2501: 已报错, 未开始, 未开始 · 计算机2502: 已报错, 已报错 ·
    软件2501: 已确认, 核对中, 被退回, 未开始 · 英语2501 (外国语学院): 已确认.
    """
    people = {key: pupils(classes[key], n, cohort) for key, n in (("A", 3), ("B", 2), ("C", 4), ("X", 1))}
    campaign = CampaignFactory(name="2025级新生学籍核对", cohorts=[cohort], by=registrar)
    finish_with_flag(campaign, people["A"][0])
    finish_with_flag(campaign, people["B"][0])
    finish_with_flag(campaign, people["B"][1], code="MZ", claimed="回族")
    confirm_everything(campaign, people["C"][0])
    start(campaign, people["C"][1])
    returned = raise_flag(campaign, people["C"][2])
    reviewer = SecretaryFactory(departments=[people["C"][2].department])
    services.flag_transition(flag_id=returned.pk, to=S.RETURNED, by=reviewer, note="请写完整班号")
    confirm_everything(campaign, people["X"][0])
    return {"campaign": campaign, "people": people}


@pytest.fixture
def classes(department, other_department):
    return build_classes(department, other_department)


# ---------------------------------------------------------------------------
# Department dashboard
# ---------------------------------------------------------------------------


def dashboard(client, campaign, **params):
    response = client.get(reverse("workspace:dashboard"), {"campaign": campaign.pk, **params})
    assert response.status_code == 200
    return html(response)


def test_progress_chart_shows_finishes_per_day_and_cumulative_completion(client, registrar, cohort, classes):
    """Two finish on day 1, none on day 2, one on day 3; by day 5, 3 of 5 are done."""
    students = pupils(classes["A"], 5, cohort)

    def day(n):
        return timezone.make_aware(datetime.datetime(2025, 9, n, 10, 0))

    campaign = CampaignFactory(cohorts=[cohort], opens_at=day(1) - datetime.timedelta(hours=2), closes_at=day(20))
    confirm_everything(campaign, students[0], now=day(1))
    confirm_everything(campaign, students[1], now=day(1) + datetime.timedelta(hours=3))
    start(campaign, students[2], now=day(2))  # started, not finished: no bar
    confirm_everything(campaign, students[3], now=day(3))

    with time_machine.travel(day(5), tick=False):
        client.force_login(registrar)
        response = client.get(reverse("workspace:school"), {"campaign": campaign.pk})
    page = html(response)

    bars = re.findall(
        r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)" class="bar"><title>([^<]+)</title>', page
    )
    # One bar per day up to today, days without finishes included (the axis is time).
    assert [title for _height, title in bars] == [
        "09-01：2 人，累计 40%",
        "09-02：0 人，累计 40%",
        "09-03：1 人，累计 60%",
        "09-04：0 人，累计 60%",
        "09-05：0 人，累计 60%",
    ]
    heights = [float(height) for height, _title in bars]
    assert heights[0] == max(heights) and heights[2] == heights[0] / 2 and heights[1] == heights[3] == 0
    # The line climbs with cumulative completion (SVG y grows downwards) and never falls.
    points = re.search(r'<polyline points="([^"]+)" class="rate"/>', page).group(1).split()
    ys = [float(point.split(",")[1]) for point in points]
    assert len(ys) == 5 and ys[0] > ys[2] and ys == sorted(ys, reverse=True)
    chart = response.context["chart"]
    height = chart["base_y"] - chart["top_y"]
    assert ys[0] == pytest.approx(chart["base_y"] - height * 0.4, abs=0.1)
    assert ys[2] == pytest.approx(chart["base_y"] - height * 0.6, abs=0.1)
    assert "查询率：60%" in text(page)


def create_link(client, class_group, campaign) -> ClassProgressLink:
    response = client.post(
        reverse("workspace:progress_link_create", args=[class_group.pk]), {"campaign": campaign.pk}, follow=True
    )
    link = ClassProgressLink.objects.get(class_group=class_group, revoked_at__isnull=True)
    assert any("已生成班级进度链接" in m for m in messages_of(response))
    assert f"/p/{link.token}/" in html(response)  # offered on the class page, to copy
    return link


@pytest.fixture(scope="class")
def shared_school(class_rows):
    """The cast of ``TestOneSchool``, built once for its tests."""
    with class_rows(), translation.override(settings.LANGUAGE_CODE):
        department = DepartmentFactory(name="计算机学院")
        other_department = DepartmentFactory(name="外国语学院")
        cohort = CohortFactory(admission_year=2025, level="本科")
        registrar = UserFactory(role="registrar", username="registrar1")
        built = {
            "department": department,
            "other_department": other_department,
            "cohort": cohort,
            "registrar": registrar,
            "secretary": SecretaryFactory(departments=[department]),
            "classes": build_classes(department, other_department),
        }
        built["school"] = build_school(built["classes"], cohort, registrar)
        # Each signs in once (the same ``force_login`` a test used to run); the tests send that session's cookie.
        built["sessions"] = {user.pk: session_of(user) for user in (registrar, built["secretary"])}
        return built


class TestOneSchool:
    """Four classes in two departments, every student in one open campaign, built once for these tests.

    计算机2501: 已报错, 未开始, 未开始 · 计算机2502: 已报错, 已报错 ·
    软件2501: 已确认, 核对中, 被退回, 未开始 · 英语2501 (外国语学院): 已确认.
    Building the school for each test took most of their time (the review queue's tests too); each test gets a
    copy of the objects and its changes are rolled back.
    """

    @pytest.fixture
    def cast(self, db, shared_school):
        return copy.deepcopy(shared_school)

    @pytest.fixture
    def sign_in(self, shared_school):
        """The session the secretary or the registrar signed in with once, or a fresh sign-in for anyone else."""

        def sign_in(client, user):
            if user.pk in shared_school["sessions"]:
                resume(client, shared_school["sessions"][user.pk])
            else:
                client.force_login(user)

        return sign_in

    @pytest.fixture
    def department(self, cast):
        return cast["department"]

    @pytest.fixture
    def other_department(self, cast):
        return cast["other_department"]

    @pytest.fixture
    def cohort(self, cast):
        return cast["cohort"]

    @pytest.fixture
    def registrar(self, cast):
        return cast["registrar"]

    @pytest.fixture
    def secretary(self, cast):
        return cast["secretary"]

    @pytest.fixture
    def classes(self, cast):
        return cast["classes"]

    @pytest.fixture
    def school(self, cast):
        return cast["school"]

    def test_department_dashboard_counts_every_class_with_the_department_total_on_top(
        self, client, secretary, school, sign_in
    ):
        sign_in(client, secretary)
        page = dashboard(client, school["campaign"])

        per_class = table(page, "各班进度")
        assert list(per_class[0]) == ["班级", "院系", *COLUMNS]
        assert counts(per_class, "计算机2501") == [3, 0, 1, 0, 2, 0, "33%"]
        assert counts(per_class, "计算机2502") == [2, 0, 2, 0, 0, 0, "100%"]
        # 核对中 counts those who started and those whose flag was returned to them.
        assert counts(per_class, "软件2501") == [4, 1, 0, 2, 1, 0, "25%"]
        assert "英语2501" not in page and "外国语学院" not in page
        totals = table(page, "合计")
        assert counts(totals, "计算机学院") == [9, 1, 3, 2, 3, 0, "44%"]
        assert counts(totals, "总计") == [9, 1, 3, 2, 3, 0, "44%"]
        # The totals come first on the page.
        assert page.index("合计") < page.index("各班进度")

    def test_each_class_links_to_its_class_page(self, client, secretary, school, classes, sign_in):
        sign_in(client, secretary)
        page = dashboard(client, school["campaign"])
        url = reverse("workspace:class_detail", args=[classes["A"].pk])
        assert f'href="{url}?campaign={school["campaign"].pk}"' in page

    @pytest.mark.parametrize(
        ("sort", "order"),
        [
            ("class", ["计算机2501", "计算机2502", "软件2501"]),
            ("completion", ["软件2501", "计算机2501", "计算机2502"]),  # lowest completion first
            ("not_done", ["软件2501", "计算机2501", "计算机2502"]),  # most students not done first
            ("flagged", ["计算机2502", "计算机2501", "软件2501"]),  # most flags first
            ("nonsense", ["计算机2501", "计算机2502", "软件2501"]),  # unknown: by class
        ],
    )
    def test_department_dashboard_sorts_classes(self, client, secretary, school, sort, order, sign_in):
        sign_in(client, secretary)
        page = dashboard(client, school["campaign"], sort=sort)
        assert first_column(table(page, "各班进度")) == order

    def test_a_secretary_of_two_departments_sees_both(self, client, school, department, other_department, sign_in):
        sign_in(client, SecretaryFactory(departments=[department, other_department]))
        page = dashboard(client, school["campaign"])

        totals = table(page, "合计")
        assert counts(totals, "计算机学院")[0] == 9
        assert counts(totals, "外国语学院") == [1, 1, 0, 0, 0, 0, "100%"]
        assert counts(totals, "总计") == [10, 2, 3, 2, 3, 0, "50%"]
        assert "英语2501" in first_column(table(page, "各班进度"))
        # Narrowed to one department, the other disappears.
        page = dashboard(client, school["campaign"], department=other_department.pk)
        assert first_column(table(page, "各班进度")) == ["英语2501"]

    def test_students_without_a_class_count_in_their_own_department(
        self, client, school, cohort, department, other_department, sign_in
    ):
        """A roster without 班号 yet: those students are a 未分班 row of their department, not a department."""
        campaign = school["campaign"]
        for home in (department, other_department):
            student_with_account(department=home, class_group=None, class_name="", cohort=cohort)
        services.campaign_sync_students(campaign=campaign)
        sign_in(client, SecretaryFactory(departments=[department, other_department]))

        page = dashboard(client, campaign)

        totals = table(page, "合计")
        assert first_column(totals) == ["外国语学院", "计算机学院", "总计"]
        assert counts(totals, "计算机学院")[0] == 10 and counts(totals, "外国语学院")[0] == 2
        per_class = table(page, "各班进度")
        unassigned = [(row["班级"], row["院系"], row["人数"]) for row in per_class if row["班级"] == "未分班"]
        assert unassigned == [("未分班", "外国语学院", "1"), ("未分班", "计算机学院", "1")]
        # Within a department, the classes come first.
        assert first_column(per_class)[-1] == "未分班"

    def test_a_secretary_cannot_narrow_the_dashboard_to_another_department(
        self, client, secretary, school, other_department, sign_in
    ):
        sign_in(client, secretary)
        response = client.get(
            reverse("workspace:dashboard"), {"campaign": school["campaign"].pk, "department": other_department.pk}
        )
        assert response.status_code == 404
        assert "英语2501" not in html(response)

    def test_students_who_have_not_finished_become_overdue_when_the_campaign_closes(self, client, secretary, school):
        campaign = school["campaign"]
        with time_machine.travel(campaign.closes_at + datetime.timedelta(minutes=10)):
            # Those who never answered and the one who answered some fields but not all;
            # the returned flag stays with its student until the departments' deadline.
            assert services.campaigns_close_due() == 4
            client.force_login(secretary)  # signed in after the jump: an old session has expired
            page = dashboard(client, campaign, sort="overdue")

        per_class = table(page, "各班进度")
        assert counts(per_class, "计算机2501") == [3, 0, 1, 0, 0, 2, "33%"]
        assert counts(per_class, "软件2501") == [4, 1, 0, 1, 0, 2, "25%"]
        assert first_column(per_class) == ["计算机2501", "软件2501", "计算机2502"]
        assert counts(table(page, "合计"), "总计") == [9, 1, 3, 1, 0, 4, "44%"]

    # ---------------------------------------------------------------------------
    # School dashboard
    # ---------------------------------------------------------------------------

    def test_school_dashboard_by_department_and_by_cohort(
        self, client, registrar, school, classes, department, sign_in
    ):
        campaign = school["campaign"]
        older = CohortFactory(admission_year=2024, level="本科")
        seniors = pupils(classes["A"], 2, older)
        campaign.cohorts.add(older)
        services.campaign_sync_students(campaign=campaign)
        confirm_everything(campaign, seniors[0])
        sign_in(client, registrar)

        page = html(client.get(reverse("workspace:school"), {"campaign": campaign.pk}))

        by_department = table(page, "各院系")
        assert counts(by_department, "计算机学院") == [11, 2, 3, 2, 4, 0, "45%"]
        assert counts(by_department, "外国语学院") == [1, 1, 0, 0, 0, 0, "100%"]
        assert counts(by_department, "全校") == [12, 3, 3, 2, 4, 0, "50%"]
        by_cohort = table(page, "各年级")
        assert counts(by_cohort, "2025级本科") == [10, 2, 3, 2, 3, 0, "50%"]
        assert counts(by_cohort, "2024级本科") == [2, 1, 0, 0, 1, 0, "50%"]
        assert "查询率：50%" in text(page)
        # Each department leads to its dashboard.
        assert f"{reverse('workspace:dashboard')}?campaign={campaign.pk}&amp;department={department.pk}" in page

    def test_school_dashboard_without_finishes_has_no_chart(self, client, registrar, school, sign_in):
        Checklist.objects.update(state=Checklist.State.NOT_STARTED, finished_at=None)
        sign_in(client, registrar)
        page = html(client.get(reverse("workspace:school"), {"campaign": school["campaign"].pk}))
        assert "<svg" not in page and "查询率：0%" in text(page)

    # ---------------------------------------------------------------------------
    # Class page
    # ---------------------------------------------------------------------------

    def test_class_page_lists_students_with_state_last_activity_phone_and_masked_id(
        self, client, secretary, school, classes, sign_in
    ):
        campaign, (flagged, idle, _third) = school["campaign"], school["people"]["A"]
        Student.objects.filter(pk=flagged.pk).update(phone="13912345678")
        when = timezone.now() - datetime.timedelta(hours=5)
        Checklist.objects.filter(campaign=campaign, student=flagged).update(last_activity_at=when)
        sign_in(client, secretary)

        page = html(client.get(reverse("workspace:class_detail", args=[classes["A"].pk]), {"campaign": campaign.pk}))

        rows = {cells["姓名"]: cells for cells in table(page, "计算机2501")}
        assert set(rows) == {s.name for s in school["people"]["A"]}
        shown = {key: rows[flagged.name][key] for key in ("学号", "状态", "最近操作", "手机号码", "证件号码")}
        assert shown == {
            "学号": flagged.student_number,
            "状态": "已报错",
            "最近操作": timezone.localtime(when).strftime("%Y-%m-%d %H:%M"),
            "手机号码": "13912345678",
            "证件号码": "**************" + flagged.id_number[-4:],
        }
        assert (rows[idle.name]["状态"], rows[idle.name]["最近操作"]) == ("未开始", "—")
        for student in school["people"]["A"]:
            assert student.id_number not in page
            assert student.id_number[:14] not in page
        assert "英语2501" not in page

    def test_class_page_filters_to_students_not_yet_done(self, client, secretary, school, classes, sign_in):
        campaign = school["campaign"]
        sign_in(client, secretary)
        url = reverse("workspace:class_detail", args=[classes["C"].pk])

        page = html(client.get(url, {"campaign": campaign.pk, "filter": "not_done"}))

        listed = {cells["姓名"]: cells["状态"] for cells in table(page, "软件2501")}
        confirmed, started, returned, idle = school["people"]["C"]
        assert listed == {started.name: "核对中", returned.name: "被退回待修改", idle.name: "未开始"}
        assert "显示全部学生" in page
        everyone = html(client.get(url, {"campaign": campaign.pk}))
        assert confirmed.name in everyone

    def test_class_page_of_a_fully_done_class_says_so(self, client, secretary, school, classes, sign_in):
        sign_in(client, secretary)
        url = reverse("workspace:class_detail", args=[classes["B"].pk])
        page = html(client.get(url, {"campaign": school["campaign"].pk, "filter": "not_done"}))
        assert "全班都已完成核对。" in page

    # ---------------------------------------------------------------------------
    # Class progress link
    # ---------------------------------------------------------------------------

    def test_progress_link_shows_counts_and_names_not_done_and_nothing_else(
        self, client, secretary, school, classes, sign_in
    ):
        campaign = school["campaign"]
        sign_in(client, secretary)
        link = create_link(client, classes["C"], campaign)
        client.logout()

        response = client.get(reverse("class_progress_public", args=[link.token]))

        assert response.status_code == 200
        assert response["X-Robots-Tag"] == "noindex, nofollow" and response["Referrer-Policy"] == "no-referrer"
        page = html(response)
        body = text(page[page.index("<main>") :])
        confirmed, started, returned, idle = school["people"]["C"]
        assert "已完成 1 / 4 人" in body and "还未完成的同学（3）" in body
        assert f"{started.name}、{returned.name}、{idle.name}" in body
        assert confirmed.name not in page  # those done are not named
        for student in school["people"]["C"]:
            for secret in (student.student_number, student.phone, student.id_number, student.masked_id_number):
                assert secret not in page, secret
        assert "计算机学院" not in page and "<form" not in page
        # One link only: the way into the portal for a classmate who has not started.
        assert re.findall(r"<a [^>]*>", page) == [
            f'<a class="button primary" id="portal-link" href="{reverse("verification:my_checks")}">'
        ]
        for other in school["people"]["A"] + school["people"]["X"]:
            assert other.name not in page

    def test_a_revoked_progress_link_no_longer_opens(self, client, secretary, school, classes, sign_in):
        campaign = school["campaign"]
        sign_in(client, secretary)
        link = create_link(client, classes["C"], campaign)

        response = client.post(reverse("workspace:progress_link_revoke", args=[link.pk]), follow=True)

        assert "链接已撤销，群里的旧链接将无法打开。" in messages_of(response)
        assert link.token not in html(response)
        client.logout()
        assert client.get(reverse("class_progress_public", args=[link.token])).status_code == 404

    def test_an_expired_progress_link_no_longer_opens_nor_is_offered(self, client, secretary, school, classes, sign_in):
        campaign = school["campaign"]
        sign_in(client, secretary)
        link = create_link(client, classes["C"], campaign)
        url = reverse("class_progress_public", args=[link.token])
        assert client.get(url).status_code == 200

        with time_machine.travel(link.expires_at + datetime.timedelta(minutes=1)):
            assert client.get(url).status_code == 404
            client.force_login(secretary)  # signed in after the jump: an old session has expired
            page = html(
                client.get(reverse("workspace:class_detail", args=[classes["C"].pk]), {"campaign": campaign.pk})
            )
        assert link.token not in page

    # ---------------------------------------------------------------------------
    # Review queue and its bulk actions
    # ---------------------------------------------------------------------------

    def test_review_queue_lists_only_the_secretarys_departments(self, client, secretary, school, sign_in):
        sign_in(client, secretary)
        page = html(client.get(reverse("workspace:review_queue"), {"status": S.RETURNED}))
        returned = school["people"]["C"][2]
        assert returned.name in page
        page = html(client.get(reverse("workspace:review_queue")))
        assert len(flag_cards(page)) == 3  # 计算机2501 one, 计算机2502 two
        assert school["people"]["X"][0].name not in page

    def test_forward_and_return_in_bulk(self, client, secretary, school, sign_in):
        campaign = school["campaign"]
        first, second = Flag.objects.filter(status=S.SUBMITTED, checklist__student__class_group__name="计算机2502")
        third = Flag.objects.get(status=S.SUBMITTED, checklist__student__class_group__name="计算机2501")
        sign_in(client, secretary)

        response = act(client, [first, second], "forward")
        assert "已处理 2 条报错。" in messages_of(response)
        assert {status_of(first), status_of(second)} == {S.FORWARDED}

        # A bulk action moves what it can and names what it could not: the student and the field.
        response = act(client, [first, third], "return", note="请补充户口簿本人页")
        assert "已处理 1 条报错。" in messages_of(response)
        student = first.checklist.student
        assert (
            f"{student.name}（{student.student_number}）的“{first.field.label}”：报错当前为“院系已审核，待学籍科受理”，"
            in (" ".join(messages_of(response)))
        )
        assert not any(m.startswith("#") for m in messages_of(response))
        assert (status_of(first), status_of(third)) == (S.FORWARDED, S.RETURNED)
        assert checklist_of(campaign, third.checklist.student).state == Checklist.State.RETURNED

    def test_a_bulk_action_without_a_selection_asks_for_one(self, client, secretary, school, sign_in):
        sign_in(client, secretary)
        response = client.post(reverse("workspace:review_act"), {"action": "forward"}, follow=True)
        assert "请至少选择一条报错。" in messages_of(response)
        assert not Flag.objects.filter(status=S.FORWARDED).exists()

    def test_a_flag_of_another_department_and_a_missing_one_get_the_same_message(
        self, client, secretary, school, sign_in
    ):
        """Issue 11 item 8: the answer must not tell that a flag exists elsewhere."""
        foreign = raise_flag(school["campaign"], school["people"]["X"][0], "MZ", "回族")
        missing = Flag.objects.order_by("-pk").first().pk + 1000
        sign_in(client, secretary)

        out_of_scope = messages_of(act(client, [foreign], "forward"))
        not_there = messages_of(
            client.post(reverse("workspace:review_act"), {"flags": [missing], "action": "forward"}, follow=True)
        )

        assert out_of_scope == not_there == ["1 条选中的报错不存在或已不在你的处理范围内。"]
        assert status_of(foreign) == S.SUBMITTED

    def test_a_bulk_note_with_a_flag_out_of_scope_writes_no_note_at_all(self, client, secretary, school, sign_in):
        own = Flag.objects.filter(checklist__student__department=secretary.departments.get()).first()
        foreign = raise_flag(school["campaign"], school["people"]["X"][0], "MZ", "回族")
        sign_in(client, secretary)

        response = act(client, [own, foreign], "note", note="请补交材料")

        assert response.status_code == 404
        assert not FlagEvent.objects.filter(action=FlagEvent.Action.NOTE).exists()


# ---------------------------------------------------------------------------
# Review queue
# ---------------------------------------------------------------------------


def test_review_queue_shows_values_evidence_findings_and_authority(client, secretary, me, campaign):
    flag = finish_with_flag(campaign, me, "MZ", "回族", files=[upload("户口簿.png", png_bytes(), "image/png")])
    ImportFinding.objects.create(
        student=me, field_code="MZ", kind=ImportFinding.Kind.UNKNOWN_ETHNICITY, message="民族“穿青人”不在名录中"
    )
    client.force_login(secretary)

    card = card_of(html(client.get(reverse("workspace:review_queue"))), me)

    compare = text(re.search(r'<dl class="compare">.*?</dl>', card, re.S).group())
    assert compare == f"学信网上的值 {me.ethnicity} 学生填写的正确值 回族"
    evidence = flag.evidence.get()
    assert f'href="{reverse("verification:evidence_download", args=[evidence.pk])}">户口簿.png</a>' in card
    assert "民族不在 GB/T 3304 名录中：民族“穿青人”不在名录中" in text(card)
    assert "需省级审核" in card and "民族" in card
    assert "说明：班号写错了" in text(card)


def test_review_queue_shows_the_school_authority_and_masks_id_numbers(client, secretary, me, campaign):
    raise_flag(campaign, me, "BH", "计算机2599")
    claimed = another_id_number(me)
    raise_flag(campaign, me, "SFZH", claimed)
    client.force_login(secretary)

    page = html(client.get(reverse("workspace:review_queue")))

    cards = flag_cards(page)
    bh = next(card for card in cards if "班级" in card)
    assert "学校可改" in bh
    id_card = next(card for card in cards if "证件号码" in card)
    assert "**************" + me.id_number[-4:] in id_card
    for number in (me.id_number, claimed):
        assert number not in page and number[:14] not in page


def test_forward_one_flag(client, secretary, me, campaign):
    flag = finish_with_flag(campaign, me)
    client.force_login(secretary)

    response = act(client, [flag], "forward", next=reverse("workspace:review_queue"))

    assert "已处理 1 条报错。" in messages_of(response)
    assert status_of(flag) == S.FORWARDED
    event = FlagEvent.objects.filter(flag=flag).last()
    assert (event.action, event.actor, event.from_status) == (FlagEvent.Action.FORWARDED, secretary, S.SUBMITTED)
    # It leaves the queue of flags waiting for review.
    assert me.name not in html(response)


def test_return_with_a_reason_and_the_student_reads_it(client, secretary, me, campaign):
    flag = finish_with_flag(campaign, me, "ZYMC", "软件工程")
    client.force_login(secretary)

    response = act(client, [flag], "return", note="专业名称括号内的内容无需核对")

    assert "已处理 1 条报错。" in messages_of(response)
    flag.refresh_from_db()
    assert (flag.status, flag.return_reason) == (S.RETURNED, "专业名称括号内的内容无需核对")
    assert checklist_of(campaign, me).state == Checklist.State.RETURNED
    client.force_login(me.user)
    zymc = text(row(html(client.get(checklist_url(campaign))), "ZYMC"))
    assert "退回原因：专业名称括号内的内容无需核对" in zymc


def test_return_without_a_reason_is_refused(client, secretary, me, campaign):
    flag = finish_with_flag(campaign, me)
    client.force_login(secretary)

    response = act(client, [flag], "return", note="   ")

    assert any("退回时请填写原因" in m for m in messages_of(response))
    assert status_of(flag) == S.SUBMITTED
    assert checklist_of(campaign, me).state == Checklist.State.FLAGGED


def test_a_note_is_added_to_the_history_without_moving_the_flag(client, secretary, me, campaign):
    flag = finish_with_flag(campaign, me)
    client.force_login(secretary)

    response = act(client, [flag], "note", note="已电话联系，周五前补交材料")

    assert "已添加备注。" in messages_of(response)
    assert status_of(flag) == S.SUBMITTED
    event = FlagEvent.objects.filter(flag=flag).last()
    assert (event.action, event.note, event.actor) == (
        FlagEvent.Action.NOTE,
        "已电话联系，周五前补交材料",
        secretary,
    )
    assert any("备注不能为空" in m for m in messages_of(act(client, [flag], "note", note="")))
    assert FlagEvent.objects.filter(flag=flag, action=FlagEvent.Action.NOTE).count() == 1


def test_a_secretary_cannot_accept_or_mark_corrected_from_the_queue(client, secretary, me, campaign):
    flag = finish_with_flag(campaign, me)
    client.force_login(secretary)
    act(client, [flag], "forward")

    for action in ("accept", "chsi_submitted", "corrected"):
        response = act(client, [flag], action)
        assert "请选择操作。" in messages_of(response), action
        assert status_of(flag) == S.FORWARDED


def test_another_departments_secretary_cannot_act_on_a_flag(client, other_secretary, me, campaign):
    flag = finish_with_flag(campaign, me)
    events = FlagEvent.objects.count()
    client.force_login(other_secretary)

    response = act(client, [flag], "forward")

    assert messages_of(response) == ["1 条选中的报错不存在或已不在你的处理范围内。"]
    assert me.name not in " ".join(messages_of(response))
    assert act(client, [flag], "note", note="看看").status_code == 404
    assert status_of(flag) == S.SUBMITTED and FlagEvent.objects.count() == events


def test_after_a_refusal_the_chosen_action_and_the_note_are_kept(client, secretary, me, campaign):
    flag = finish_with_flag(campaign, me)
    client.force_login(secretary)

    response = act(client, [flag], "return", note="   ", next=reverse("workspace:review_queue"))

    assert any("退回时请填写原因" in m for m in messages_of(response))
    page = html(response)
    assert re.search(r'<option value="return" selected>', page)
    assert not re.search(r'<option value="forward" selected>', page)
    # Shown once: a fresh visit starts from the first action again.
    again = html(client.get(reverse("workspace:review_queue")))
    assert not re.search(r"<option value=\"\w+\" selected>", again.split('id="action"')[1].split("</select>")[0])

    response = act(client, [flag], "return", note="", next=reverse("workspace:review_queue"))
    assert re.search(r'<option value="return" selected>', html(response))


def bulk_options(page) -> list[str]:
    menu = page.split('id="action"')[1].split("</select>")[0]
    return re.findall(r'<option value="(\w+)"', menu)


def test_the_queues_offer_only_the_actions_the_user_may_take(client, secretary, registrar, me, campaign):
    finish_with_flag(campaign, me)
    client.force_login(secretary)
    assert bulk_options(html(client.get(reverse("workspace:review_queue")))) == ["forward", "return", "note"]
    # Flags already with the registrar: a secretary can only add notes to them.
    assert bulk_options(html(client.get(reverse("workspace:review_queue"), {"status": S.FORWARDED}))) == ["note"]

    client.force_login(registrar)
    assert bulk_options(html(client.get(reverse("workspace:correction_queue")))) == [
        "accept",
        "chsi_submitted",
        "corrected",
        "return",
        "note",
    ]
    # Narrowed to forwarded flags, only what can be done to them.
    forwarded = html(client.get(reverse("workspace:correction_queue"), {"status": S.FORWARDED}))
    assert bulk_options(forwarded) == ["accept", "return", "note"]


# ---------------------------------------------------------------------------
# Answers recorded on a student's behalf (a paper form handed in)
# ---------------------------------------------------------------------------


def test_proxy_confirmation_is_stored_with_the_secretarys_name(client, secretary, me, campaign):
    client.force_login(secretary)
    url = reverse("workspace:proxy_confirm_all", args=[me.pk])

    refused = client.post(url, {"campaign": campaign.pk, "record_version": me.version}, follow=True)
    assert "请确认学生已在纸质登记表上签字。" in messages_of(refused)
    assert not FieldCheck.objects.exists()

    response = client.post(url, {"campaign": campaign.pk, "record_version": me.version, "attest": "on"}, follow=True)

    assert "已代为登记：全部正确。" in messages_of(response)
    checks = FieldCheck.objects.filter(checklist__student=me)
    assert checks.count() == len(campaign.checked_fields())
    assert set(checks.values_list("is_proxy", "answered_by", "status")) == {(True, secretary.pk, "confirmed")}
    checklist = checklist_of(campaign, me)
    assert checklist.state == Checklist.State.CONFIRMED and checklist.attested_at
    assert "已确认无误" in html(response) and "正确（代为登记）" in html(response)


def test_proxy_flag_is_stored_with_the_secretarys_name_and_reviewed_like_any_other(client, secretary, me, campaign):
    client.force_login(secretary)
    url = reverse("workspace:proxy_flag", args=[me.pk, "BH"])
    assert "代 王小明 登记“班级”有误" in html(client.get(url, {"campaign": campaign.pk}))

    response = client.post(
        url,
        {"campaign": campaign.pk, "record_version": me.version, "claimed_value": "计算机2599", "explanation": "纸质表"},
        follow=True,
    )

    assert "已代为登记“班级”的报错。" in messages_of(response)
    flag = Flag.objects.get()
    assert (flag.is_proxy, flag.created_by, flag.claimed_value, flag.status) == (
        True,
        secretary,
        "计算机2599",
        S.SUBMITTED,
    )
    answer = FieldCheck.objects.get(checklist__student=me, field_code="BH")
    assert (answer.status, answer.is_proxy, answer.answered_by) == ("flagged", True, secretary)
    assert FlagEvent.objects.get(flag=flag).actor == secretary
    assert "有误（代为登记）" in html(response)
    card = card_of(html(client.get(reverse("workspace:review_queue"))), me)
    assert "代为登记" in card


def test_proxy_answers_are_refused_once_the_campaign_is_closed(client, secretary, me, campaign):
    with time_machine.travel(campaign.closes_at + datetime.timedelta(minutes=1)):
        client.force_login(secretary)
        response = client.post(
            reverse("workspace:proxy_confirm_all", args=[me.pk]),
            {"campaign": campaign.pk, "record_version": me.version, "attest": "on"},
            follow=True,
        )
    assert "核对已截止，不能再修改" in messages_of(response)
    assert not FieldCheck.objects.exists()


# ---------------------------------------------------------------------------
# Correction queue and the loop back to the student
# ---------------------------------------------------------------------------


def sections(page: str) -> dict[str, str]:
    """The correction queue's groups: heading (without the count) → its HTML."""
    parts = re.split(r"<h2>", page)[1:]
    return {re.sub(r"（\d+）$", "", part.split("</h2>")[0]): part for part in parts}


def fields_in(section: str) -> set[str]:
    return set(re.findall(r"<p><strong>([^<]+)</strong>", section))


def forward_three(me, campaign, secretary):
    """Three forwarded flags of one student: 班级 and 入学日期 (school), 姓名 (province)."""
    confirm_everything(campaign, me)
    flags = [
        raise_flag(campaign, me, "BH", "计算机2599"),
        raise_flag(campaign, me, "RXRQ", "2025-09-02"),
        raise_flag(campaign, me, "XM", "王晓明"),
    ]
    services.flags_transition_bulk(flag_ids=[f.pk for f in flags], to=S.FORWARDED, by=secretary)
    return flags


@pytest.fixture(scope="class")
def shared_forwarded(class_rows):
    """The cast of ``TestCorrectionQueue``, built once for its tests, each persona signed in once."""
    shared = SharedCast(class_rows)
    with class_rows(), translation.override(settings.LANGUAGE_CODE):
        built = shared.built
        built["forwarded"] = forward_three(built["me"], built["campaign"], built["secretary"])
    return shared


class TestCorrectionQueue:
    """A student's three flags forwarded to the registrar, built once for these tests (a copy for each)."""

    @pytest.fixture
    def cast(self, db, shared_forwarded):
        return shared_forwarded.copy()

    @pytest.fixture
    def sign_in(self, shared_forwarded):
        return shared_forwarded.sign_in

    @pytest.fixture
    def registrar(self, cast):
        return cast["registrar"]

    @pytest.fixture
    def secretary(self, cast):
        return cast["secretary"]

    @pytest.fixture
    def me(self, cast):
        return cast["me"]

    @pytest.fixture
    def campaign(self, cast):
        return cast["campaign"]

    @pytest.fixture
    def forwarded(self, cast):
        return cast["forwarded"]

    def test_correction_queue_groups_flags_by_who_can_fix_them(self, client, registrar, forwarded, sign_in):
        sign_in(client, registrar)
        groups = sections(html(client.get(reverse("workspace:correction_queue"))))
        assert fields_in(groups["学校可直接修改"]) == {"班级", "入学日期"}
        assert fields_in(groups["需省级主管部门审核"]) == {"姓名"}

    def test_a_school_can_configure_which_fields_need_provincial_approval(
        self, client, registrar, forwarded, settings, sign_in
    ):
        settings.ROLL_PROVINCE_APPROVAL_FIELDS = ["XM", "XB", "CSRQ", "SFZH", "RXRQ"]
        sign_in(client, registrar)
        page = html(client.get(reverse("workspace:correction_queue")))
        groups = sections(page)
        assert fields_in(groups["学校可直接修改"]) == {"班级"}
        assert fields_in(groups["需省级主管部门审核"]) == {"姓名", "入学日期"}
        rxrq = next(card for card in flag_cards(page) if "入学日期" in card)
        assert "需省级审核" in rxrq

    def test_a_secretary_has_no_correction_queue(self, client, secretary, forwarded, sign_in):
        sign_in(client, secretary)
        assert client.get(reverse("workspace:correction_queue")).status_code == 404

    def test_registrar_marks_flags_submitted_and_corrected_in_bulk_and_the_student_sees_it(
        self, client, registrar, me, campaign, forwarded, sign_in
    ):
        sign_in(client, registrar)
        assert "已处理 3 条报错。" in messages_of(act(client, forwarded, "accept"))
        assert "已处理 3 条报错。" in messages_of(act(client, forwarded, "chsi_submitted"))
        page = html(client.get(reverse("workspace:correction_queue"), {"status": S.SUBMITTED_TO_CHSI}))
        assert len(flag_cards(page)) == 3

        response = act(client, forwarded[:2], "corrected")

        assert "已处理 2 条报错。" in messages_of(response)
        assert [status_of(f) for f in forwarded] == [S.CORRECTED, S.CORRECTED, S.SUBMITTED_TO_CHSI]
        # Corrected flags leave the queue; the one still at CHSI stays.
        assert fields_in(html(client.get(reverse("workspace:correction_queue")))) == {"姓名"}

        sign_in(client, me.user)
        page = html(client.get(reverse("verification:flag_detail", args=[forwarded[0].pk])))
        assert "学信网已更正" in text(re.search(r'<p class="state-badge[^"]*">[^<]+</p>', page).group())
        timeline = text(page[page.index("处理记录") :])
        assert re.search(r"院系审核通过，转学籍科.*学籍科已受理.*已提交学信网更正.*学信网已更正", timeline)
        xm = text(row(html(client.get(checklist_url(campaign))), "XM"))
        assert "王晓明 · 已提交学信网更正" in xm


def import_rows(tmp_path, rows, name):
    header, data = as_table(rows)
    report = roster_import(path=write_xlsx(tmp_path / name, header, data), today=datetime.date(2025, 9, 15))
    assert not report.errors, report.errors
    return report


def test_once_a_new_roster_carries_the_correction_the_field_reopens_for_the_student(
    client, tmp_path, secretary, registrar
):
    rows = base_rows(2)
    import_rows(tmp_path, rows, "first.xlsx")
    alice = Student.objects.get(student_number=rows[0]["XH"])
    alice.user = UserFactory(username=alice.student_number)
    alice.save(update_fields=["user"])
    secretary.departments.add(alice.department)
    campaign = CampaignFactory(cohorts=[Cohort.objects.get(admission_year=2025, level="本科")])
    old_class, new_class = rows[0]["BH"], rows[0]["BH"][:-2] + "99"
    flag = finish_with_flag(campaign, alice, "BH", new_class)

    client.force_login(secretary)
    act(client, [flag], "forward")
    client.force_login(registrar)
    act(client, [flag], "accept")
    act(client, [flag], "corrected")
    assert status_of(flag) == S.CORRECTED
    client.force_login(alice.user)
    assert "学信网已更正" in text(row(html(client.get(checklist_url(campaign))), "BH"))

    rows[0]["BH"] = new_class
    import_rows(tmp_path, rows, "second.xlsx")

    answer = FieldCheck.objects.get(checklist__student=alice, field_code="BH")
    assert answer.status == FieldCheck.Status.REOPENED
    assert checklist_of(campaign, alice).state == Checklist.State.IN_PROGRESS
    bh = text(row(html(client.get(checklist_url(campaign))), "BH"))
    assert f"学籍数据已更新：{old_class} → {new_class}，请重新核对。" in bh
    confirm(client, campaign, "BH", version=refreshed(alice).version)
    assert checklist_of(campaign, alice).state == Checklist.State.CONFIRMED


def test_a_second_correction_of_the_same_field_also_reopens_it(client, tmp_path, secretary, registrar):
    """The student flags a field again after a first fix; the second fix closes the loop too."""
    rows = base_rows(1)
    import_rows(tmp_path, rows, "first.xlsx")
    alice = Student.objects.get(student_number=rows[0]["XH"])
    alice.user = UserFactory(username=alice.student_number)
    alice.save(update_fields=["user"])
    campaign = CampaignFactory(cohorts=[Cohort.objects.get(admission_year=2025, level="本科")])
    secretary.departments.add(alice.department)
    first_fix, second_fix = rows[0]["BH"][:-2] + "98", rows[0]["BH"][:-2] + "99"
    first = finish_with_flag(campaign, alice, "BH", first_fix)
    for to, by in ((S.FORWARDED, secretary), (S.ACCEPTED, registrar), (S.CORRECTED, registrar)):
        services.flag_transition(flag_id=first.pk, to=to, by=by)
    rows[0]["BH"] = first_fix
    import_rows(tmp_path, rows, "second.xlsx")
    assert FieldCheck.objects.get(checklist__student=alice, field_code="BH").status == FieldCheck.Status.REOPENED

    second = raise_flag(campaign, alice, "BH", second_fix)
    for to, by in ((S.FORWARDED, secretary), (S.ACCEPTED, registrar), (S.CORRECTED, registrar)):
        services.flag_transition(flag_id=second.pk, to=to, by=by)
    rows[0]["BH"] = second_fix
    import_rows(tmp_path, rows, "third.xlsx")

    answer = FieldCheck.objects.get(checklist__student=alice, field_code="BH")
    assert answer.status == FieldCheck.Status.REOPENED
    assert answer.previous_value == first_fix


# ---------------------------------------------------------------------------
# A fixed number of queries, whatever the size of the school
# ---------------------------------------------------------------------------


class GrowingSchool:
    """Classes in two departments and two cohorts; every fifth student in each state."""

    def __init__(self, departments, cohorts):
        self.departments, self.cohorts = departments, cohorts
        self.classes: list = []
        self.campaign = None

    def grow(self, n_classes: int, per_class: int):
        while len(self.classes) < n_classes:
            n = len(self.classes)
            self.classes.append(
                ClassGroupFactory(department=self.departments[n % 2], cohort=self.cohorts[n % 2], name=f"班{n:02d}")
            )
        fresh = []
        for index, class_group in enumerate(self.classes):
            have = class_group.students.count()
            fresh += pupils(class_group, per_class - have, self.cohorts[index % 2])
        if self.campaign is None:
            self.campaign = CampaignFactory(cohorts=self.cohorts)
        services.campaign_sync_students(campaign=self.campaign)
        reviewer = SecretaryFactory(departments=self.departments)
        for n, student in enumerate(fresh):
            kind = n % 5
            if kind == 0:
                confirm_everything(self.campaign, student)
            elif kind == 1:
                finish_with_flag(self.campaign, student, files=[upload("证明.png", png_bytes(), "image/png")])
                ImportFinding.objects.create(
                    student=student, field_code="BH", kind=ImportFinding.Kind.UNUSUAL_DURATION, message="学制不常见"
                )
            elif kind == 2:
                start(self.campaign, student)
            elif kind == 3:
                flag = finish_with_flag(self.campaign, student, "XM", "王晓明")
                services.flag_transition(flag_id=flag.pk, to=S.FORWARDED, by=reviewer)
        return self


def _students_on_dashboard(page):
    return counts(table(page, "合计"), "总计")[0]


# page → (its URL and query, what it shows that grows with the school)
PAGES = {
    "department dashboard": (
        lambda s: (reverse("workspace:dashboard"), {"campaign": s.campaign.pk}),
        _students_on_dashboard,
    ),
    "department dashboard, sorted": (
        lambda s: (reverse("workspace:dashboard"), {"campaign": s.campaign.pk, "sort": "completion"}),
        _students_on_dashboard,
    ),
    "school dashboard": (
        lambda s: (reverse("workspace:school"), {"campaign": s.campaign.pk}),
        lambda page: counts(table(page, "各院系"), "全校")[0],
    ),
    "class page": (
        lambda s: (reverse("workspace:class_detail", args=[s.classes[0].pk]), {"campaign": s.campaign.pk}),
        lambda page: len(table(page, "班00")),
    ),
    "review queue": (lambda s: (reverse("workspace:review_queue"), {}), lambda page: len(flag_cards(page))),
    "correction queue": (lambda s: (reverse("workspace:correction_queue"), {}), lambda page: len(flag_cards(page))),
}
# (small school, large school) as each page shows it
SIZES = {
    "department dashboard": (6, 20),
    "department dashboard, sorted": (6, 20),
    "school dashboard": (6, 20),
    "class page": (3, 5),
    "review queue": (1, 4),  # every fifth student's flag waits for review
    "correction queue": (1, 4),  # and every fifth student's is forwarded
}

QUERY_CASES = [
    *[("secretary", page) for page in ("department dashboard", "department dashboard, sorted", "class page")],
    ("secretary", "review queue"),
    *[("registrar", page) for page in PAGES if page != "department dashboard, sorted"],
]


def _measure(client, url, params) -> tuple:
    warm_up = client.get(url, params).status_code
    with CaptureQueriesContext(connection) as queries:
        page = client.get(url, params)
    return warm_up, page.status_code, html(page), len(queries)


@pytest.fixture(scope="class")
def measured_school(class_rows, tmp_path_factory):
    """The school measured small for every case, then grown once for all of them.

    Each viewer signs in once (``force_login``, as a case used to) and every measurement and case sends that
    session's cookie.  Growing to 4 classes × 5 still grows every count a page shows (classes, students,
    students in each state, each queue's flags) while costing a third of 6 × 10.
    """
    with (
        class_rows(),
        override_settings(PRIVATE_ROOT=tmp_path_factory.mktemp("school-private")),
        translation.override(settings.LANGUAGE_CODE),
    ):
        departments = [DepartmentFactory(name="计算机学院"), DepartmentFactory(name="外国语学院")]
        cohorts = [CohortFactory(admission_year=2025), CohortFactory(admission_year=2024)]
        school = GrowingSchool(departments, cohorts).grow(2, 3)
        school.viewers = {
            "registrar": UserFactory(role="registrar", username="registrar1"),
            "secretary": SecretaryFactory(departments=departments),
        }
        school.sessions = {}
        for viewer, user in school.viewers.items():
            school.sessions[viewer] = session_of(user)
        school.small = {}
        for viewer, page in QUERY_CASES:
            client = Client()
            resume(client, school.sessions[viewer])
            url, params = PAGES[page][0](school)
            school.small[viewer, page] = _measure(client, url, params)
        school.grow(4, 5)
    return school


@pytest.mark.xdist_group("measured_school")  # one worker builds the school, not each of them
class TestFixedNumberOfQueries:
    """2 classes × 3 students, then 4 classes × 5: the same number of queries.

    Growing the school for each case took most of these tests' time.
    """

    @pytest.mark.parametrize(("viewer", "page"), QUERY_CASES)
    def test_pages_run_a_fixed_number_of_queries(
        self, client, django_assert_num_queries, measured_school, page, viewer
    ):
        school = measured_school
        where, size = PAGES[page]
        warm_up, status, small_page, small_queries = school.small[viewer, page]
        assert warm_up == status == 200
        assert size(small_page) == SIZES[page][0]

        assert Checklist.objects.filter(campaign=school.campaign).count() == 20
        resume(client, school.sessions[viewer])
        url, params = where(school)
        # Warmed up as the small school was: a session's first request writes it.
        assert client.get(url, params).status_code == 200
        with django_assert_num_queries(small_queries):
            large_page = client.get(url, params)
        assert large_page.status_code == 200
        assert size(html(large_page)) == SIZES[page][1]


def test_the_data_quality_page_names_fields_by_label_with_the_code_after(client, registrar, department):
    student = StudentFactory(department=department)
    ImportFinding.objects.create(
        student=student, field_code="SFZH", kind=ImportFinding.Kind.ID_CHECKSUM, message="身份证号码校验位错误"
    )
    client.force_login(registrar)

    page = html(client.get(reverse("workspace:findings")))

    assert '<td>证件号码 <span class="hint field-code">SFZH</span></td>' in page
