"""A whole campaign, from its opening to the registrar's deadline, with the clock moved by time-machine.

The scheduled jobs run in-process as ``manage.py run_due_work`` runs them (Celery eager, e-mail in
``mail.outbox``): the reminder stages for students, the department digests up to the departments'
deadline, the close, returned flags closing at the departments' deadline.  Sign-offs, an extension
reopening the campaign and an excluded student leaving the rate happen on the way.  Runs on SQLite.
"""

import datetime
import uuid
import zoneinfo

from notices import digests, reminders
from notices.models import ReminderStage
from students.tests.factories import CohortFactory, DepartmentFactory, SecretaryFactory, StudentFactory, UserFactory
from verification import dashboards, services
from verification.exports.campaign_records import CampaignRecords
from verification.models import Campaign, CampaignEvent, Checklist, Flag

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
OPENS = datetime.datetime(2026, 9, 1, 8, 0, tzinfo=SHANGHAI)
CLOSES = datetime.datetime(2026, 9, 20, 17, 0, tzinfo=SHANGHAI)
DEPARTMENTS = datetime.datetime(2026, 9, 22, 17, 0, tzinfo=SHANGHAI)
REGISTRAR = datetime.datetime(2026, 9, 25, 17, 0, tzinfo=SHANGHAI)
State = Checklist.State
S = Flag.Status


def at(day: int, hour: int = 10) -> datetime.datetime:
    """A moment of September 2026 (Beijing time)."""
    return datetime.datetime(2026, 9, day, hour, 0, tzinfo=SHANGHAI)


class School:
    """Runs the due work at a moment and tells what went out: reminder stages (to whom) and digests."""

    def __init__(self, campaign, students, time_machine, mailoutbox, capture):
        self.campaign, self.time_machine, self.outbox, self.capture = campaign, time_machine, mailoutbox, capture
        self.names = {student.email: name for name, student in students.items()}

    def run(self, moment) -> dict:
        self.time_machine.move_to(moment, tick=False)
        before = len(self.outbox)
        sent = set(self.campaign.reminder_stages.filter(dispatched_at__isnull=False).values_list("pk", flat=True))
        with self.capture(execute=True):
            overdue = services.campaigns_close_due()
            reminders.reminders_dispatch_due()
            digests.digests_build_due()
        stages = self.campaign.reminder_stages.filter(dispatched_at__isnull=False).exclude(pk__in=sent)
        messages = self.outbox[before:]
        return {
            "overdue": overdue,
            "stages": [f"{s.kind}:{s.days_before}" for s in stages.order_by("send_at")],
            "reminded": {self.names[m.to[0]] for m in messages if m.to[0] in self.names},
            "digests": [m.to[0] for m in messages if m.to[0] not in self.names],
        }


def state(campaign, student) -> str:
    return Checklist.objects.get(campaign=campaign, student=student).state


def rate(campaign) -> tuple[int, int, int]:
    _rows, _cohorts, total = dashboards.school_progress(campaign=campaign)
    return total.done, total.total, total.completion_percent


def test_a_campaign_from_its_opening_to_the_registrars_deadline(
    db, time_machine, mailoutbox, django_capture_on_commit_callbacks, settings
):
    settings.DIGEST_TIME = "07:00"
    time_machine.move_to(OPENS - datetime.timedelta(days=7), tick=False)
    department = DepartmentFactory(name="计算机学院")
    cohort = CohortFactory()
    names = ["早完成", "被退回", "没动静", "参军", "做一半", "病假"]
    students = {}
    for name in names:
        student = StudentFactory(
            name=name, department=department, cohort=cohort, email=f"{uuid.uuid4().hex[:8]}@stu.edu"
        )
        student.user = UserFactory(username=student.student_number)
        student.save(update_fields=["user"])
        students[name] = student
    secretary = SecretaryFactory(departments=[department], email="mishu@cs.edu")
    registrar = UserFactory(role="registrar", username="xuejike")
    campaign = services.campaign_save(
        campaign=Campaign(
            name="2026级新生学籍核对",
            opens_at=OPENS,
            closes_at=CLOSES,
            departments_close_at=DEPARTMENTS,
            registrar_close_at=REGISTRAR,
        ),
        cohorts=[cohort],
        by=registrar,
    )
    checklist = {name: Checklist.objects.get(campaign=campaign, student=s) for name, s in students.items()}
    school = School(campaign, students, time_machine, mailoutbox, django_capture_on_commit_callbacks)

    def student_does(name, action, **kwargs):
        student = students[name]
        return action(checklist_id=checklist[name].pk, record_version=student.version, by=student.user, **kwargs)

    # Opening day: every student is reminded; the department gets its first digest.
    day = school.run(at(1))
    assert day["stages"] == ["opens:0"]
    assert day["reminded"] == set(names)
    assert day["digests"] == ["mishu@cs.edu"]

    # Week one: one finishes, one flags, one answers one field; one enlisted, excluded with the reason.
    time_machine.move_to(at(2), tick=False)
    student_does("早完成", services.checklist_confirm_all)
    student_does("被退回", services.checklist_confirm_all)
    flag = student_does("被退回", services.field_flag, field_code="XM", claimed_value="王晓明", explanation="身份证")
    student_does("做一半", services.field_confirm, field_code="XM")
    services.checklist_exclude(checklist_id=checklist["参军"].pk, reason=Checklist.Exclusion.ENLISTED, by=secretary)
    assert rate(campaign) == (2, 5, 40)  # the enlisted student left the denominator

    # Before the deadline: the stages remind only those not finished, never the excluded one.
    assert school.run(at(13, 18))["reminded"] == {"没动静", "做一半", "病假"}
    assert school.run(at(17, 18))["stages"] == ["before_close:3"]
    time_machine.move_to(at(19), tick=False)
    services.flag_transition(flag_id=flag.pk, to=S.RETURNED, by=secretary, note="请上传身份证照片")
    services.checklist_extend(checklist_id=checklist["病假"].pk, until=at(24, 17), by=secretary, note="住院")
    day = school.run(at(19, 18))
    assert day["stages"] == ["before_close:1"]
    assert day["reminded"] == {"被退回", "没动静", "做一半", "病假"}
    day = school.run(at(20, 9))
    assert day["stages"] == ["last_day:0"]

    # The close: unfinished students are overdue (the half-done one too); the returned flag and the
    # student with an extension are still open.
    day = school.run(at(20, 18))
    assert day["overdue"] == 2
    assert {n: state(campaign, students[n]) for n in names} == {
        "早完成": State.CONFIRMED,
        "被退回": State.RETURNED,
        "没动静": State.OVERDUE,
        "参军": State.EXCLUDED,
        "做一半": State.OVERDUE,
        "病假": State.NOT_STARTED,
    }
    assert reminders.due_stages(now=at(21))[0] == []  # no student reminders after the close
    # …but the department still gets its digest until the departments' deadline.
    assert school.run(at(21))["digests"] == ["mishu@cs.edu"]

    # The registrar extends the students' deadline by a day: the campaign reopens.
    time_machine.move_to(at(21, 11), tick=False)
    campaign = Campaign.objects.get(pk=campaign.pk)
    campaign.closes_at = at(21, 17)
    services.campaign_save(campaign=campaign, cohorts=[cohort], by=registrar)
    assert state(campaign, students["没动静"]) == State.NOT_STARTED
    assert state(campaign, students["做一半"]) == State.IN_PROGRESS
    student_does("没动静", services.checklist_confirm_all)
    assert school.run(at(21, 18))["overdue"] == 1  # only the half-done one again

    # The department signs off (the counts at that moment); the registrar withdraws it; it signs off again.
    time_machine.move_to(at(22, 9), tick=False)
    sign_off = services.department_sign_off(campaign=campaign, department=department, remark="初次确认", by=secretary)
    assert (sign_off.total, sign_off.finished, sign_off.overdue, sign_off.excluded) == (5, 2, 1, 1)
    services.sign_off_withdraw(sign_off_id=sign_off.pk, reason="被退回的报错尚未处理", by=registrar)
    assert school.run(at(22, 10))["digests"] == ["mishu@cs.edu"]  # not signed off: still chased

    # The departments' deadline: the returned flag was never resubmitted and closes; it shows so in the export.
    school.run(at(22, 18))
    flag.refresh_from_db()
    assert flag.status == S.NOT_RESUBMITTED
    services.department_sign_off(campaign=campaign, department=department, remark="再次确认", by=secretary)
    sheets = {sheet.title: list(sheet.rows) for sheet in CampaignRecords().sheets(registrar, {"campaign": campaign})}
    assert [row[5] for row in sheets["报错"]] == ["逾期未重新提交，已关闭"]
    assert [(row[1], row[4]) for row in sheets["不参加核对"]] == [("参军", "参军入伍")]

    # The student on sick leave answers within their own deadline; it runs out for nobody else.
    time_machine.move_to(at(23), tick=False)
    student_does("病假", services.checklist_confirm_all)
    assert school.run(at(25, 18))["digests"] == []  # past the departments' deadline: no more digests
    assert rate(campaign) == (4, 5, 80)
    history = list(CampaignEvent.objects.filter(campaign=campaign).values_list("action", flat=True))
    for action in ("excluded", "extended", "closed", "deadline_changed", "reopened", "signed_off", "flags_closed"):
        assert action in history, action
    assert ReminderStage.objects.filter(campaign=campaign, dispatched_at__isnull=True).count() == 0
