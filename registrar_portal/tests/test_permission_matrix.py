"""One permission matrix over every URL of the portal.

Every named URL in every namespace has a row here, except the Django admin's,
which keeps its own test (students/tests/test_views.py).  A row says what each
persona gets: an anonymous visitor, the record's own student, the secretary of
the student's department, another department's secretary, registrar staff and
a superuser.  Out of scope is 404, never 403; anonymous visitors are sent to
the sign-in page, except on the public pages (sign-in, claim, a valid class
progress link).

Besides the status, every case checks that no page shows a record outside the
persona's scope, and every POST checks the database: a refused persona changed
nothing (no row, no file), an allowed one changed something.  A URL name
without a row fails ``test_every_url_has_a_row``.
"""

import datetime
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.apps import apps
from django.conf import settings
from django.urls import URLResolver, get_resolver, include, path, reverse
from django.utils import timezone

from notices import digests
from notices import services as notice_services
from notices.models import Digest, HelpArticle, Notice
from students.models import User
from students.tests.factories import ClassGroupFactory, CohortFactory, SecretaryFactory, UserFactory
from verification import services
from verification.exports import services as export_services
from verification.models import Campaign
from verification.tests.factories import CampaignFactory, pdf_bytes, png_bytes, student_with_account, upload

pytestmark = pytest.mark.django_db

PERSONAS = ("anonymous", "student", "own_secretary", "other_secretary", "registrar", "superuser")
STAFF = frozenset({"own_secretary", "registrar", "superuser"})  # those who may act on the student's record
REGISTRARS = frozenset({"registrar", "superuser"})


# ----------------------------------------------------------------------------
# The cast: one student with a flag (and its evidence), a class with progress
# links, an export; another department with its own student and secretary.
# ----------------------------------------------------------------------------


@dataclass
class Cast:
    student: object
    other_student: object
    class_group: object
    campaign: object
    flag: object
    evidence: object
    link: object
    revoked_link: object
    expired_link: object
    export: object  # the own secretary's class sign-off sheet
    registrar_export: object
    users: dict


@pytest.fixture
def cast(department, other_department, registrar):
    cohort = CohortFactory()
    class_group = ClassGroupFactory(department=department, name="计算机2501")
    other_class = ClassGroupFactory(department=other_department, name="英语2501")
    student = student_with_account(
        department=department, class_group=class_group, cohort=cohort, name="王小明", student_number="2025010001"
    )
    other_student = student_with_account(
        department=other_department, class_group=other_class, cohort=cohort, name="李外文", student_number="2025020001"
    )
    secretary = SecretaryFactory(departments=[department])
    other_secretary = SecretaryFactory(departments=[other_department])
    superuser = UserFactory(username="root", role=User.Role.ADMIN, is_staff=True, is_superuser=True)
    campaign = CampaignFactory(name="2025级新生学籍核对", cohorts=[cohort], by=registrar)
    flags = []
    for who in (student, other_student):
        flags.append(
            services.field_flag(
                checklist_id=campaign.checklists.get(student=who).pk,
                field_code="MZ",
                claimed_value="回族",
                explanation="户口簿上是回族",
                files=[upload("户口簿.png", png_bytes(), "image/png")],
                record_version=who.version,
                by=who.user,
            )
        )
    flag = flags[0]
    link = services.progress_link_create(campaign=campaign, class_group=class_group, by=secretary)
    revoked_link = services.progress_link_revoke(
        link=services.progress_link_create(campaign=campaign, class_group=class_group, by=secretary)
    )
    expired_link = services.progress_link_create(
        campaign=campaign, class_group=class_group, by=secretary, now=timezone.now() - datetime.timedelta(days=30)
    )
    exports = []
    for who in (secretary, registrar):
        exports.append(
            export_services.export_request(
                kind="class-sign-off",
                params={"campaign": campaign.pk, "class_group": class_group.pk},
                user=who,
                ip="127.0.0.1",
            )
        )
    return Cast(
        student=student,
        other_student=other_student,
        class_group=class_group,
        campaign=campaign,
        flag=flag,
        evidence=flag.evidence.get(),
        link=link,
        revoked_link=revoked_link,
        expired_link=expired_link,
        export=exports[0],
        registrar_export=exports[1],
        users={
            "anonymous": None,
            "student": student.user,
            "own_secretary": secretary,
            "other_secretary": other_secretary,
            "registrar": registrar,
            "superuser": superuser,
        },
    )


def withdraw_the_flag(cast: Cast):
    """Confirming everything is refused while a field is flagged."""
    services.flag_withdraw(flag_id=cast.flag.pk, by=cast.student.user)


def campaign_form(cast: Cast, name: str) -> dict:
    now = timezone.localtime()
    return {
        "name": name,
        "kind": Campaign.Kind.NEW_STUDENTS,
        "cohorts": [cohort.pk for cohort in cast.campaign.cohorts.all()],
        "opens_at": (now - datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        "closes_at": (now + datetime.timedelta(days=20)).strftime("%Y-%m-%dT%H:%M"),
        "instructions": "请逐项核对。",
        "field_codes": ["XM", "XB", "BH"],
    }


def notice(cast: Cast, *, draft=False, departments=()):
    """A notice for everyone (or for some departments), published unless a draft; made once per test."""
    title = "草稿" if draft else "关于学籍核对的通知" + "".join(f"（{d.name}）" for d in departments)
    found = Notice.objects.filter(title__startswith=title).first()
    if found:
        return found
    made = Notice.objects.create(title=title, body="请按时核对。", published_at=None if draft else timezone.now())
    made.departments.set(departments)
    return made


def attachment(cast: Cast, *, departments=()):
    parent = notice(cast, departments=departments)
    return parent.attachments.first() or notice_services.attachment_add(
        notice=parent, upload=upload("核对说明.pdf", pdf_bytes(), "application/pdf")
    )


def help_article():
    # Seeded by a migration; a transactional test elsewhere may have flushed it.
    article, _created = HelpArticle.objects.get_or_create(
        slug="record-not-found", defaults={"title": "学信网上查不到我的学籍", "body": "尝试绑定学籍：只有 5 次机会。"}
    )
    return article


def digest(cast: Cast):
    department = cast.student.department
    return Digest.objects.filter(department=department).first() or digests.digest_build(
        department_id=department.pk, campaign_id=cast.campaign.pk, day=timezone.localdate()
    )


# ----------------------------------------------------------------------------
# Outcomes
# ----------------------------------------------------------------------------

NO_ARGS: Callable = lambda c: []  # noqa: E731


@dataclass(frozen=True)
class To:
    """A redirect to a named URL (the path is compared; query and fragment are not)."""

    name: str
    args: Callable = NO_ARGS

    def __str__(self):
        return f"→ {self.name}"


LOGIN = "→ sign-in page, coming back afterwards"
SIGNED_OUT = "→ sign-in page, signed out"
FILE = "a file download"
OUTCOMES = (200, 404, LOGIN, SIGNED_OUT, FILE)


def everyone(outcome, **overrides) -> dict:
    return {persona: overrides.get(persona, outcome) for persona in PERSONAS}


def staff_only(ok, **overrides) -> dict:
    """Secretaries and registrar staff; students 404; anonymous visitors sign in."""
    return everyone(404, **{"anonymous": LOGIN, **{p: ok for p in STAFF | {"other_secretary"}}, **overrides})


def own_staff_only(ok, **overrides) -> dict:
    """The student's own secretary and registrar staff; the other secretary 404."""
    return everyone(404, **{"anonymous": LOGIN, **{p: ok for p in STAFF}, **overrides})


def registrar_only(ok, **overrides) -> dict:
    return everyone(404, **{"anonymous": LOGIN, **{p: ok for p in REGISTRARS}, **overrides})


def student_only(ok, **overrides) -> dict:
    return everyone(404, **{"anonymous": LOGIN, "student": ok, **overrides})


# ----------------------------------------------------------------------------
# The matrix
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    label: str
    url_name: str
    expected: dict
    method: str = "get"
    args: Callable = NO_ARGS
    query: Callable = lambda c: {}
    data: Callable = lambda c: {}
    # Personas whose POST must change the database; for everyone else it must not.
    writers: frozenset = frozenset()
    setup: Callable | None = None
    # The page is meant to show the student's class to anyone holding the link.
    public_class_page: bool = False


def _campaign(c):
    return {"campaign": c.campaign.pk}


MATRIX = [
    # --- Public pages and signing in -------------------------------------------------------------------
    Route(
        "home",
        "home",
        everyone(
            To("workspace:school"),
            anonymous=LOGIN,
            student=To("verification:my_checks"),
            own_secretary=To("workspace:dashboard"),
            other_secretary=To("workspace:dashboard"),
        ),
    ),
    Route("sign-in page", "login", everyone(200)),
    # The load balancer's health check: public, and it names no data.
    Route("health check", "health", everyone(200)),
    # Signing out forgets the session's row in students.UserSession.
    Route(
        "sign out",
        "logout",
        everyone(SIGNED_OUT),
        method="post",
        writers=frozenset(PERSONAS) - {"anonymous"},
    ),
    Route("claim", "claim", everyone(200)),
    Route("claim password, without the first step", "claim_password", everyone(To("claim"))),
    Route(
        "claim password post, without the first step",
        "claim_password",
        everyone(To("claim")),
        method="post",
        data=lambda c: {"password1": "a new long passphrase", "password2": "a new long passphrase"},
    ),
    # The second factor (TOTP) is for staff accounts; students/tests/test_otp.py covers enrolled devices.
    Route("two-factor setup", "otp_setup", staff_only(200)),
    Route(
        "confirm two-factor with a malformed token",
        "otp_setup",
        staff_only(200),
        method="post",
        data=lambda c: {"token": "not-a-code"},
    ),
    Route("two-factor verification without a device", "otp_verify", staff_only(To("otp_setup"))),
    Route(
        "turn off two-factor without a device",
        "otp_disable",
        staff_only(To("otp_setup")),
        method="post",
        data=lambda c: {"token": "123456"},
    ),
    # Campus SSO is off unless CAS_SERVER_URL is set (students/tests/test_cas.py covers it on).
    Route("cas login", "cas_ng_login", everyone(404)),
    Route("cas logout", "cas_ng_logout", everyone(404)),
    Route(
        "language switch",
        "set_language",
        everyone(To("login")),
        method="post",
        data=lambda c: {"language": "en", "next": reverse("login")},
    ),
    Route(
        "class progress, valid link",
        "class_progress_public",
        everyone(200),
        args=lambda c: [c.link.token],
        public_class_page=True,
    ),
    Route("class progress, unknown token", "class_progress_public", everyone(404), args=lambda c: ["nope"]),
    Route(
        "class progress, revoked link",
        "class_progress_public",
        everyone(404),
        args=lambda c: [c.revoked_link.token],
    ),
    Route(
        "class progress, expired link",
        "class_progress_public",
        everyone(404),
        args=lambda c: [c.expired_link.token],
    ),
    # --- Roll records -------------------------------------------------------------------------------------
    Route("student list", "students:student_list", staff_only(200)),
    Route(
        "own-department student",
        "students:student_detail",
        own_staff_only(200, student=200),
        args=lambda c: [c.student.pk],
    ),
    Route(
        "other-department student",
        "students:student_detail",
        registrar_only(200, other_secretary=200),
        args=lambda c: [c.other_student.pk],
    ),
    Route("roster upload page", "students:roster_upload", registrar_only(200)),
    Route("access log", "students:access_log", registrar_only(200)),
    Route(
        "reveal a full ID number",
        "students:student_detail",
        everyone(404, anonymous=LOGIN, registrar=200, superuser=200),
        method="post",
        args=lambda c: [c.student.pk],
        data=lambda c: {"reason": "学信网更正需要核对"},
        writers=frozenset({"registrar", "superuser"}),
    ),
    Route(
        "roster upload post without a file",
        "students:roster_upload",
        registrar_only(200),
        method="post",
        data=lambda c: {"dry_run": "on"},
    ),
    # --- The student's own check ------------------------------------------------------------------------
    Route(
        "my checks",
        "verification:my_checks",
        everyone(200, anonymous=LOGIN, student=To("verification:checklist", lambda c: [c.campaign.pk])),
    ),
    Route("checklist", "verification:checklist", student_only(200), args=lambda c: [c.campaign.pk]),
    Route(
        "confirm all",
        "verification:confirm_all",
        student_only(To("verification:checklist", lambda c: [c.campaign.pk])),
        method="post",
        args=lambda c: [c.campaign.pk],
        data=lambda c: {"record_version": c.student.version, "attest": "on"},
        writers=frozenset({"student"}),
        setup=withdraw_the_flag,
    ),
    Route(
        "confirm a field",
        "verification:field_confirm",
        student_only(To("verification:checklist", lambda c: [c.campaign.pk])),
        method="post",
        args=lambda c: [c.campaign.pk, "XM"],
        data=lambda c: {"record_version": c.student.version},
        writers=frozenset({"student"}),
    ),
    Route(
        "flag form",
        "verification:field_flag",
        student_only(200),
        args=lambda c: [c.campaign.pk, "BH"],
    ),
    Route(
        "flag a field",
        "verification:field_flag",
        student_only(To("verification:checklist", lambda c: [c.campaign.pk])),
        method="post",
        args=lambda c: [c.campaign.pk, "BH"],
        data=lambda c: {"record_version": c.student.version, "claimed_value": "计算机2599"},
        writers=frozenset({"student"}),
    ),
    Route(
        "support request form",
        "verification:support_request",
        student_only(200),
        args=lambda c: [c.campaign.pk, "not_found"],
    ),
    Route(
        "support request",
        "verification:support_request",
        student_only(To("verification:checklist", lambda c: [c.campaign.pk])),
        method="post",
        args=lambda c: [c.campaign.pk, "not_found"],
        data=lambda c: {"note": "学信网上查不到"},
        writers=frozenset({"student"}),
    ),
    # Staff see flags in the review queue; the flag page is the student's own.
    Route("flag page", "verification:flag_detail", student_only(200), args=lambda c: [c.flag.pk]),
    Route(
        "withdraw a flag",
        "verification:flag_withdraw",
        student_only(To("verification:checklist", lambda c: [c.campaign.pk])),
        method="post",
        args=lambda c: [c.flag.pk],
        writers=frozenset({"student"}),
    ),
    Route(
        "evidence file",
        "verification:evidence_download",
        own_staff_only(FILE, student=FILE),
        args=lambda c: [c.evidence.pk],
    ),
    # --- Campaign management ----------------------------------------------------------------------------
    Route("campaign list", "verification:campaign_list", registrar_only(200)),
    Route("new campaign form", "verification:campaign_create", registrar_only(200)),
    Route(
        "create a campaign",
        "verification:campaign_create",
        registrar_only(To("verification:campaign_list")),
        method="post",
        data=lambda c: campaign_form(c, "2025级补充核对"),
        writers=REGISTRARS,
    ),
    Route("campaign form", "verification:campaign_update", registrar_only(200), args=lambda c: [c.campaign.pk]),
    Route(
        "edit a campaign",
        "verification:campaign_update",
        registrar_only(To("verification:campaign_list")),
        method="post",
        args=lambda c: [c.campaign.pk],
        data=lambda c: campaign_form(c, "2025级新生学籍核对（延期）"),
        writers=REGISTRARS,
    ),
    # --- Department workspace ---------------------------------------------------------------------------
    Route("department dashboard", "workspace:dashboard", staff_only(200), query=_campaign),
    Route(
        "department dashboard, the other department",
        "workspace:dashboard",
        registrar_only(200, other_secretary=200),
        query=lambda c: {"campaign": c.campaign.pk, "department": c.other_student.department_id},
    ),
    Route(
        "class page",
        "workspace:class_detail",
        own_staff_only(200),
        args=lambda c: [c.class_group.pk],
        query=_campaign,
    ),
    Route(
        "create a class progress link",
        "workspace:progress_link_create",
        own_staff_only(To("workspace:class_detail", lambda c: [c.class_group.pk])),
        method="post",
        args=lambda c: [c.class_group.pk],
        data=_campaign,
        writers=STAFF,
    ),
    Route(
        "revoke a class progress link",
        "workspace:progress_link_revoke",
        own_staff_only(To("workspace:class_detail", lambda c: [c.class_group.pk])),
        method="post",
        args=lambda c: [c.link.pk],
        writers=STAFF,
    ),
    # The other secretary sees their own (empty of this student) queue; the leak check applies.
    Route("review queue", "workspace:review_queue", staff_only(200)),
    Route(
        "forward a flag",
        "workspace:review_act",
        # A refused flag in a bulk action is reported on the queue page; the move does not happen.
        own_staff_only(To("workspace:review_queue"), other_secretary=To("workspace:review_queue")),
        method="post",
        data=lambda c: {"flags": [c.flag.pk], "action": "forward"},
        writers=STAFF,
    ),
    Route(
        "add a note to a flag",
        "workspace:review_act",
        own_staff_only(To("workspace:review_queue")),
        method="post",
        data=lambda c: {"flags": [c.flag.pk], "action": "note", "note": "已电话联系学生"},
        writers=STAFF,
    ),
    Route(
        "student record",
        "workspace:student_record",
        own_staff_only(200),
        args=lambda c: [c.student.pk],
        query=_campaign,
    ),
    Route(
        "other department's student record",
        "workspace:student_record",
        registrar_only(200, other_secretary=200),
        args=lambda c: [c.other_student.pk],
        query=_campaign,
    ),
    Route(
        "confirm all on the student's behalf",
        "workspace:proxy_confirm_all",
        own_staff_only(To("workspace:student_record", lambda c: [c.student.pk])),
        method="post",
        args=lambda c: [c.student.pk],
        data=lambda c: {"campaign": c.campaign.pk, "record_version": c.student.version, "attest": "on"},
        writers=STAFF,
        setup=withdraw_the_flag,
    ),
    Route(
        "flag form on the student's behalf",
        "workspace:proxy_flag",
        own_staff_only(200),
        args=lambda c: [c.student.pk, "BH"],
        query=_campaign,
    ),
    Route(
        "flag on the student's behalf",
        "workspace:proxy_flag",
        own_staff_only(To("workspace:student_record", lambda c: [c.student.pk])),
        method="post",
        args=lambda c: [c.student.pk, "BH"],
        data=lambda c: {"campaign": c.campaign.pk, "record_version": c.student.version, "claimed_value": "计算机2599"},
        writers=STAFF,
    ),
    # --- Registrar workspace ----------------------------------------------------------------------------
    Route("school dashboard", "workspace:school", registrar_only(200), query=_campaign),
    Route("correction queue", "workspace:correction_queue", registrar_only(200)),
    Route("data-quality page", "workspace:findings", registrar_only(200)),
    # --- Exports ----------------------------------------------------------------------------------------
    Route("my exports", "exports:export_list", staff_only(200)),
    Route(
        "export the class sign-off sheet",
        "exports:export_create",
        own_staff_only(FILE),
        method="post",
        data=lambda c: {"kind": "class-sign-off", "campaign": c.campaign.pk, "class_group": c.class_group.pk},
        writers=STAFF,
    ),
    # A stored export is its requester's alone, whoever else may see the class.
    Route(
        "download the secretary's export",
        "exports:export_download",
        everyone(404, anonymous=LOGIN, own_secretary=FILE),
        args=lambda c: [c.export.pk],
    ),
    Route(
        "download the registrar's export",
        "exports:export_download",
        everyone(404, anonymous=LOGIN, registrar=FILE),
        args=lambda c: [c.registrar_export.pk],
    ),
    Route("export log", "exports:export_log", registrar_only(200)),
    # --- Notices ----------------------------------------------------------------------------------------
    Route("notice list", "notices:notice_list", everyone(200, anonymous=LOGIN)),
    Route("new notice form", "notices:notice_create", registrar_only(200)),
    Route(
        "write a notice",
        "notices:notice_create",
        registrar_only(To("notices:notice_update", lambda c: [Notice.objects.latest("pk").pk])),
        method="post",
        data=lambda c: {"title": "补充通知", "body": "请按时核对。"},
        writers=REGISTRARS,
    ),
    Route(
        "notice for everyone", "notices:notice_detail", everyone(200, anonymous=LOGIN), args=lambda c: [notice(c).pk]
    ),
    Route(
        "notice for the other department only",
        "notices:notice_detail",
        everyone(200, anonymous=LOGIN, student=404),
        args=lambda c: [notice(c, departments=[c.other_student.department]).pk],
    ),
    Route("draft notice", "notices:notice_detail", registrar_only(200), args=lambda c: [notice(c, draft=True).pk]),
    Route("notice form", "notices:notice_update", registrar_only(200), args=lambda c: [notice(c).pk]),
    Route(
        "edit a notice",
        "notices:notice_update",
        registrar_only(To("notices:notice_update", lambda c: [notice(c).pk])),
        method="post",
        args=lambda c: [notice(c).pk],
        data=lambda c: {"title": "关于学籍核对的通知（更新）", "body": "请按时核对。"},
        writers=REGISTRARS,
    ),
    Route(
        "publish a notice",
        "notices:notice_publish",
        registrar_only(To("notices:notice_update", lambda c: [notice(c, draft=True).pk])),
        method="post",
        args=lambda c: [notice(c, draft=True).pk],
        writers=REGISTRARS,
    ),
    Route(
        "unpublish a notice",
        "notices:notice_unpublish",
        registrar_only(To("notices:notice_update", lambda c: [notice(c).pk])),
        method="post",
        args=lambda c: [notice(c).pk],
        writers=REGISTRARS,
    ),
    # Each secretary sees the read rates of their own departments' classes only (the leak check).
    Route("notice read rates", "notices:notice_stats", staff_only(200), args=lambda c: [notice(c).pk]),
    Route(
        "attach a file to a notice",
        "notices:attachment_upload",
        registrar_only(To("notices:notice_update", lambda c: [notice(c).pk])),
        method="post",
        args=lambda c: [notice(c).pk],
        data=lambda c: {"file": upload("核对说明.pdf", pdf_bytes(), "application/pdf")},
        writers=REGISTRARS,
    ),
    Route(
        "notice attachment",
        "notices:attachment_download",
        everyone(FILE, anonymous=LOGIN),
        args=lambda c: [attachment(c).pk],
    ),
    Route(
        "attachment of the other department's notice",
        "notices:attachment_download",
        everyone(FILE, anonymous=LOGIN, student=404),
        args=lambda c: [attachment(c, departments=[c.other_student.department]).pk],
    ),
    Route(
        "delete a notice attachment",
        "notices:attachment_delete",
        registrar_only(To("notices:notice_update", lambda c: [notice(c).pk])),
        method="post",
        args=lambda c: [attachment(c).pk],
        writers=REGISTRARS,
    ),
    Route("help centre", "notices:help_index", everyone(200, anonymous=LOGIN)),
    Route("help article", "notices:help_article", everyone(200, anonymous=LOGIN), args=lambda c: [help_article().slug]),
    Route("new help article form", "notices:help_create", registrar_only(200)),
    Route(
        "add a help article",
        "notices:help_create",
        registrar_only(To("notices:help_article", lambda c: ["student-number"])),
        method="post",
        data=lambda c: {"title": "学号记不清", "slug": "student-number", "position": 200, "body": "问辅导员。"},
        writers=REGISTRARS,
    ),
    Route("help article form", "notices:help_update", registrar_only(200), args=lambda c: [help_article().slug]),
    Route(
        "edit a help article",
        "notices:help_update",
        registrar_only(To("notices:help_article", lambda c: [help_article().slug])),
        method="post",
        args=lambda c: [help_article().slug],
        data=lambda c: {"title": "查不到学籍怎么办", "slug": help_article().slug, "position": 1, "body": "先换电脑。"},
        writers=REGISTRARS,
    ),
    Route("my messages", "notices:message_list", everyone(200, anonymous=LOGIN)),
    # --- Reminders and digests --------------------------------------------------------------------------
    Route("reminder plan", "notices:reminder_plan", registrar_only(200), args=lambda c: [c.campaign.pk]),
    Route(
        "add a reminder stage",
        "notices:reminder_plan",
        registrar_only(To("notices:reminder_plan", lambda c: [c.campaign.pk])),
        method="post",
        args=lambda c: [c.campaign.pk],
        data=lambda c: {"days_before": 5},
        writers=REGISTRARS,
    ),
    Route(
        "remove a reminder stage",
        "notices:reminder_stage_remove",
        registrar_only(To("notices:reminder_plan", lambda c: [c.campaign.pk])),
        method="post",
        args=lambda c: [c.campaign.reminder_stages.get(kind="before_close", days_before=3).pk],
        writers=REGISTRARS,
    ),
    Route("reminder delivery log", "notices:delivery_log", registrar_only(200), args=lambda c: [c.campaign.pk]),
    Route(
        "remind a student now",
        "notices:remind_now",
        own_staff_only(To("workspace:class_detail", lambda c: [c.class_group.pk])),
        method="post",
        args=lambda c: [c.class_group.pk],
        data=lambda c: {
            "campaign": c.campaign.pk,
            "request_key": "matrix-request-key-0123456789",
            "scope": "chosen",
            "students": [c.student.pk],
        },
        writers=STAFF,
    ),
    Route("department digests", "notices:digest_list", staff_only(200)),
    Route(
        "department digest file",
        "notices:digest_download",
        own_staff_only(FILE),
        args=lambda c: [digest(c).pk],
    ),
    Route("group robots", "notices:channel_list", registrar_only(200)),
    Route(
        "group robot form",
        "notices:channel_edit",
        registrar_only(200),
        args=lambda c: [c.student.department_id],
    ),
    Route(
        "set a group robot",
        "notices:channel_edit",
        registrar_only(To("notices:channel_edit", lambda c: [c.student.department_id])),
        method="post",
        args=lambda c: [c.student.department_id],
        data=lambda c: {
            "robot": "dingtalk",
            "webhook_url": "https://oapi.dingtalk.com/robot/send?access_token=abc",
            "signing_secret": "SEC0123456789",
        },
        writers=REGISTRARS,
    ),
]

MATRIX_CASES = [pytest.param(route, persona, id=f"{route.label}-{persona}") for route in MATRIX for persona in PERSONAS]


# ----------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------


def secrets_of(student) -> list[str]:
    """What would show that a page reveals a student: name, 学号, class and ID number."""
    return [student.name, student.student_number, student.class_name, student.id_number, student.id_number[-6:]]


def out_of_scope(cast: Cast, persona: str, route: Route) -> list[str]:
    hidden = {
        "anonymous": [cast.student, cast.other_student],
        "student": [cast.other_student],
        "own_secretary": [cast.other_student],
        "other_secretary": [cast.student],
    }.get(persona, [])
    if route.public_class_page:
        # The link shows the names of the class's students who are not done; nothing of others.
        hidden = [s for s in hidden if s != cast.student]
    return [secret for student in hidden for secret in secrets_of(student)]


def database_state() -> dict:
    """Every row of the project's own tables, and the private files."""
    state = {}
    for label in ("students", "verification", "notices"):
        if not apps.is_installed(label):
            continue
        for model in apps.get_app_config(label).get_models(include_auto_created=True):
            state[model._meta.db_table] = list(model.objects.order_by("pk").values())
    root = Path(settings.PRIVATE_ROOT)
    state["private files"] = sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []
    return state


def body_of(response) -> str:
    if response.streaming:
        # Reading to the end closes the file (the test client wraps the iterator).
        b"".join(response.streaming_content)
        return ""
    return response.content.decode(errors="replace")


def assert_redirect(response, expected_path, *, next_path=None):
    assert response.status_code == 302, response.status_code
    target = urlsplit(response["Location"])
    assert target.path == expected_path, response["Location"]
    if next_path is not None:
        assert parse_qs(target.query).get("next") == [next_path]


@pytest.mark.parametrize(("route", "persona"), MATRIX_CASES)
def test_permission_matrix(client, cast, route, persona):
    if route.setup:
        route.setup(cast)
    user = cast.users[persona]
    if user is not None:
        client.force_login(user)
    url = reverse(route.url_name, args=route.args(cast))
    query = route.query(cast)
    full_path = f"{url}?{urlencode(query)}" if query else url
    before = database_state() if route.method == "post" else None

    response = getattr(client, route.method)(full_path, route.data(cast))

    expected = route.expected[persona]
    if expected == LOGIN:
        assert_redirect(response, reverse("login"), next_path=full_path)
    elif expected == SIGNED_OUT:
        assert_redirect(response, reverse(settings.LOGOUT_REDIRECT_URL))
        assert "_auth_user_id" not in client.session
    elif expected == FILE:
        assert response.status_code == 200
        assert response["Content-Disposition"].startswith("attachment")
    elif isinstance(expected, To):
        assert_redirect(response, reverse(expected.name, args=expected.args(cast)))
    else:
        assert response.status_code == expected
    page = body_of(response)
    for secret in out_of_scope(cast, persona, route):
        assert secret not in page, f"{route.label} shows {secret!r} to {persona}"
    if route.method == "post":
        if persona in route.writers:
            assert database_state() != before, f"{route.label} by {persona} changed nothing"
        else:
            assert database_state() == before, f"{route.label} by {persona} changed the database"


# ----------------------------------------------------------------------------
# Guards: the matrix covers every URL, and every row is complete
# ----------------------------------------------------------------------------

SKIPPED_NAMESPACES = {"admin"}  # the Django admin keeps its own test


def url_names(urlconf=None) -> set[str]:
    """Every URL name of the portal as ``namespace:name``, walking nested includes."""

    def walk(patterns, prefix):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                if entry.namespace in SKIPPED_NAMESPACES:
                    continue
                inner = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
                yield from walk(entry.url_patterns, inner)
            elif entry.name:
                yield prefix + entry.name

    return set(walk(get_resolver(urlconf).url_patterns, ""))


def names_without_rows(urlconf=None) -> set[str]:
    return url_names(urlconf) - {route.url_name for route in MATRIX}


def test_every_url_has_a_row():
    names = url_names()
    # The walk itself must see every namespace, or this test would pass vacuously.
    assert {
        "home",
        "set_language",
        "class_progress_public",
        "students:student_list",
        "verification:checklist",
        "workspace:dashboard",
        "exports:export_list",
    } <= names
    assert not any(name.startswith("admin:") for name in names)
    missing = names - {route.url_name for route in MATRIX}
    assert not missing, f"add rows to MATRIX in {__name__} for: {sorted(missing)}"


def test_every_row_names_a_real_url():
    stale = {route.url_name for route in MATRIX} - url_names()
    assert not stale, f"rows for URL names that no longer exist: {sorted(stale)}"


def test_every_row_names_every_persona_and_a_known_outcome():
    for route in MATRIX:
        assert set(route.expected) == set(PERSONAS), route.label
        for outcome in route.expected.values():
            assert outcome in OUTCOMES or isinstance(outcome, To), (route.label, outcome)
        assert route.writers <= set(PERSONAS), route.label
        if route.method != "post":
            assert not route.writers, route.label


def test_a_new_url_without_a_row_is_caught():
    """The guard itself: a page added anywhere, even in a nested namespace, is reported."""

    def view(request):  # pragma: no cover - never called
        raise AssertionError

    urlconf = types.ModuleType("urlconf_with_new_pages")
    urlconf.urlpatterns = [
        *get_resolver().url_patterns,
        path("brand-new/", view, name="brand_new"),
        path("reports/", include(([path("weekly/", view, name="weekly")], "reports"))),
        path("nested/", include([path("deeper/", include(([path("x/", view, name="x")], "deep")))])),
    ]
    sys.modules[urlconf.__name__] = urlconf
    try:
        caught = names_without_rows(urlconf.__name__) - names_without_rows()
        assert caught == {"brand_new", "reports:weekly", "deep:x"}
    finally:
        del sys.modules[urlconf.__name__]
