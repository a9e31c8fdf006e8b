"""One permission matrix over every URL of the portal.

Every named URL in every namespace has a row here, except the Django admin's,
which keeps its own test (students/tests/test_views.py).  A row says what each
persona gets: an anonymous visitor, the record's own student, the secretary of
the student's department, another department's secretary, the counsellor of the
student's class, the class's monitor (a classmate), an admissions-office
reviewer, registrar staff and a superuser.  The matrix runs with the counsellor
step in the review chain and 专业 flags routed to the admissions office, so that
every role holds what it can hold.  Out of scope is 404, never 403; anonymous visitors are sent to
the sign-in page, except on the public pages (sign-in, claim, a valid class
progress link).

Besides the status, every case checks that no page shows a record outside the
persona's scope, and every POST checks the database: a refused persona changed
nothing (no row, no file), an allowed one changed something.  A URL name
without a row fails ``test_every_url_has_a_row``.
"""

import datetime
import os
import pickle
import shutil
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.urls import URLResolver, get_resolver, get_urlconf, include, path, reverse
from django.utils import timezone, translation

from notices import digests
from notices import services as notice_services
from notices.models import Digest, HelpArticle, Notice
from students.models import User
from students.permissions import CAPABILITIES, has_capability
from students.tests.factories import (
    ClassGroupFactory,
    CohortFactory,
    DepartmentFactory,
    SecretaryFactory,
    UserFactory,
)
from students.tests.sessions import resume, session_of
from verification import services
from verification.exports import services as export_services
from verification.models import Campaign
from verification.tests.factories import CampaignFactory, pdf_bytes, png_bytes, student_with_account, upload

pytestmark = pytest.mark.django_db

PERSONAS = (
    "anonymous",
    "student",
    "own_secretary",
    "other_secretary",
    "counsellor",
    "monitor",
    "admissions",
    "registrar",
    "superuser",
)
STAFF = frozenset({"own_secretary", "registrar", "superuser"})  # those who may act on the student's record
# The class's counsellor also acts on the student's record: views it, records for them, reviews, reminds.
CLASS_STAFF = STAFF | {"counsellor"}
REGISTRARS = frozenset({"registrar", "superuser"})
# The school settings the matrix runs with (docs/roles.md).
ROLE_SETTINGS = {"REVIEW_CHAIN": ["counsellor", "department", "registrar"], "ADMISSIONS_REVIEW": True}


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
    sessions: dict = field(default_factory=dict)  # persona → the session cookie it signed in with


def build_cast() -> Cast:
    department = DepartmentFactory(name="计算机学院")
    other_department = DepartmentFactory(name="外国语学院")
    registrar = UserFactory(role=User.Role.REGISTRAR, username="registrar1")
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
    counsellor = UserFactory(role=User.Role.COUNSELLOR, username="counsellor1")
    counsellor.classes.set([class_group])
    monitor = student_with_account(
        department=department, class_group=class_group, cohort=cohort, name="赵班长", student_number="2025010002"
    )
    class_group.monitors.add(monitor.user)
    admissions = UserFactory(role=User.Role.ADMISSIONS, username="admissions1")
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
        link=services.progress_link_create(campaign=campaign, class_group=class_group, by=secretary), by=secretary
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
            "counsellor": counsellor,
            "monitor": monitor.user,
            "admissions": admissions,
            "registrar": registrar,
            "superuser": superuser,
        },
    )


def _files_of(root: Path) -> dict:
    """Each file and folder under ``root`` (by its path relative to it) with its size, modification time and
    inode: any case that wrote, replaced or removed something changes it.

    ``os.scandir`` hands back what a walk needs without a ``stat`` call per entry on most systems;
    ``Path.rglob`` and a ``stat`` per path were most of the time of this check, which runs for every case.
    """
    found = {}
    pending = [(str(root), "")]
    while pending:
        folder, prefix = pending.pop()
        try:
            entries = os.scandir(folder)
        except FileNotFoundError:
            continue
        with entries:
            for entry in entries:
                name = prefix + entry.name
                s = entry.stat(follow_symlinks=False)
                is_folder = entry.is_dir(follow_symlinks=False)
                found[name] = (is_folder, s.st_size, s.st_mtime_ns, s.st_ino)
                if is_folder:
                    pending.append((entry.path, name + "/"))
    return found


@pytest.fixture(scope="module")
def shared_cast(module_rows, tmp_path_factory):
    """The cast, built once per module: building it for each case took most of the suite's time.

    Each persona signs in once here, through the same ``force_login`` (and so the same sign-in signals:
    session rotation, students.UserSession, axes' access log) a case used to run; every case sends that
    session's cookie and goes through the whole middleware stack.  Signing in for each case was over a
    third of the matrix's time.  The sessions live in the module's transaction, so a case that signs out
    or rotates its session is rolled back like any other change.
    """
    pristine = tmp_path_factory.mktemp("matrix-private")
    with (
        module_rows(),
        override_settings(PRIVATE_ROOT=pristine, **ROLE_SETTINGS),
        translation.override(settings.LANGUAGE_CODE),
    ):
        built = build_cast()
        for persona, user in built.users.items():
            if user is not None:
                built.sessions[persona] = session_of(user)
    work = tmp_path_factory.mktemp("matrix-private-work")
    shutil.copytree(pristine, work, dirs_exist_ok=True)
    return pickle.dumps(built, pickle.HIGHEST_PROTOCOL), pristine, work, [_files_of(work)]


@pytest.fixture
def cast(db, shared_cast, settings):
    """A fresh copy of the cast for each case, and its files as built; the case's own changes are undone.

    The copy is unpickled from the cast pickled once: a ``copy.deepcopy`` of it walked some 1,800
    objects in Python for each case, a seventh of the matrix's time.  The school settings come in one
    ``override_settings`` (``settings.X = …`` enables and undoes one override per name).  The files are
    copied back only after a case that changed them (copying them for every case cost more than most
    cases' request).  ``settings`` is asked for only to be set up before and undone after this fixture.
    """
    pickled, pristine, work, as_built = shared_cast
    with override_settings(**ROLE_SETTINGS, PRIVATE_ROOT=work):
        yield pickle.loads(pickled)
    if _files_of(work) != as_built[0]:
        shutil.rmtree(work)
        shutil.copytree(pristine, work)
        as_built[0] = _files_of(work)


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


def ticket(cast: Cast, student=None):
    """A "not found on CHSI" request for help of the student (or of ``student``), filed once per test."""
    who = student or cast.student
    return services.support_request_create(
        checklist_id=cast.campaign.checklists.get(student=who).pk, kind="not_found", note="查不到学籍", by=who.user
    )


def sign_off(cast: Cast):
    """The student's department signed off the campaign, once per test."""
    from verification.models import DepartmentSignOff

    found = DepartmentSignOff.objects.filter(campaign=cast.campaign, withdrawn_at__isnull=True).first()
    return found or services.department_sign_off(
        campaign=cast.campaign, department=cast.student.department, remark="已核对", by=cast.users["own_secretary"]
    )


def second_source(cast: Cast):
    """A 教务 roster that disagrees with CHSI on the student's name (students.sources)."""
    from students.models import RosterSource, SourceRecord

    source, _new = RosterSource.objects.get_or_create(name="教务系统", defaults={"file_name": "jw.xlsx"})
    SourceRecord.objects.get_or_create(
        source=source, student_number=cast.student.student_number, defaults={"row": 2, "values": {"name": "别名"}}
    )
    return source


def source_args(cast: Cast):
    from students.models import RosterSource

    return [RosterSource.objects.get(name="教务系统").pk]


def api_client(cast: Cast):
    from students.api_clients import api_client_create
    from students.models import ApiClient

    return ApiClient.objects.filter(name="教务系统").first() or api_client_create(name="教务系统")[0]


def webhook(cast: Cast):
    from notices.models import WebhookEndpoint
    from notices.webhooks import webhook_endpoint_create

    found = WebhookEndpoint.objects.filter(name="学工系统").first()
    return found or webhook_endpoint_create(name="学工系统", url="https://xg.example/hook", events=[])[0]


def admission_photo(cast: Cast):
    """The student's 录取照片, stored as the photo import stores it."""
    import io

    from PIL import Image

    from students.models import Photo
    from students.photos.services import path_of

    if not Photo.objects.filter(student=cast.student).exists():
        out = io.BytesIO()
        Image.new("RGB", (120, 160), (40, 90, 200)).save(out, "JPEG")
        path_of("ab" + "0" * 30 + ".jpg").parent.mkdir(parents=True, exist_ok=True)
        path_of("ab" + "0" * 30 + ".jpg").write_bytes(out.getvalue())
        Photo.objects.create(
            student=cast.student, kind="admission", storage_name="ab" + "0" * 30 + ".jpg", sha256="0" * 64,
            width=120, height=160, size=len(out.getvalue()),
        )  # fmt: skip


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
    """Secretaries, counsellors and registrar staff; students 404; anonymous visitors sign in."""
    return everyone(404, **{"anonymous": LOGIN, **{p: ok for p in CLASS_STAFF | {"other_secretary"}}, **overrides})


def own_staff_only(ok, **overrides) -> dict:
    """The student's own secretary, their class's counsellor and registrar staff; the other secretary 404."""
    return everyone(404, **{"anonymous": LOGIN, **{p: ok for p in CLASS_STAFF}, **overrides})


def registrar_only(ok, **overrides) -> dict:
    return everyone(404, **{"anonymous": LOGIN, **{p: ok for p in REGISTRARS}, **overrides})


def student_only(ok, **overrides) -> dict:
    return everyone(404, **{"anonymous": LOGIN, "student": ok, **overrides})


def own_check(ok, **overrides) -> dict:
    """A page of one's own check: the student gets theirs, and so does the monitor (a classmate in the campaign)."""
    return student_only(ok, **{"monitor": ok, **overrides})


@dataclass(frozen=True)
class Needs:
    """The outcome follows the capability table (students/permissions.py): ``ok`` for a persona holding
    ``capability`` (on the object ``on`` picks from the cast), 404 for the others."""

    capability: str
    ok: object
    on: Callable | None = None

    def __str__(self):
        return f"{self.ok} with {self.capability}"

    def outcome(self, cast: "Cast", user):
        return self.ok if has_capability(user, self.capability, self.on(cast) if self.on else None) else 404


def needs(capability: str, ok, *, on: Callable | None = None, **overrides) -> dict:
    """A page a view guards with one capability: anonymous visitors sign in, the rest as the table says."""
    assert capability in CAPABILITIES, capability
    return everyone(Needs(capability, ok, on), **{"anonymous": LOGIN, **overrides})


ON_STUDENT = lambda c: c.student  # noqa: E731
ON_CLASS = lambda c: c.class_group  # noqa: E731


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
            counsellor=To("workspace:dashboard"),
            monitor=To("verification:my_checks"),
            admissions=To("workspace:correction_queue"),
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
    # A forgotten password: the claim check again (students/tests/test_account_recovery.py).
    Route("forgotten password", "password_reset", everyone(200)),
    Route("new password, without the check", "password_reset_new", everyone(To("password_reset"))),
    # Campus-app sign-in is off until the school configures the app (notices/tests/test_campus_signin.py).
    Route("campus app sign-in, not configured", "notices:campus_signin", everyone(404), args=lambda c: ["wecom"]),
    Route(
        "campus app sign-in callback, unknown app",
        "notices:campus_signin_callback",
        everyone(404),
        args=lambda c: ["nope"],
    ),
    Route("claim password, without the first step", "claim_password", everyone(To("claim"))),
    Route(
        "claim password post, without the first step",
        "claim_password",
        everyone(To("claim")),
        method="post",
        data=lambda c: {"password1": "a new long passphrase", "password2": "a new long passphrase"},
    ),
    # The second factor (TOTP) is for staff accounts; students/tests/test_otp.py covers enrolled devices.
    Route("two-factor setup", "otp_setup", needs("workspace.use", 200)),
    Route(
        "confirm two-factor with a malformed token",
        "otp_setup",
        needs("workspace.use", 200),
        method="post",
        data=lambda c: {"token": "not-a-code"},
    ),
    Route("two-factor verification without a device", "otp_verify", needs("workspace.use", To("otp_setup"))),
    Route(
        "turn off two-factor without a device",
        "otp_disable",
        needs("workspace.use", To("otp_setup")),
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
    Route("student list", "students:student_list", needs("student.view", 200)),
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
    Route(
        "unlock a student's sign-in",
        "students:signin_unlock",
        needs("account.unlock", To("students:student_detail", args=lambda c: [c.student.pk]), on=ON_STUDENT),
        method="post",
        args=lambda c: [c.student.pk],
        writers=REGISTRARS,
    ),
    Route(
        "reset a student's sign-in",
        "students:signin_reset",
        needs("account.unlock", To("students:student_detail", args=lambda c: [c.student.pk]), on=ON_STUDENT),
        method="post",
        args=lambda c: [c.student.pk],
        writers=REGISTRARS,
    ),
    Route("roster upload page", "students:roster_upload", needs("roster.import", 200)),
    Route("access log", "students:access_log", needs("export.access_log", 200)),
    Route(
        "reveal a full ID number",
        "students:student_detail",
        needs("student.reveal_id_number", 200, on=ON_STUDENT),
        method="post",
        args=lambda c: [c.student.pk],
        data=lambda c: {"reason": "学信网更正需要核对"},
        writers=frozenset({"registrar", "superuser"}),
    ),
    Route(
        "roster upload post without a file",
        "students:roster_upload",
        needs("roster.import", 200),
        method="post",
        data=lambda c: {"dry_run": "on"},
    ),
    # --- The student's own check ------------------------------------------------------------------------
    Route(
        "my checks",
        "verification:my_checks",
        everyone(
            200,
            anonymous=LOGIN,
            student=To("verification:checklist", lambda c: [c.campaign.pk]),
            monitor=To("verification:checklist", lambda c: [c.campaign.pk]),
        ),
    ),
    # The class monitor's page: the class's counts and the names of those not done, nothing more.
    Route(
        "class progress for its monitor",
        "verification:class_progress",
        needs("class.monitor", 200),
        public_class_page=True,
    ),
    Route("checklist", "verification:checklist", own_check(200), args=lambda c: [c.campaign.pk]),
    Route(
        "confirm all",
        "verification:confirm_all",
        own_check(To("verification:checklist", lambda c: [c.campaign.pk])),
        method="post",
        args=lambda c: [c.campaign.pk],
        data=lambda c: {"record_version": c.student.version, "attest": "on"},
        writers=frozenset({"student", "monitor"}),
        setup=withdraw_the_flag,
    ),
    Route(
        "confirm the other fields",
        "verification:confirm_rest",
        own_check(To("verification:checklist", lambda c: [c.campaign.pk])),
        method="post",
        args=lambda c: [c.campaign.pk],
        # The cast's other fields are answered already, so the student's post changes nothing here;
        # verification/tests/test_journey.py covers what it confirms.
        data=lambda c: {"record_version": c.student.version},
    ),
    Route(
        "confirm a field",
        "verification:field_confirm",
        own_check(To("verification:checklist", lambda c: [c.campaign.pk])),
        method="post",
        args=lambda c: [c.campaign.pk, "XM"],
        data=lambda c: {"record_version": c.student.version},
        writers=frozenset({"student", "monitor"}),
    ),
    Route(
        "flag form",
        "verification:field_flag",
        own_check(200),
        args=lambda c: [c.campaign.pk, "BH"],
    ),
    Route(
        "flag a field",
        "verification:field_flag",
        own_check(To("verification:checklist", lambda c: [c.campaign.pk])),
        method="post",
        args=lambda c: [c.campaign.pk, "BH"],
        data=lambda c: {"record_version": c.student.version, "claimed_value": "计算机2599"},
        writers=frozenset({"student", "monitor"}),
    ),
    Route(
        "support request form",
        "verification:support_request",
        own_check(200),
        args=lambda c: [c.campaign.pk, "not_found"],
    ),
    Route(
        "support request",
        "verification:support_request",
        own_check(To("verification:checklist", lambda c: [c.campaign.pk])),
        method="post",
        args=lambda c: [c.campaign.pk, "not_found"],
        data=lambda c: {"note": "学信网上查不到"},
        writers=frozenset({"student", "monitor"}),
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
    Route("campaign list", "verification:campaign_list", needs("campaign.manage", 200)),
    Route("new campaign form", "verification:campaign_create", needs("campaign.manage", 200)),
    Route(
        "create a campaign",
        "verification:campaign_create",
        needs("campaign.manage", To("verification:campaign_list")),
        method="post",
        data=lambda c: campaign_form(c, "2025级补充核对"),
        writers=REGISTRARS,
    ),
    Route(
        "campaign form", "verification:campaign_update", needs("campaign.manage", 200), args=lambda c: [c.campaign.pk]
    ),
    Route(
        "edit a campaign",
        "verification:campaign_update",
        needs("campaign.manage", To("verification:campaign_list")),
        method="post",
        args=lambda c: [c.campaign.pk],
        data=lambda c: campaign_form(c, "2025级新生学籍核对（延期）"),
        writers=REGISTRARS,
    ),
    # --- Department workspace ---------------------------------------------------------------------------
    Route("department dashboard", "workspace:dashboard", needs("workspace.use", 200), query=_campaign),
    Route(
        "department dashboard, the other department",
        "workspace:dashboard",
        needs("workspace.use", 200, on=lambda c: c.other_student.department),
        query=lambda c: {"campaign": c.campaign.pk, "department": c.other_student.department_id},
    ),
    Route(
        "class page",
        "workspace:class_detail",
        needs("workspace.use", 200, on=ON_CLASS),
        args=lambda c: [c.class_group.pk],
        query=_campaign,
    ),
    Route(
        "create a class progress link",
        "workspace:progress_link_create",
        needs("class.share_progress", To("workspace:class_detail", lambda c: [c.class_group.pk]), on=ON_CLASS),
        method="post",
        args=lambda c: [c.class_group.pk],
        data=_campaign,
        writers=CLASS_STAFF,
    ),
    Route(
        "revoke a class progress link",
        "workspace:progress_link_revoke",
        needs("class.share_progress", To("workspace:class_detail", lambda c: [c.class_group.pk]), on=ON_CLASS),
        method="post",
        args=lambda c: [c.link.pk],
        writers=CLASS_STAFF,
    ),
    # The other secretary sees their own (empty of this student) queue; the leak check applies.
    Route("review queue", "workspace:review_queue", needs("flag.review", 200)),
    Route(
        "forward a flag",
        "workspace:review_act",
        # A refused flag in a bulk action is reported on the queue page; the move does not happen.
        own_staff_only(To("workspace:review_queue"), other_secretary=To("workspace:review_queue")),
        method="post",
        data=lambda c: {"flags": [c.flag.pk], "action": "forward"},
        writers=CLASS_STAFF,
    ),
    Route(
        "add a note to a flag",
        "workspace:review_act",
        needs("flag.note", To("workspace:review_queue"), on=lambda c: c.flag),
        method="post",
        data=lambda c: {"flags": [c.flag.pk], "action": "note", "note": "已电话联系学生"},
        writers=CLASS_STAFF,
    ),
    Route(
        "student record",
        "workspace:student_record",
        needs("student.view", 200, on=ON_STUDENT),
        args=lambda c: [c.student.pk],
        query=_campaign,
    ),
    Route(
        "other department's student record",
        "workspace:student_record",
        needs("student.view", 200, on=lambda c: c.other_student),
        args=lambda c: [c.other_student.pk],
        query=_campaign,
    ),
    Route(
        "confirm all on the student's behalf",
        "workspace:proxy_confirm_all",
        needs("student.record_for", To("workspace:student_record", lambda c: [c.student.pk]), on=ON_STUDENT),
        method="post",
        args=lambda c: [c.student.pk],
        data=lambda c: {"campaign": c.campaign.pk, "record_version": c.student.version, "attest": "on"},
        writers=CLASS_STAFF,
        setup=withdraw_the_flag,
    ),
    Route(
        "flag form on the student's behalf",
        "workspace:proxy_flag",
        needs("student.record_for", 200, on=ON_STUDENT),
        args=lambda c: [c.student.pk, "BH"],
        query=_campaign,
    ),
    Route(
        "flag on the student's behalf",
        "workspace:proxy_flag",
        needs("student.record_for", To("workspace:student_record", lambda c: [c.student.pk]), on=ON_STUDENT),
        method="post",
        args=lambda c: [c.student.pk, "BH"],
        data=lambda c: {"campaign": c.campaign.pk, "record_version": c.student.version, "claimed_value": "计算机2599"},
        writers=CLASS_STAFF,
    ),
    # --- Who is in and the calendar (verification/tests/test_calendar.py) -------------------------------
    Route(
        "individual extension",
        "workspace:checklist_extend",
        needs("checklist.extend", To("workspace:student_record", lambda c: [c.student.pk]), on=ON_STUDENT),
        method="post",
        args=lambda c: [c.student.pk],
        data=lambda c: {
            "campaign": c.campaign.pk,
            "until": f"{timezone.localtime(c.campaign.closes_at) + datetime.timedelta(days=3):%Y-%m-%dT%H:%M}",
            "note": "病假",
        },
        writers=STAFF,
    ),
    Route(
        "exclude from the campaign",
        "workspace:checklist_exclude",
        needs("checklist.membership", To("workspace:student_record", lambda c: [c.student.pk]), on=ON_STUDENT),
        method="post",
        args=lambda c: [c.student.pk],
        data=lambda c: {"campaign": c.campaign.pk, "reason": "suspended", "note": ""},
        writers=STAFF,
    ),
    Route(
        "restore to the campaign",
        "workspace:checklist_restore",
        needs("checklist.membership", To("workspace:student_record", lambda c: [c.student.pk]), on=ON_STUDENT),
        method="post",
        args=lambda c: [c.student.pk],
        data=lambda c: {"campaign": c.campaign.pk},
        setup=lambda c: services.checklist_exclude(
            checklist_id=c.campaign.checklists.get(student=c.student).pk,
            reason="suspended",
            by=c.users["registrar"],
        ),
        writers=STAFF,
    ),
    Route(
        "include in the campaign",
        "workspace:checklist_include",
        needs("checklist.membership", To("workspace:student_record", lambda c: [c.student.pk]), on=ON_STUDENT),
        method="post",
        args=lambda c: [c.student.pk],
        data=lambda c: {"campaign": c.campaign.pk, "reason": "resumed"},
        setup=lambda c: c.campaign.checklists.filter(student=c.student).delete(),
        writers=STAFF,
    ),
    Route(
        "department sign-off",
        "workspace:department_sign_off",
        needs("department.sign_off", To("workspace:dashboard"), on=lambda c: c.student.department),
        method="post",
        data=lambda c: {"campaign": c.campaign.pk, "department": c.student.department_id, "remark": "已核对"},
        writers=STAFF,
    ),
    Route(
        "withdraw a department sign-off",
        "workspace:sign_off_withdraw",
        needs("department.withdraw_sign_off", To("workspace:school")),
        method="post",
        args=lambda c: [sign_off(c).pk],
        data=lambda c: {"reason": "人数有误"},
        writers=REGISTRARS,
    ),
    # --- Registrar workspace ----------------------------------------------------------------------------
    Route("school dashboard", "workspace:school", needs("school.view", 200), query=_campaign),
    Route("correction queue", "workspace:correction_queue", needs("flag.correct", 200)),
    Route("data-quality page", "workspace:findings", needs("school.view", 200)),
    Route("students without a 学历照片", "workspace:missing_photos", needs("workspace.use", 200), query=_campaign),
    # --- A second roster source, API clients and webhooks (registrar staff) ------------------------------
    Route("roster comparisons", "workspace:source_list", needs("roster.compare", 200), setup=second_source),
    Route(
        "a roster comparison",
        "workspace:source_diff",
        needs("roster.compare", 200),
        setup=second_source,
        args=source_args,
    ),
    Route(
        "decide a difference",
        "workspace:source_decide",
        needs("roster.compare", To("workspace:source_diff", source_args)),
        method="post",
        setup=second_source,
        args=source_args,
        data=lambda c: {"student_number": c.student.student_number, "field": "XM", "decision": "no_action"},
        writers=frozenset(REGISTRARS),
    ),
    Route("API clients", "workspace:api_clients", needs("api.manage_clients", 200)),
    Route(
        "revoke an API client",
        "workspace:api_client_revoke",
        needs("api.manage_clients", To("workspace:api_clients")),
        method="post",
        args=lambda c: [api_client(c).pk],
        writers=frozenset(REGISTRARS),
    ),
    Route("webhooks", "notices:webhook_list", needs("api.manage_clients", 200)),
    Route(
        "deactivate a webhook",
        "notices:webhook_deactivate",
        needs("api.manage_clients", To("notices:webhook_list")),
        method="post",
        args=lambda c: [webhook(c).pk],
        writers=frozenset(REGISTRARS),
    ),
    Route(
        "a student's photo",
        "students:photo",
        needs("student.view", 200, on=ON_STUDENT, student=200),
        setup=admission_photo,
        args=lambda c: [c.student.pk, "admission"],
    ),
    # --- Help desk ----------------------------------------------------------------------------------------
    Route("help desk queue", "workspace:ticket_queue", needs("ticket.view", 200), setup=ticket),
    Route(
        "a ticket", "workspace:ticket_detail", needs("ticket.view", 200, on=ON_STUDENT), args=lambda c: [ticket(c).pk]
    ),
    Route(
        "other-department ticket",
        "workspace:ticket_detail",
        registrar_only(200, other_secretary=200),
        args=lambda c: [ticket(c, c.other_student).pk],
    ),
    Route(
        "reply to a ticket",
        "workspace:ticket_act",
        needs("ticket.manage", To("workspace:ticket_detail", lambda c: [ticket(c).pk]), on=ON_STUDENT),
        method="post",
        args=lambda c: [ticket(c).pk],
        data=lambda c: {"action": "reply", "text": "已为你在学信网补录学籍，请重新登录查看。"},
        writers=REGISTRARS,
    ),
    # --- Exports ----------------------------------------------------------------------------------------
    Route("my exports", "exports:export_list", staff_only(200)),
    Route(
        "export the class sign-off sheet",
        "exports:export_create",
        needs("export.class_lists", FILE, on=ON_CLASS),
        method="post",
        data=lambda c: {"kind": "class-sign-off", "campaign": c.campaign.pk, "class_group": c.class_group.pk},
        writers=CLASS_STAFF,
    ),
    Route(
        "export the error list of a class",
        "exports:export_create",
        needs("export.class_lists", FILE, on=ON_CLASS),
        method="post",
        data=lambda c: {"kind": "class-errors", "campaign": c.campaign.pk, "classes": c.class_group.pk},
        writers=CLASS_STAFF,
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
    Route("export log", "exports:export_log", needs("export.access_log", 200)),
    Route(
        "photo corrections zip",
        "exports:photo_corrections_zip",
        needs("export.school_lists", FILE),
        method="post",
        data=lambda c: {"campaign": c.campaign.pk},
        writers=REGISTRARS,
    ),
    # --- Notices ----------------------------------------------------------------------------------------
    Route("notice list", "notices:notice_list", everyone(200, anonymous=LOGIN)),
    Route("new notice form", "notices:notice_create", needs("notice.edit", 200)),
    Route(
        "write a notice",
        "notices:notice_create",
        needs("notice.edit", To("notices:notice_update", lambda c: [Notice.objects.latest("pk").pk])),
        method="post",
        data=lambda c: {"title": "补充通知", "body": "请按时核对。"},
        writers=REGISTRARS,
    ),
    # Staff, the admissions office too, read every published notice; students those meant for them.
    Route(
        "notice for everyone",
        "notices:notice_detail",
        everyone(200, anonymous=LOGIN),
        args=lambda c: [notice(c).pk],
    ),
    Route(
        "notice for the other department only",
        "notices:notice_detail",
        everyone(200, anonymous=LOGIN, student=404, monitor=404),
        args=lambda c: [notice(c, departments=[c.other_student.department]).pk],
    ),
    Route(
        "draft notice",
        "notices:notice_detail",
        needs("notice.view_drafts", 200),
        args=lambda c: [notice(c, draft=True).pk],
    ),
    Route("notice form", "notices:notice_update", needs("notice.edit", 200), args=lambda c: [notice(c).pk]),
    Route(
        "edit a notice",
        "notices:notice_update",
        needs("notice.edit", To("notices:notice_update", lambda c: [notice(c).pk])),
        method="post",
        args=lambda c: [notice(c).pk],
        data=lambda c: {"title": "关于学籍核对的通知（更新）", "body": "请按时核对。"},
        writers=REGISTRARS,
    ),
    Route(
        "publish a notice",
        "notices:notice_publish",
        needs("notice.edit", To("notices:notice_update", lambda c: [notice(c, draft=True).pk])),
        method="post",
        args=lambda c: [notice(c, draft=True).pk],
        writers=REGISTRARS,
    ),
    Route(
        "unpublish a notice",
        "notices:notice_unpublish",
        needs("notice.edit", To("notices:notice_update", lambda c: [notice(c).pk])),
        method="post",
        args=lambda c: [notice(c).pk],
        writers=REGISTRARS,
    ),
    # Each secretary sees the read rates of their own departments' classes only (the leak check).
    Route("notice read rates", "notices:notice_stats", needs("notice.view_stats", 200), args=lambda c: [notice(c).pk]),
    Route(
        "attach a file to a notice",
        "notices:attachment_upload",
        needs("notice.edit", To("notices:notice_update", lambda c: [notice(c).pk])),
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
        everyone(FILE, anonymous=LOGIN, student=404, monitor=404),
        args=lambda c: [attachment(c, departments=[c.other_student.department]).pk],
    ),
    Route(
        "delete a notice attachment",
        "notices:attachment_delete",
        needs("notice.edit", To("notices:notice_update", lambda c: [notice(c).pk])),
        method="post",
        args=lambda c: [attachment(c).pk],
        writers=REGISTRARS,
    ),
    Route("help centre", "notices:help_index", everyone(200, anonymous=LOGIN)),
    Route("help article", "notices:help_article", everyone(200, anonymous=LOGIN), args=lambda c: [help_article().slug]),
    Route("new help article form", "notices:help_create", needs("notice.edit", 200)),
    Route(
        "add a help article",
        "notices:help_create",
        needs("notice.edit", To("notices:help_article", lambda c: ["student-number"])),
        method="post",
        data=lambda c: {"title": "学号记不清", "slug": "student-number", "position": 200, "body": "问辅导员。"},
        writers=REGISTRARS,
    ),
    Route("help article form", "notices:help_update", needs("notice.edit", 200), args=lambda c: [help_article().slug]),
    Route(
        "edit a help article",
        "notices:help_update",
        needs("notice.edit", To("notices:help_article", lambda c: [help_article().slug])),
        method="post",
        args=lambda c: [help_article().slug],
        data=lambda c: {"title": "查不到学籍怎么办", "slug": help_article().slug, "position": 1, "body": "先换电脑。"},
        writers=REGISTRARS,
    ),
    Route("my messages", "notices:message_list", everyone(200, anonymous=LOGIN)),
    # --- Reminders and digests --------------------------------------------------------------------------
    Route("reminder plan", "notices:reminder_plan", needs("reminder.manage", 200), args=lambda c: [c.campaign.pk]),
    Route(
        "add a reminder stage",
        "notices:reminder_plan",
        needs("reminder.manage", To("notices:reminder_plan", lambda c: [c.campaign.pk])),
        method="post",
        args=lambda c: [c.campaign.pk],
        data=lambda c: {"days_before": 5},
        writers=REGISTRARS,
    ),
    Route(
        "remove a reminder stage",
        "notices:reminder_stage_remove",
        needs("reminder.manage", To("notices:reminder_plan", lambda c: [c.campaign.pk])),
        method="post",
        args=lambda c: [c.campaign.reminder_stages.get(kind="before_close", days_before=3).pk],
        writers=REGISTRARS,
    ),
    Route(
        "reminder delivery log", "notices:delivery_log", needs("reminder.manage", 200), args=lambda c: [c.campaign.pk]
    ),
    Route(
        "remind a student now",
        "notices:remind_now",
        needs("reminder.remind_class", To("workspace:class_detail", lambda c: [c.class_group.pk]), on=ON_CLASS),
        method="post",
        args=lambda c: [c.class_group.pk],
        data=lambda c: {
            "campaign": c.campaign.pk,
            "request_key": "matrix-request-key-0123456789",
            "scope": "chosen",
            "students": [c.student.pk],
        },
        writers=CLASS_STAFF,
    ),
    Route("department digests", "notices:digest_list", needs("digest.view", 200)),
    Route(
        "department digest file",
        "notices:digest_download",
        needs("digest.view", FILE, on=lambda c: c.student.department),
        args=lambda c: [digest(c).pk],
    ),
    Route("group robots", "notices:channel_list", needs("reminder.manage", 200)),
    Route(
        "group robot form",
        "notices:channel_edit",
        needs("reminder.manage", 200),
        args=lambda c: [c.student.department_id],
    ),
    Route(
        "set a group robot",
        "notices:channel_edit",
        needs("reminder.manage", To("notices:channel_edit", lambda c: [c.student.department_id])),
        method="post",
        args=lambda c: [c.student.department_id],
        data=lambda c: {
            "robot": "dingtalk",
            "webhook_url": "https://oapi.dingtalk.com/robot/send?access_token=abc",
            "signing_secret": "SEC0123456789",
        },
        writers=REGISTRARS,
    ),
    # The school's reminder channels: order and credentials (notices/tests/test_reminder_channel_pages.py).
    Route("reminder channels", "notices:reminder_channels", needs("reminder.channels", 200)),
    Route(
        "move a reminder channel",
        "notices:reminder_channels",
        needs("reminder.channels", To("notices:reminder_channels")),
        method="post",
        data=lambda c: {"name": "console", "move": "up"},
        writers=REGISTRARS,
    ),
    Route(
        "reminder channel form",
        "notices:reminder_channel_edit",
        needs("reminder.channels", 200),
        args=lambda c: ["wecom"],
    ),
    Route(
        "set a reminder channel",
        "notices:reminder_channel_edit",
        needs("reminder.channels", To("notices:reminder_channel_edit", lambda c: ["wecom"])),
        method="post",
        args=lambda c: ["wecom"],
        data=lambda c: {
            "enabled": "on",
            "position": 1,
            "corp_id": "ww0001",
            "agent_id": 1000002,
            "userid_field": "student_number",
            "secret": "app-secret",
        },
        writers=REGISTRARS,
    ),
    # A test message goes out at once, not through the outbox: nothing is written.
    Route(
        "send a test message on a reminder channel",
        "notices:reminder_channel_test",
        needs("reminder.channels", To("notices:reminder_channel_edit", lambda c: ["console"])),
        method="post",
        args=lambda c: ["console"],
        data=lambda c: {"to": "2025010001"},
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
        "counsellor": [cast.other_student],
        "monitor": [cast.student, cast.other_student],
        # The cast's flags are on 民族: none is the admissions office's.
        "admissions": [cast.student, cast.other_student],
    }.get(persona, [])
    secrets = [secret for student in hidden for secret in secrets_of(student)]
    if route.public_class_page or persona == "monitor":
        # The class's name is a classmate's too; a class progress page (the link, the monitor's page) shows
        # the names of the class's students who are not done, never their 学号 or ID number.
        shown = [cast.student.class_name] + ([cast.student.name] if route.public_class_page else [])
        secrets = [secret for secret in secrets if secret not in shown]
    return secrets


def _state_tables() -> list[tuple[str, str]]:
    """(table, primary key column) of each model of the project's own apps."""
    return [
        (model._meta.db_table, model._meta.pk.column)
        for label in ("students", "verification", "notices")
        if apps.is_installed(label)
        for model in apps.get_app_config(label).get_models(include_auto_created=True)
    ]


_STATE_QUERIES = {}  # (database alias, vendor) → the one query database_state runs


def _state_query(cursor) -> str | None:
    """One query returning, for each table, every stored row in primary key order as one text (or NULL for
    an empty table), so that any change to any value of any row changes it; None on other databases.

    SQLite: ``quote()`` of each column, the exact literal of the stored value (text, integer, blob; a real
    without an exact 15-digit form is written with 20 digits), so a value's type and bytes both count.
    PostgreSQL: the whole row's text form (floats print exactly since PostgreSQL 12).  Both are
    self-delimiting, so the rows joined together still tell every value apart.
    """
    key = (connection.alias, connection.vendor)
    if key not in _STATE_QUERIES:
        quote = connection.ops.quote_name
        parts = []
        for table, pk in _state_tables():
            if connection.vendor == "sqlite":
                # The table's own columns (Django's introspection of them took seconds).
                cursor.execute("SELECT name FROM pragma_table_info(%s) ORDER BY cid", [table])
                row = " || ',' || ".join(f"quote({quote(name)})" for (name,) in cursor.fetchall())
                # Read in key order from the ordered subquery (SQLite 3.40 has no ORDER BY inside an
                # aggregate); equal rows are read in the same order whatever the order is.
                parts.append(
                    f"(SELECT group_concat(matrix_row, char(10)) FROM "
                    f"(SELECT {row} AS matrix_row FROM {quote(table)} ORDER BY {quote(pk)}))"
                )
            elif connection.vendor == "postgresql":
                parts.append(
                    f"(SELECT string_agg(matrix_row::text, E'\\n' ORDER BY matrix_row.{quote(pk)}) "
                    f"FROM {quote(table)} AS matrix_row)"
                )
            else:
                _STATE_QUERIES[key] = None
                break
        else:
            _STATE_QUERIES[key] = "SELECT " + ", ".join(parts)
    return _STATE_QUERIES[key]


def database_state() -> dict:
    """Every row of the project's own tables as stored, and the private files.

    Stored values, not models: through the ORM (and decrypting every encrypted value) this took half of the
    matrix's time.  Stored bytes are stricter too: a POST that re-saves a row unchanged counts as a change.
    One query for all the tables (a query per table was most of this check's time), each table's rows
    turned into one text by the database.  The files count with their size, modification time and inode.
    """
    tables = [table for table, _pk in _state_tables()]
    with connection.cursor() as cursor:
        query = _state_query(cursor)
        if query is not None:
            cursor.execute(query)
            state = dict(zip(tables, cursor.fetchone(), strict=True))
        else:
            state = {}
            quote = connection.ops.quote_name
            for table, pk in _state_tables():
                cursor.execute(f"SELECT * FROM {quote(table)} ORDER BY {quote(pk)}")
                state[table] = cursor.fetchall()
    # A folder's own times change when something is made and removed inside it; only files count.
    files = _files_of(Path(settings.PRIVATE_ROOT))
    state["private files"] = {name: None if is_folder else tuple(stat) for name, (is_folder, *stat) in files.items()}
    return state


def body_of(response) -> str:
    if response.streaming:
        # Reading to the end closes the file (the test client wraps the iterator).
        for _chunk in response.streaming_content:
            pass
        return ""
    return response.content.decode(errors="replace")


_PATHS = {}


def path_of(name: str, args=()) -> str:
    """``reverse``, remembered: the cases ask for the same few hundred paths again and again."""
    key = (get_urlconf(), name, *args)
    if key not in _PATHS:
        _PATHS[key] = reverse(name, args=args)
    return _PATHS[key]


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
        resume(client, cast.sessions[persona])
    url = path_of(route.url_name, route.args(cast))
    query = route.query(cast)
    full_path = f"{url}?{urlencode(query)}" if query else url
    before = database_state() if route.method == "post" else None

    expected = route.expected[persona]
    if isinstance(expected, Needs):
        expected = expected.outcome(cast, user)

    response = getattr(client, route.method)(full_path, route.data(cast))

    if expected == LOGIN:
        assert_redirect(response, path_of("login"), next_path=full_path)
    elif expected == SIGNED_OUT:
        assert_redirect(response, path_of(settings.LOGOUT_REDIRECT_URL))
        assert "_auth_user_id" not in client.session
    elif expected == FILE:
        assert response.status_code == 200
        assert response["Content-Disposition"].startswith("attachment")
    elif isinstance(expected, To):
        assert_redirect(response, path_of(expected.name, expected.args(cast)))
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
# The capability table is the spec of who holds what (the rows above read it)
# ----------------------------------------------------------------------------

ANY_SECRETARY = STAFF | {"other_secretary"}
ANY_CLASS_STAFF = ANY_SECRETARY | {"counsellor"}
# capability → (personas holding it at all, personas holding it on the student's own record).
HOLDERS = {
    "workspace.use": (ANY_CLASS_STAFF, CLASS_STAFF),
    # The admissions office opens the records of students with a 专业 flag only (the cast has none).
    "student.view": (ANY_CLASS_STAFF | {"admissions"}, CLASS_STAFF),
    "student.record_for": (ANY_CLASS_STAFF, CLASS_STAFF),
    "class.share_progress": (ANY_CLASS_STAFF, CLASS_STAFF),
    "flag.review": (ANY_CLASS_STAFF, CLASS_STAFF),
    "flag.note": (ANY_CLASS_STAFF | {"admissions"}, CLASS_STAFF),
    "export.department_lists": (ANY_SECRETARY, STAFF),
    "export.class_lists": (ANY_CLASS_STAFF, CLASS_STAFF),
    "reminder.remind_class": (ANY_CLASS_STAFF, CLASS_STAFF),
    "class.monitor": ({"monitor"}, set()),
    "digest.view": (ANY_SECRETARY, STAFF),
    "ticket.view": (ANY_SECRETARY, STAFF),
    "checklist.extend": (ANY_SECRETARY, STAFF),
    "checklist.membership": (ANY_SECRETARY, STAFF),
    "department.sign_off": (ANY_SECRETARY, STAFF),
    "notice.view_stats": (ANY_SECRETARY, ANY_SECRETARY),
    "notice.read": (ANY_CLASS_STAFF | {"admissions"}, ANY_CLASS_STAFF | {"admissions"}),
    "checklist.answer_own": ({"student", "monitor"}, {"student"}),
    "flag.correct": (REGISTRARS | {"admissions"}, REGISTRARS),
    **{
        name: (REGISTRARS, REGISTRARS)
        for name in (
            "school.view",
            "student.reveal_id_number",
            "roster.import",
            "campaign.manage",
            "roster.compare",
            "api.manage_clients",
            "ticket.manage",
            "export.school_lists",
            "export.access_log",
            "notice.edit",
            "notice.view_drafts",
            "reminder.manage",
            "reminder.channels",
            "account.second_factor",
            "account.unlock",
            "department.withdraw_sign_off",
        )
    },
}


def test_the_capability_table_gives_each_persona_what_the_spec_says(cast):
    assert set(HOLDERS) == set(CAPABILITIES), "a new capability needs its row in HOLDERS"
    for name, (at_all, on_the_student) in HOLDERS.items():
        holders = {p for p in PERSONAS if has_capability(cast.users[p], name)}
        assert holders == set(at_all), name
        holders = {p for p in PERSONAS if has_capability(cast.users[p], name, cast.student)}
        assert holders == set(on_the_student), name


# ----------------------------------------------------------------------------
# Guards: the matrix covers every URL, and every row is complete
# ----------------------------------------------------------------------------

# The Django admin keeps its own test; the REST API authenticates by token, not by session, and has its
# own matrix of token scopes × endpoints (verification/tests/test_api.py).
SKIPPED_NAMESPACES = {"admin", "api-v1"}


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
            if isinstance(outcome, Needs):
                outcome = outcome.ok
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
