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
from ..models import Student, User

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
            raise ClaimError(_("该学号的账号已激活，请直接登录；忘记密码请联系学籍科。"))
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
