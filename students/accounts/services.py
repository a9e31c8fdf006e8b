"""Student accounts: the first sign-in is a claim of an imported roll record.

A student proves who they are with 学号 + 姓名 + the last six characters of
their ID number, then chooses a password.  Failures count towards django-axes'
lockout of that 学号 from that address, and the message never says which part
was wrong.
"""

from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import normalize
from ..models import AccessEvent, Student, User

CLAIM_FAILED = gettext_lazy("信息不匹配，请核对学号、姓名和证件号码后六位。")


class ClaimError(Exception):
    pass


def student_claim_match(*, student_number: str, name: str, id_suffix: str) -> Student | None:
    """The record these three answers identify, or ``None``.  Compares in constant time."""
    number = normalize.normalise_identifier(student_number)
    suffix = normalize.normalise_id_number(id_suffix)
    student = Student.objects.filter(student_number=number).first()
    name_ok = student is not None and constant_time_compare(normalize.compact(name), student.name)
    suffix_ok = (
        student is not None
        and len(suffix) == 6
        and len(student.id_number) >= 6
        and constant_time_compare(suffix, student.id_number[-6:])
    )
    return student if name_ok and suffix_ok else None


def claim_failed(*, request, student_number: str):
    """Count a failed claim like a failed sign-in (axes locks 学号 + address)."""
    user_login_failed.send(
        sender=__name__,
        credentials={"username": normalize.normalise_identifier(student_number)},
        request=request,
    )


def student_account_activate(*, student_id: int, password: str) -> User:
    """Create or reuse the student's login (username = 学号) and set its password."""
    with transaction.atomic():
        student = Student.objects.select_for_update().get(pk=student_id)
        user = student.user or User.objects.filter(username=student.student_number).first()
        if user and user.has_usable_password():
            raise ClaimError(_("该学号的账号已激活，请直接登录；忘记密码可通过“忘记密码”重新设置。"))
        if user and user.role != User.Role.STUDENT:
            raise ClaimError(_("该学号已被其他账号使用，请联系学籍科。"))
        user = user or User(username=student.student_number, role=User.Role.STUDENT)
        user.first_name = student.name
        user.is_active = True
        user.set_password(password)
        user.save()
        if student.user_id != user.pk:
            student.user = user
            student.save(update_fields=["user"])
        return user


def student_password_reset(*, student_id: int, password: str) -> User:
    """A forgotten password: the student passed the claim check again and chose a new one.

    Works whether or not the account was activated before (a registrar's reset leaves it unusable), refuses a
    disabled account, and signs the account out everywhere else: whoever knew the old password is out.
    """
    from registrar_portal.security import end_sessions

    with transaction.atomic():
        student = Student.objects.select_for_update().get(pk=student_id)
        user = student.user or User.objects.filter(username=student.student_number).first()
        if user and user.role != User.Role.STUDENT:
            raise ClaimError(_("该学号已被其他账号使用，请联系学籍科。"))
        if user and not user.is_active:
            raise ClaimError(_("该账号已停用，请联系学籍科。"))
        user = user or User(username=student.student_number, role=User.Role.STUDENT, first_name=student.name)
        user.set_password(password)
        user.save()
        if student.user_id != user.pk:
            student.user = user
            student.save(update_fields=["user"])
    end_sessions(user)
    AccessEvent.objects.create(
        user=user,
        action=AccessEvent.Action.PASSWORD_RESET,
        student=student,
        target=student.student_number,
        detail=_("学生通过身份核验（学号、姓名、证件号码后六位）重设了密码"),
    )
    return user


def signin_unlock(*, username: str) -> int:
    """Lift the lockout of one username: its failed attempts (axes, every address) and its failure log.

    A lock on an address (many usernames tried from it) is not lifted: it is not this account's.
    Returns how many attempt records were removed.
    """
    from axes.models import AccessAttempt, AccessFailureLog

    removed, _detail = AccessAttempt.objects.filter(username=username).delete()
    AccessFailureLog.objects.filter(username=username).delete()
    return removed


def signin_reset(*, student: Student) -> bool:
    """Registrar staff reset a student's sign-in: the password becomes unusable (the student claims the
    account again with 学号 + 姓名 + the last six of the ID), every session ends and the lockout is lifted.
    ``False`` when the student has no account yet (nothing to reset)."""
    from registrar_portal.security import end_sessions

    user = student.user
    if user is None or user.role != User.Role.STUDENT:
        return False
    user.set_unusable_password()
    user.save(update_fields=["password"])
    end_sessions(user)
    signin_unlock(username=user.username)
    return True


def signin_locked(username: str) -> bool:
    """Is this username locked out anywhere (axes from some address, or the username cap)?"""
    from axes.helpers import get_cool_off, get_failure_limit
    from axes.models import AccessAttempt
    from django.utils import timezone

    from . import lockout

    attempts = AccessAttempt.objects.filter(username=username)
    if cool_off := get_cool_off():
        attempts = attempts.filter(attempt_time__gte=timezone.now() - cool_off)
    limit = get_failure_limit(None, {"username": username})
    if any(attempt.failures_since_start >= limit for attempt in attempts):
        return True
    return lockout.cap_reached(username=username, ip=None) == lockout.USERNAME


def signin_status(student: Student) -> dict:
    """What registrar staff see of a student's sign-in on the student's page."""
    username = student.user.username if student.user_id else student.student_number
    return {
        "has_login": bool(student.user_id),
        "claimed": account_is_claimed(student),
        "active": bool(student.user_id and student.user.is_active),
        "locked": signin_locked(username),
    }


def account_for_student(student: Student) -> User | None:
    """The login of an imported roll record, made on first use (unusable password); never a new person.

    ``None`` when the 学号 is already a staff account's username.
    """
    if student.user_id:
        return student.user
    with transaction.atomic():
        user = User.objects.filter(username=student.student_number).first()
        if user is None:
            user = User(username=student.student_number, role=User.Role.STUDENT, first_name=student.name)
            user.set_unusable_password()
            user.save()
        elif user.role != User.Role.STUDENT:
            return None
        Student.objects.filter(pk=student.pk, user__isnull=True).update(user=user)
    # Another request may have linked a login first: the record's own is the one to use.
    return Student.objects.select_related("user").get(pk=student.pk).user


def account_is_claimed(student: Student) -> bool:
    return bool(student.user_id and student.user.has_usable_password())


def account_for_cas_username(username: str) -> User | None:
    """The account a campus SSO name signs in as, or ``None`` for an unknown name."""
    name = (username or "").strip()
    if not name:
        return None
    user = User.objects.filter(username=name).first()
    if user:
        return user
    student = Student.objects.filter(student_number=normalize.normalise_identifier(name), user__isnull=True).first()
    if student is None:
        return None
    with transaction.atomic():
        # The imported record is the account; its login row is made on first use.
        user = User(username=student.student_number, role=User.Role.STUDENT, first_name=student.name)
        user.set_unusable_password()
        user.save()
        Student.objects.filter(pk=student.pk, user__isnull=True).update(user=user)
    return user
