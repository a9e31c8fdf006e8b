"""Access rules: the one module that decides who sees which student data.

Every query of student data goes through ``students_for`` (or a selector built
on it).  A record outside the viewer's scope does not exist for that viewer:
lookups raise ``Http404``, never 403, so nobody learns that another
department's student is there.  Registrar staff and administrators see the
whole school; the bypass lives here and nowhere else.
"""

from functools import wraps

from django.conf import settings
from django.contrib.auth.mixins import AccessMixin
from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from .models import ClassGroup, Department, Student, User


def is_registrar(user) -> bool:
    return bool(user and user.is_authenticated and user.is_registrar)


def is_secretary(user) -> bool:
    return bool(user and user.is_authenticated and user.is_secretary)


def is_staff_member(user) -> bool:
    """Registrar staff or a department secretary: anyone with a department or school workspace."""
    return is_registrar(user) or is_secretary(user)


def is_counsellor(user) -> bool:
    """辅导员/班主任: some classes (possibly of two departments), never a whole department."""
    return bool(user and user.is_authenticated and user.is_counsellor)


def is_class_staff(user) -> bool:
    """Anyone with a workspace of classes: a counsellor, a secretary or registrar staff."""
    return is_staff_member(user) or is_counsellor(user)


def is_admissions(user) -> bool:
    """招生办 reviewer: the whole school, but only flags on the admissions fields."""
    return bool(user and user.is_authenticated and user.is_admissions)


# 专业代码 and 专业名称 are the admissions office's (the seed: "专业名称以录取专业为准，如有异议请联系
# 培养单位招生部门"); settings.ADMISSIONS_REVIEW sends their flags there instead of the registrar.
ADMISSIONS_FIELDS = ("ZYDM", "ZYMC")


def admissions_review_on() -> bool:
    return bool(getattr(settings, "ADMISSIONS_REVIEW", False))


def flag_fields_for(user) -> tuple[str, ...] | None:
    """The field codes whose flags the user may see, or None for every field."""
    if is_admissions(user):
        return ADMISSIONS_FIELDS if admissions_review_on() else ()
    return None


# The review chain's levels, lowest first (verification.models.ReviewLevel holds the labels).
REVIEW_RANK = {"counsellor": 0, "department": 1, "registrar": 2, "admissions": 2}


def review_level_of(user) -> str:
    """The step of the review chain the user acts at; "" for students."""
    if is_registrar(user):
        return "registrar"
    if is_secretary(user):
        return "department"
    if is_counsellor(user):
        return "counsellor"
    if is_admissions(user):
        return "admissions"
    return ""


def counsellors_review() -> bool:
    """The school's chain starts with the class's counsellor (settings.REVIEW_CHAIN)."""
    return "counsellor" in getattr(settings, "REVIEW_CHAIN", ())


def departments_for(user) -> QuerySet[Department]:
    """The departments whose students the user may see (a counsellor's: those of their classes)."""
    if is_registrar(user):
        return Department.objects.all()
    if is_secretary(user):
        return user.departments.all()
    if is_counsellor(user):
        return Department.objects.filter(pk__in=user.classes.values("department_id"))
    return Department.objects.none()


def students_for(user) -> QuerySet[Student]:
    """Every student record the user may see: the school, their departments, or themself."""
    if not (user and user.is_authenticated and user.is_active):
        return Student.objects.none()
    if is_registrar(user):
        return Student.objects.all()
    if is_secretary(user):
        return Student.objects.filter(department__in=user.departments.all())
    if is_counsellor(user):
        return Student.objects.filter(class_group__in=user.classes.all())
    if is_admissions(user):
        # Only students with a flag on the admissions fields: nobody else's record is theirs to open.
        flagged = Student.objects.filter(checklists__flags__field_code__in=flag_fields_for(user))
        return Student.objects.filter(pk__in=flagged.values("pk"))
    return Student.objects.filter(user=user)


def classes_for(user) -> QuerySet[ClassGroup]:
    if is_registrar(user):
        return ClassGroup.objects.all()
    if is_counsellor(user):
        return user.classes.all()
    return ClassGroup.objects.filter(department__in=departments_for(user))


# ---------------------------------------------------------------------------
# Capabilities: who may do what
# ---------------------------------------------------------------------------
#
# Each capability is one function of (user, object-or-scope=None).  Called
# without an object it answers "may this user do this at all" (which buttons,
# links and actions to offer); with one it also checks that the object is in
# the user's scope.  Views, services, the flag state machine, exports, notices
# and the permission matrix test all read ``CAPABILITIES``; nothing else
# decides who may do what by looking at a role.
#
# Objects are recognised by shape, not by class, so that this module does not
# import verification/ or notices/ (students ← verification ← notices).


def _student_id_of(obj):
    """The student an object belongs to: a Student, a checklist, a flag or evidence of a flag."""
    if isinstance(obj, Student):
        return obj.pk
    for path in ("student_id", "checklist.student_id", "flag.checklist.student_id"):
        target = obj
        try:
            for part in path.split("."):
                target = getattr(target, part)
        except AttributeError:
            continue
        return target
    raise TypeError(f"no student behind {obj!r}")


def _in_scope(user, obj) -> bool:
    """``obj`` (a department, class, student or something of a student) is within the user's scope."""
    if obj is None:
        return True
    if is_registrar(user):
        return True
    if isinstance(obj, Department):
        # A counsellor holds classes, not their departments: department-wide actions are not theirs.
        return is_secretary(user) and departments_for(user).filter(pk=obj.pk).exists()
    if isinstance(obj, ClassGroup):
        return classes_for(user).filter(pk=obj.pk).exists()
    return students_for(user).filter(pk=_student_id_of(obj)).exists()


def can_use_workspace(user, obj=None) -> bool:
    """A department, class or school workspace: dashboards, class pages, the student list, 2FA set-up."""
    return is_class_staff(user) and _in_scope(user, obj)


def can_view_school(user, obj=None) -> bool:
    """School-wide pages: the school dashboard, data quality findings, the access log."""
    return is_registrar(user)


def can_view_student(user, obj=None) -> bool:
    """A student's record as staff see it (ID number masked); the admissions office's, of students with
    a flag on its fields."""
    return (is_class_staff(user) or (is_admissions(user) and admissions_review_on())) and _in_scope(user, obj)


def can_reveal_id_number(user, obj=None) -> bool:
    """Show a full ID number (with a reason, logged)."""
    return is_registrar(user) and _in_scope(user, obj)


def can_record_for_student(user, obj=None) -> bool:
    """Record answers on a student's behalf from a signed paper form (代为登记)."""
    return is_class_staff(user) and _in_scope(user, obj)


def can_import_roster(user, obj=None) -> bool:
    return is_registrar(user)


def can_manage_campaigns(user, obj=None) -> bool:
    return is_registrar(user)


def can_compare_rosters(user, obj=None) -> bool:
    """Compare CHSI with the school's own roster and decide each difference."""
    return is_registrar(user)


def can_manage_api_clients(user, obj=None) -> bool:
    """Create and revoke the tokens of campus systems that call the API."""
    return is_registrar(user)


def can_share_class_progress(user, obj=None) -> bool:
    """Create or revoke a class progress link for the class WeChat group."""
    return is_class_staff(user) and _in_scope(user, obj)


def _reviews_at(user, obj) -> bool:
    """A flag waits at a step of the chain: its own step's reviewer or a higher one may act on it."""
    level = getattr(obj, "review_level", None)
    if level is None:
        return True
    return REVIEW_RANK.get(review_level_of(user), -1) >= REVIEW_RANK.get(level, 0)


def _flag_field_allowed(user, obj) -> bool:
    fields = flag_fields_for(user)
    return fields is None or obj is None or getattr(obj, "field_code", None) in fields


def can_review_flag(user, obj=None) -> bool:
    """The steps before the registrar (settings.REVIEW_CHAIN): the counsellor's, then the department's.
    Forward a submitted flag to the next step or return it to the student; a higher step may act for a
    lower one, never the reverse."""
    if is_counsellor(user):
        if not counsellors_review():
            return False
    elif not is_staff_member(user):
        return False
    return _in_scope(user, obj) and _reviews_at(user, obj)


def can_correct_flag(user, obj=None) -> bool:
    """The registrar steps: accept, submit to CHSI, mark corrected, return a forwarded flag.  The
    admissions office holds them for flags on its fields when the school routes those there."""
    if is_admissions(user):
        return admissions_review_on() and _flag_field_allowed(user, obj) and _in_scope(user, obj)
    return is_registrar(user) and _in_scope(user, obj)


def can_note_flag(user, obj=None) -> bool:
    """Add a staff note to a flag's history (each step of the chain, within its scope)."""
    if is_admissions(user):
        return admissions_review_on() and _flag_field_allowed(user, obj) and _in_scope(user, obj)
    if is_counsellor(user):
        return counsellors_review() and _in_scope(user, obj)
    return is_staff_member(user) and _in_scope(user, obj)


def can_monitor_class(user, obj=None) -> bool:
    """班长/学习委员: see their class's progress after signing in (counts and the names of those not done)."""
    if not (user and user.is_authenticated) or user.role != User.Role.STUDENT:
        return False
    classes = user.monitored_classes.all()
    if obj is None:
        return classes.exists()
    return isinstance(obj, ClassGroup) and classes.filter(pk=obj.pk).exists()


def can_answer_own(user, obj=None) -> bool:
    """A student's own steps on their checklist: answer, flag, amend, resubmit, withdraw, ask for help."""
    student = own_student(user)
    if student is None:
        return False
    return obj is None or _student_id_of(obj) == student.pk


def can_export_department_lists(user, obj=None) -> bool:
    """The department's error list and unverified list, within the user's scope."""
    return is_staff_member(user) and _in_scope(user, obj)


def can_export_class_lists(user, obj=None) -> bool:
    """Per-class lists: the class sign-off sheet and the error list of chosen classes, within the user's
    classes (a counsellor's own; a secretary's, their departments')."""
    return is_class_staff(user) and _in_scope(user, obj)


def can_export_school_lists(user, obj=None) -> bool:
    """School-wide exports with full values: the CHSI correction list, findings, all campaign records."""
    return is_registrar(user)


def can_export_access_log(user, obj=None) -> bool:
    """The personal-information access log and the export log, on screen and as a file."""
    return is_registrar(user)


def can_edit_notices(user, obj=None) -> bool:
    """Write, publish, unpublish notices and their attachments; edit help articles."""
    return is_registrar(user)


def can_read_notices(user, obj=None) -> bool:
    """Read every published notice as staff do, whatever its audience (students read those meant for
    them): class staff and the admissions office."""
    return is_class_staff(user) or is_admissions(user)


def can_view_notice_drafts(user, obj=None) -> bool:
    """See notices that are not (yet) published."""
    return is_registrar(user)


def can_view_notice_stats(user, obj=None) -> bool:
    """Read rates of a notice (a secretary's limited to their departments by the selector)."""
    return is_staff_member(user)


def can_manage_reminders(user, obj=None) -> bool:
    """The reminder plan, the delivery log and the departments' robot channels."""
    return is_registrar(user)


def can_configure_channels(user, obj=None) -> bool:
    """The school's reminder channels (SMS, WeCom, DingTalk, e-mail): their order and credentials."""
    return is_registrar(user)


def can_remind_class(user, obj=None) -> bool:
    """Send a "remind now" to a class's students who are not done."""
    return is_class_staff(user) and _in_scope(user, obj)


def can_view_digests(user, obj=None) -> bool:
    """The daily digests of one's departments (or the school)."""
    return is_staff_member(user) and _in_scope(user, obj)


def can_manage_tickets(user, obj=None) -> bool:
    """The help desk: assign students' requests for help, change their status, reply."""
    return is_registrar(user) and _in_scope(user, obj)


def can_view_tickets(user, obj=None) -> bool:
    """Students' requests for help and their history, read-only (a secretary's limited to their departments)."""
    return is_staff_member(user) and _in_scope(user, obj)


def can_unlock_account(user, obj=None) -> bool:
    """Unlock a student's locked sign-in, or reset it (the student claims the account again); logged."""
    return is_registrar(user) and _in_scope(user, obj)


def can_extend_checklist(user, obj=None) -> bool:
    """Give one student an individual extension of the students' deadline (sick, abroad)."""
    return is_staff_member(user) and _in_scope(user, obj)


def can_set_membership(user, obj=None) -> bool:
    """Exclude a student from a campaign with a reason (休学, 参军入伍 …), restore them, or include one
    of another cohort (复学, 转入)."""
    return is_staff_member(user) and _in_scope(user, obj)


def can_sign_off_department(user, obj=None) -> bool:
    """院系确认提交: sign off a department's results of a campaign, with the counts and a remark."""
    return is_staff_member(user) and _in_scope(user, obj)


def can_withdraw_sign_off(user, obj=None) -> bool:
    """Withdraw a department's sign-off so that it signs off again."""
    return is_registrar(user)


def needs_second_factor(user, obj=None) -> bool:
    """School-wide access: the account must enrol a TOTP device when REQUIRE_2FA_FOR_REGISTRAR is on."""
    return is_registrar(user)


CAPABILITIES = {
    "workspace.use": can_use_workspace,
    "school.view": can_view_school,
    "student.view": can_view_student,
    "student.reveal_id_number": can_reveal_id_number,
    "student.record_for": can_record_for_student,
    "roster.import": can_import_roster,
    "campaign.manage": can_manage_campaigns,
    "roster.compare": can_compare_rosters,
    "api.manage_clients": can_manage_api_clients,
    "class.share_progress": can_share_class_progress,
    "flag.review": can_review_flag,
    "flag.correct": can_correct_flag,
    "flag.note": can_note_flag,
    "checklist.answer_own": can_answer_own,
    "class.monitor": can_monitor_class,
    "export.department_lists": can_export_department_lists,
    "export.class_lists": can_export_class_lists,
    "export.school_lists": can_export_school_lists,
    "export.access_log": can_export_access_log,
    "notice.edit": can_edit_notices,
    "notice.read": can_read_notices,
    "notice.view_drafts": can_view_notice_drafts,
    "notice.view_stats": can_view_notice_stats,
    "reminder.manage": can_manage_reminders,
    "reminder.channels": can_configure_channels,
    "reminder.remind_class": can_remind_class,
    "digest.view": can_view_digests,
    "ticket.manage": can_manage_tickets,
    "ticket.view": can_view_tickets,
    "checklist.extend": can_extend_checklist,
    "checklist.membership": can_set_membership,
    "department.sign_off": can_sign_off_department,
    "department.withdraw_sign_off": can_withdraw_sign_off,
    "account.second_factor": needs_second_factor,
    "account.unlock": can_unlock_account,
}


def has_capability(user, name: str, obj=None) -> bool:
    """May ``user`` do ``name`` (to ``obj``, if given)?  An unknown name is a programming error."""
    capability = CAPABILITIES[name]
    if not (getattr(user, "is_authenticated", False) and user.is_active):
        return False
    return capability(user, obj)


def require_capability(user, name: str, obj=None) -> None:
    """For services: raise ``NotFound`` (a 404 in views) unless ``user`` may do ``name`` to ``obj``.

    Refused and out of scope look the same as missing, on purpose.
    """
    from .errors import NotFound

    if not has_capability(user, name, obj):
        raise NotFound


def capabilities_of(user) -> frozenset[str]:
    """Every capability the user holds at all (for templates: which sections to show)."""
    return frozenset(name for name in CAPABILITIES if has_capability(user, name))


def get_student_for(user, **lookup) -> Student:
    """One student the user may see, or 404."""
    return get_object_or_404(students_for(user), **lookup)


def get_department_for(user, **lookup) -> Department:
    return get_object_or_404(departments_for(user), **lookup)


def own_student(user) -> Student | None:
    if not (user and user.is_authenticated) or user.role != User.Role.STUDENT:
        return None
    return Student.objects.filter(user=user).first()


class RoleRequiredMixin(AccessMixin):
    """Anonymous visitors go to the sign-in page; signed-in users outside the role get 404."""

    allowed = staticmethod(is_registrar)

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if not self.allowed(request.user):
            raise Http404
        return super().dispatch(request, *args, **kwargs)


class RegistrarRequiredMixin(RoleRequiredMixin):
    allowed = staticmethod(is_registrar)


class StaffRequiredMixin(RoleRequiredMixin):
    allowed = staticmethod(is_staff_member)


def role_required(test):
    """Function-view twin of ``RoleRequiredMixin``."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                from django.contrib.auth.views import redirect_to_login

                return redirect_to_login(request.get_full_path())
            if not test(request.user):
                raise Http404
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


registrar_required = role_required(is_registrar)
staff_required = role_required(is_staff_member)


class CapabilityRequiredMixin(RoleRequiredMixin):
    """A class-based view declares ``capability = "name"``; without it, signed-in users get 404."""

    capability: str = ""

    def allowed(self, user) -> bool:
        return has_capability(user, self.capability)


def capability_required(name: str):
    """A function view declares the capability it needs: ``@capability_required("flag.review")``."""
    if name not in CAPABILITIES:
        raise KeyError(name)
    return role_required(lambda user: has_capability(user, name))


class UserCapabilities:
    """For templates: ``{% if "notice.edit" in can %}``; each name is decided once per request."""

    def __init__(self, user):
        self.user = user
        self._answers: dict[str, bool] = {}

    def __contains__(self, name: str) -> bool:
        if name not in self._answers:
            self._answers[name] = has_capability(self.user, name)
        return self._answers[name]
