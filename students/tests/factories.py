import datetime

import factory

from students import idnumbers
from students.models import ClassGroup, Cohort, Department, Major, Student, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct horse battery")
    role = User.Role.STUDENT


class SecretaryFactory(UserFactory):
    role = User.Role.SECRETARY
    username = factory.Sequence(lambda n: f"secretary{n}")

    @factory.post_generation
    def departments(self, create, extracted, **kwargs):
        if create and extracted:
            self.departments.set(extracted)


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"第{n}学院")


class MajorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Major
        django_get_or_create = ("code", "name")

    code = "080901"
    name = "计算机科学与技术"


class CohortFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cohort
        django_get_or_create = ("admission_year", "level")

    admission_year = 2025
    level = "本科"


class ClassGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ClassGroup
        django_get_or_create = ("department", "name")

    name = factory.Sequence(lambda n: f"计算25{n:02d}")
    department = factory.SubFactory(DepartmentFactory)
    major = factory.SubFactory(MajorFactory)
    cohort = factory.SubFactory(CohortFactory)


def valid_id_number(n: int, *, born=datetime.date(2007, 3, 14), male=True) -> str:
    body = f"110105{born:%Y%m%d}{n % 100:02d}{(n % 5) * 2 + (1 if male else 0)}"
    return body + idnumbers.check_digit(body)


def another_id_number(student) -> str:
    """A valid ID number that is not the student's own: the factory's sequence cycles every
    100 students, so a fixed claim would sometimes equal the record and be refused as "no change"."""
    return next(number for n in range(77, 99) if (number := valid_id_number(n)) != student.id_number)


class StudentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Student

    student_number = factory.Sequence(lambda n: f"2025{n:06d}")
    name = factory.Sequence(lambda n: f"学生{n}")
    gender = "男"
    birth_date = datetime.date(2007, 3, 14)
    id_number = factory.Sequence(lambda n: valid_id_number(n))
    ethnicity = "汉族"
    exam_number = factory.Sequence(lambda n: f"25110105{n:06d}")
    school_name = "示范大学"
    school_code = "19999"
    level = "本科"
    major_code = "080901"
    major_name = "计算机科学与技术"
    duration = "4"
    education_category = "普通高等教育"
    study_form = "普通全日制"
    roll_status = "在籍（注册学籍）"
    admission_date = datetime.date(2025, 9, 1)
    expected_graduation_date = datetime.date(2029, 6, 30)
    admission_year = "2025"
    origin_province = "北京"
    phone = "13800000000"
    department = factory.SubFactory(DepartmentFactory)
    department_name = factory.LazyAttribute(lambda o: o.department.name)
    class_group = factory.LazyAttribute(lambda o: ClassGroupFactory(department=o.department))
    class_name = factory.LazyAttribute(lambda o: o.class_group.name if o.class_group else "")
