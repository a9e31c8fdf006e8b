"""Stage reminders to staff: counsellors are told, at the departments' stage, who in their classes is not done.

The students' stage reminds students (notices/reminders.py); once the students'
deadline has passed and until 院系汇总截止 the department chases the rest: its
secretaries by the daily digest (notices/digests.py), each counsellor
(辅导员/班主任) by one reminder per campaign listing the unfinished students of
their own classes.  The first row is written only when the counsellor has none
for (campaign, stage), together with the in-portal message, and rows are unique
per channel, so a job run twice (beat, the embedded loop, ``run_due_work``)
reminds each counsellor once.  The message is composed at send time from the
current states.

The channel: WeCom or DingTalk when the school's order (``reminders.channel_order``)
puts it before e-mail, it is enabled and it knows staff userids (its
``staff_userid_field``); e-mail is always the last, so a counsellor the app
cannot reach, or whose app message fails for good, is e-mailed instead.
"""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from students.models import Student, User
from verification.models import Campaign, Checklist

from . import outbox
from .models import Message, StaffReminder

# At the departments' stage the overdue are the ones to chase too.
NOT_DONE = (*Checklist.UNFINISHED, Checklist.State.OVERDUE)


def unfinished_in_classes(*, campaign: Campaign, user) -> list[Student]:
    """The counsellor's students of ``campaign`` who have not finished, by class and student number."""
    # A department that signed off has closed its chasing (its digests stop too).
    signed_off = campaign.sign_offs.filter(withdrawn_at__isnull=True).values("department")
    return list(
        Student.objects.filter(
            class_group__in=user.classes.all(),
            checklists__campaign=campaign,
            checklists__state__in=NOT_DONE,
        )
        .exclude(department__in=signed_off)
        .select_related("class_group")
        .order_by("class_group__name", "student_number")
    )


# The channels that reach staff by a userid; SMS templates are the students' and robots post to groups.
STAFF_APP_CHANNELS = ("wecom", "dingtalk")


def staff_channel_order() -> list[str]:
    """WeCom / DingTalk as the school orders them before e-mail, then e-mail (always the fallback)."""
    from .reminders import channel_order

    order = channel_order()
    before_email = order[: order.index("email")] if "email" in order else order
    return [name for name in before_email if name in STAFF_APP_CHANNELS] + ["email"]


def _in_departments_stage(campaign: Campaign, now) -> bool:
    return campaign.closes_at <= now < campaign.departments_deadline


def counsellor_reminders_due(*, now=None) -> int:
    """Beat job (with the reminder dispatch): remind each counsellor of a campaign in its departments' stage
    once, if their classes have students not done.  Returns how many counsellors were reminded this run."""
    now = now or timezone.now()
    campaigns = Campaign.objects.filter(opens_at__lte=now, closes_at__lte=now)
    reminded = 0
    for campaign in campaigns:
        if not _in_departments_stage(campaign, now):
            continue
        counsellors = User.objects.filter(
            role=User.Role.COUNSELLOR, is_active=True, classes__students__checklists__campaign=campaign
        ).distinct()
        for counsellor in counsellors:
            if counsellor_remind(campaign=campaign, user=counsellor, now=now):
                reminded += 1
    return reminded


def counsellor_remind(*, campaign: Campaign, user, now=None) -> StaffReminder | None:
    """Remind one counsellor of the departments' stage; None when already reminded or nobody is left."""
    now = now or timezone.now()
    stage = StaffReminder.Stage.DEPARTMENTS
    if StaffReminder.objects.filter(campaign=campaign, user=user, stage=stage).exists():
        return None
    left = unfinished_in_classes(campaign=campaign, user=user)
    if not left:
        return None
    try:
        # The row and the message together: a concurrent run waits on the unique index and writes neither.
        with transaction.atomic():
            row = StaffReminder.objects.create(
                campaign=campaign,
                user=user,
                stage=stage,
                channel=staff_channel_order()[0],
                created_at=now,
                next_attempt_at=now + outbox.lease(),
            )
            Message.objects.create(
                user=user,
                text=_("%(campaign)s：你负责的班级还有 %(n)s 名学生未完成核对，院系汇总截止 %(deadline)s。")
                % {
                    "campaign": campaign.name,
                    "n": len(left),
                    "deadline": timezone.localtime(campaign.departments_deadline).strftime("%Y-%m-%d %H:%M"),
                },
                url=reverse("workspace:dashboard"),
                created_at=now,
            )
            outbox.enqueue_pending_on_commit(StaffReminderStream.name, pk=row.pk)
    except IntegrityError:
        return None
    return row


class StaffReminderStream(outbox.Stream):
    """A stage reminder to a member of staff: their WeCom / DingTalk account or e-mail."""

    name = "staff_reminder"
    model = StaffReminder
    task = "notices.tasks.staff_reminders_send"

    def load(self, row_id: int) -> StaffReminder:
        return StaffReminder.objects.select_related("campaign", "user").get(pk=row_id)

    def compose(self, row: StaffReminder, channel: outbox.Channel) -> outbox.OutgoingMessage:
        left = unfinished_in_classes(campaign=row.campaign, user=row.user)
        if not left:
            raise outbox.Skip(_("班级学生均已完成核对，无需提醒"))
        if channel.name in STAFF_APP_CHANNELS:
            address = channel.staff_address(row.user)
        elif channel.name == "email":
            address = channel.address(row.user)
        else:  # a channel that does not reach staff (the school's order changed since the row was written)
            address = ""
        if not address:
            raise outbox.Unreachable(channel.unreachable)
        context = {"campaign": row.campaign, "user": row.user, "students": left, "url": settings.PORTAL_URL}
        link = settings.PORTAL_URL.rstrip("/") + reverse("workspace:dashboard")
        return outbox.OutgoingMessage(
            to=address,
            subject=_("【学籍核对】%(campaign)s：你负责的班级还有 %(n)s 名学生未完成")
            % {"campaign": row.campaign.name, "n": len(left)},
            body=render_to_string("notices/email/counsellor_stage.txt", context),
            # The app card: the count and the deadline; the names are behind the link (signed in).
            summary=_("你负责的班级还有 %(n)s 名学生未完成核对，院系汇总截止 %(deadline)s。")
            % {
                "n": len(left),
                "deadline": timezone.localtime(row.campaign.departments_deadline).strftime("%Y-%m-%d %H:%M"),
            },
            options={"variables": {"link": link}},
        )

    def channel_order(self) -> list[str]:
        return staff_channel_order()

    def next_channel(self, row: StaffReminder) -> str | None:
        # A channel the school has dropped since the row was written falls back to e-mail, always last.
        if row.channel not in self.channel_order():
            return "email"
        return super().next_channel(row)

    def message_key(self, row: StaffReminder) -> dict:
        return {"campaign_id": row.campaign_id, "user_id": row.user_id, "stage": row.stage}
