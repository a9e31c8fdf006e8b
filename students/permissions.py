"""Access rules: the one module that decides who sees which student data.

Every query of student data goes through ``students_for`` (or a selector built
on it).  A record outside the viewer's scope does not exist for that viewer:
lookups raise ``Http404``, never 403, so nobody learns that another
department's student is there.  Registrar staff and administrators see the
whole school; the bypass lives here and nowhere else.
"""

from functools import wraps

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
    """Registrar staff or a department secretary: anyone with a workspace."""
    return is_registrar(user) or is_secretary(user)


def departments_for(user) -> QuerySet[Department]:
    """The departments whose students the user may see."""
    if is_registrar(user):
        return Department.objects.all()
    if is_secretary(user):
        return user.departments.all()
    return Department.objects.none()


def students_for(user) -> QuerySet[Student]:
    """Every student record the user may see: the school, their departments, or themself."""
    if not (user and user.is_authenticated and user.is_active):
        return Student.objects.none()
    if is_registrar(user):
        return Student.objects.all()
    if is_secretary(user):
        return Student.objects.filter(department__in=user.departments.all())
    return Student.objects.filter(user=user)


def classes_for(user) -> QuerySet[ClassGroup]:
    if is_registrar(user):
        return ClassGroup.objects.all()
    return ClassGroup.objects.filter(department__in=departments_for(user))


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
