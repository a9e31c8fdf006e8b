"""The access rules of students/permissions.py, role by role.

Every query of student data goes through ``students_for``; a record outside the
viewer's scope does not exist for them (``Http404``).
"""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404

from students import permissions
from students.models import ClassGroup, Department, Student, User
from students.tests.factories import (
    ClassGroupFactory,
    DepartmentFactory,
    SecretaryFactory,
    StudentFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def third_department():
    return DepartmentFactory(name="数学与统计学院")


@pytest.fixture
def third_student(third_department):
    return StudentFactory(department=third_department)


@pytest.fixture
def student_user(student):
    user = UserFactory(username=student.student_number)
    student.user = user
    student.save()
    return user


def pks(queryset):
    return set(queryset.values_list("pk", flat=True))


# --- anonymous ---------------------------------------------------------------


def test_anonymous_sees_nothing(student, other_student):
    anonymous = AnonymousUser()
    assert not permissions.students_for(anonymous).exists()
    assert not permissions.departments_for(anonymous).exists()
    assert not permissions.classes_for(anonymous).exists()
    assert permissions.own_student(anonymous) is None
    with pytest.raises(Http404):
        permissions.get_student_for(anonymous, pk=student.pk)


def test_no_user_at_all_sees_nothing(student):
    assert not permissions.students_for(None).exists()
    with pytest.raises(Http404):
        permissions.get_student_for(None, pk=student.pk)


# --- student -----------------------------------------------------------------


def test_student_sees_only_own_record(student_user, student, other_student):
    classmate = StudentFactory(department=student.department, class_group=student.class_group)

    assert pks(permissions.students_for(student_user)) == {student.pk}
    assert permissions.get_student_for(student_user, pk=student.pk) == student
    assert permissions.own_student(student_user) == student
    for stranger in (classmate, other_student):
        with pytest.raises(Http404):
            permissions.get_student_for(student_user, pk=stranger.pk)


def test_student_has_no_departments_or_classes(student_user, student):
    assert not permissions.departments_for(student_user).exists()
    assert not permissions.classes_for(student_user).exists()
    with pytest.raises(Http404):
        permissions.get_department_for(student_user, pk=student.department_id)


def test_student_without_linked_record_sees_nothing(student):
    user = UserFactory(username="20259999")
    assert not permissions.students_for(user).exists()
    assert permissions.own_student(user) is None


def test_student_role_ignores_departments_and_staff_flag(student_user, student, department):
    # A misconfigured account (departments ticked, Django's is_staff set) must not widen a student's view.
    student_user.departments.set([department])
    student_user.is_staff = True
    student_user.save()
    StudentFactory(department=department)

    assert pks(permissions.students_for(student_user)) == {student.pk}
    assert not permissions.departments_for(student_user).exists()


def test_lookup_by_student_number_is_scoped_too(student_user, student, other_student):
    assert permissions.get_student_for(student_user, student_number=student.student_number) == student
    with pytest.raises(Http404):
        permissions.get_student_for(student_user, student_number=other_student.student_number)


# --- department secretary ------------------------------------------------------


def test_secretary_sees_own_department_only(secretary, student, other_student, department, other_department):
    own_class = student.class_group
    other_class = other_student.class_group

    assert pks(permissions.students_for(secretary)) == {student.pk}
    assert pks(permissions.departments_for(secretary)) == {department.pk}
    assert pks(permissions.classes_for(secretary)) == {own_class.pk}
    assert permissions.get_student_for(secretary, pk=student.pk) == student
    assert permissions.get_department_for(secretary, pk=department.pk) == department
    with pytest.raises(Http404):
        permissions.get_student_for(secretary, pk=other_student.pk)
    with pytest.raises(Http404):
        permissions.get_department_for(secretary, pk=other_department.pk)
    assert other_class.pk not in pks(permissions.classes_for(secretary))


def test_secretary_of_two_departments_sees_both(department, other_department, student, other_student, third_student):
    both = SecretaryFactory(departments=[department, other_department])

    assert pks(permissions.students_for(both)) == {student.pk, other_student.pk}
    assert pks(permissions.departments_for(both)) == {department.pk, other_department.pk}
    assert permissions.get_student_for(both, pk=other_student.pk) == other_student
    with pytest.raises(Http404):
        permissions.get_student_for(both, pk=third_student.pk)


def test_secretary_scope_follows_department_changes(secretary, other_department, other_student):
    with pytest.raises(Http404):
        permissions.get_student_for(secretary, pk=other_student.pk)
    secretary.departments.add(other_department)
    assert permissions.get_student_for(secretary, pk=other_student.pk) == other_student


def test_secretary_without_departments_sees_nothing(student):
    lonely = SecretaryFactory()
    assert not permissions.students_for(lonely).exists()
    assert not permissions.departments_for(lonely).exists()
    assert not permissions.classes_for(lonely).exists()


def test_inactive_secretary_sees_nothing(secretary, student):
    secretary.is_active = False
    secretary.save()
    assert not permissions.students_for(secretary).exists()
    assert not permissions.departments_for(secretary).exists()
    with pytest.raises(Http404):
        permissions.get_student_for(secretary, pk=student.pk)


def test_secretary_is_not_registrar(secretary):
    assert permissions.is_secretary(secretary)
    assert permissions.is_staff_member(secretary)
    assert not permissions.is_registrar(secretary)


# --- registrar and administrators ---------------------------------------------------


def test_registrar_sees_whole_school(registrar, student, other_student, third_student):
    empty_department = DepartmentFactory(name="新设学院")
    empty_class = ClassGroupFactory(department=empty_department)

    assert pks(permissions.students_for(registrar)) == set(Student.objects.values_list("pk", flat=True))
    assert len(pks(permissions.students_for(registrar))) == 3
    assert empty_department.pk in pks(permissions.departments_for(registrar))
    assert pks(permissions.departments_for(registrar)) == set(Department.objects.values_list("pk", flat=True))
    assert empty_class.pk in pks(permissions.classes_for(registrar))
    assert pks(permissions.classes_for(registrar)) == set(ClassGroup.objects.values_list("pk", flat=True))
    assert permissions.get_student_for(registrar, pk=third_student.pk) == third_student
    assert permissions.own_student(registrar) is None


def test_inactive_registrar_sees_nothing(registrar, student):
    registrar.is_active = False
    registrar.save()

    assert not permissions.is_registrar(registrar)
    assert not permissions.students_for(registrar).exists()
    assert not permissions.departments_for(registrar).exists()
    assert not permissions.classes_for(registrar).exists()
    with pytest.raises(Http404):
        permissions.get_student_for(registrar, pk=student.pk)


@pytest.mark.parametrize(
    "account",
    [
        pytest.param({"role": User.Role.ADMIN}, id="admin-role"),
        pytest.param({"role": User.Role.STUDENT, "is_superuser": True, "is_staff": True}, id="superuser"),
    ],
)
def test_administrators_see_whole_school(account, student, other_student):
    admin = UserFactory(username="admin1", **account)
    assert permissions.is_registrar(admin)
    assert pks(permissions.students_for(admin)) == {student.pk, other_student.pk}
    assert permissions.get_student_for(admin, pk=other_student.pk) == other_student


def test_inactive_administrator_sees_nothing(student):
    admin = UserFactory(username="admin1", role=User.Role.ADMIN, is_superuser=True, is_active=False)
    assert not permissions.students_for(admin).exists()
    with pytest.raises(Http404):
        permissions.get_student_for(admin, pk=student.pk)


def test_missing_record_is_404_even_for_registrar(registrar):
    with pytest.raises(Http404):
        permissions.get_student_for(registrar, pk=987654)


# --- capabilities --------------------------------------------------------------

# Who holds which capability is specified once, in registrar_portal/tests/test_permission_matrix.py (HOLDERS).


def test_anonymous_visitors_hold_no_capability():
    assert permissions.capabilities_of(AnonymousUser()) == frozenset()
    assert permissions.capabilities_of(None) == frozenset()


def test_an_inactive_account_holds_no_capability(registrar, secretary):
    User.objects.filter(pk__in=[registrar.pk, secretary.pk]).update(is_active=False)
    for user in User.objects.filter(pk__in=[registrar.pk, secretary.pk]):
        assert permissions.capabilities_of(user) == frozenset()


def test_a_capability_on_an_object_checks_the_scope(secretary, registrar, student, other_student, department):
    other_class = ClassGroupFactory(department=other_student.department)
    assert permissions.has_capability(secretary, "student.view", student)
    assert not permissions.has_capability(secretary, "student.view", other_student)
    assert permissions.has_capability(secretary, "export.department_lists", department)
    assert not permissions.has_capability(secretary, "export.department_lists", other_student.department)
    assert not permissions.has_capability(secretary, "reminder.remind_class", other_class)
    assert permissions.has_capability(registrar, "reminder.remind_class", other_class)


def test_the_students_own_steps_are_for_their_own_record_only(student_user, student, other_student):
    assert permissions.has_capability(student_user, "checklist.answer_own", student)
    assert not permissions.has_capability(student_user, "checklist.answer_own", other_student)


def test_require_capability_says_not_found_and_an_unknown_name_is_a_mistake(secretary, other_student):
    from students.errors import NotFound

    with pytest.raises(NotFound):
        permissions.require_capability(secretary, "student.view", other_student)
    # Not found is a 404 wherever a view lets it through.
    with pytest.raises(Http404):
        permissions.require_capability(secretary, "school.view")
    with pytest.raises(KeyError):
        permissions.has_capability(secretary, "flag.delete")
    with pytest.raises(KeyError):
        permissions.capability_required("flag.delete")
