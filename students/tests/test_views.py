"""The portal's pages through real HTTP requests: who may open what, and what they see."""

import datetime
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.apps import apps
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation

from students import idnumbers
from students.models import ImportFinding, RosterImport, Student, User
from students.tests.factories import ClassGroupFactory, SecretaryFactory, StudentFactory, UserFactory
from students.tests.rosters import as_table, base_rows, write_xlsx

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"  # UserFactory's


def id_number_ending_in_x() -> str:
    """A valid resident ID number whose last four characters are ``123X``."""
    born = datetime.date(2007, 1, 1)
    while True:
        body = f"110105{born:%Y%m%d}123"
        if idnumbers.check_digit(body) == "X":
            return body + "X"
        born += datetime.timedelta(days=1)


def link_account(student: Student) -> User:
    student.user = UserFactory(username=student.student_number)
    student.save()
    return student.user


def html(response) -> str:
    return response.content.decode()


# Who may open which page is one matrix: registrar_portal/tests/test_permission_matrix.py.


def assert_redirect(response, expected_path, *, next_path=None):
    assert response.status_code == 302, response.status_code
    target = urlsplit(response["Location"])
    assert target.path == expected_path
    if next_path is not None:
        assert parse_qs(target.query).get("next") == [next_path]


# ----------------------------------------------------------------------------
# Signing in and the home page
# ----------------------------------------------------------------------------


def test_student_signs_in_with_student_number_and_lands_on_own_record(client, student):
    link_account(student)
    response = client.post(reverse("login"), {"username": student.student_number, "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("students:student_detail", kwargs={"pk": student.pk})
    assert student.card_heading in html(response)


def test_wrong_password_stays_on_login_page(client, student):
    link_account(student)
    response = client.post(reverse("login"), {"username": student.student_number, "password": "wrong"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_student_without_record_sees_a_note_instead_of_a_record(client, db):
    client.force_login(UserFactory(username="20259999"))
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert "您的账号尚未关联学籍记录" in html(response)


def test_navigation_shows_only_what_the_role_can_open(client, student, secretary, registrar):
    list_link = f'href="{reverse("students:student_list")}"'
    upload_link = f'href="{reverse("students:roster_upload")}"'

    client.force_login(link_account(student))
    page = html(client.get(reverse("students:student_detail", kwargs={"pk": student.pk})))
    assert list_link not in page and upload_link not in page

    client.force_login(secretary)
    page = html(client.get(reverse("students:student_list")))
    assert list_link in page and upload_link not in page

    client.force_login(registrar)
    page = html(client.get(reverse("students:student_list")))
    assert list_link in page and upload_link in page


# ----------------------------------------------------------------------------
# Student list
# ----------------------------------------------------------------------------


def test_student_list_masks_id_numbers(client, registrar, department):
    number = id_number_ending_in_x()
    StudentFactory(department=department, id_number=number)
    client.force_login(registrar)

    page = html(client.get(reverse("students:student_list")))

    assert "**************123X" in page
    assert number not in page
    assert number[:14] not in page  # nor the hidden part on its own


def test_student_list_searches_by_student_number_prefix(client, registrar, department):
    StudentFactory(department=department, student_number="2025010001", name="张三")
    StudentFactory(department=department, student_number="2025010002", name="李四")
    StudentFactory(department=department, student_number="2024020001", name="王五")
    client.force_login(registrar)

    page = html(client.get(reverse("students:student_list"), {"q": "202501"}))
    assert "2025010001" in page and "2025010002" in page
    assert "2024020001" not in page

    page = html(client.get(reverse("students:student_list"), {"q": "2025010002"}))
    assert "2025010002" in page and "2025010001" not in page


def test_student_list_searches_by_name(client, registrar, department):
    StudentFactory(department=department, student_number="2025010001", name="欧阳明")
    StudentFactory(department=department, student_number="2025010002", name="李四")
    client.force_login(registrar)

    for query in ("欧阳明", "欧阳", " 欧阳明 "):
        page = html(client.get(reverse("students:student_list"), {"q": query}))
        assert "2025010001" in page, query
        assert "2025010002" not in page, query


def test_student_list_search_without_match_says_so(client, registrar, student):
    client.force_login(registrar)
    page = html(client.get(reverse("students:student_list"), {"q": "不存在的人"}))
    assert "没有符合条件的学生" in page
    assert student.student_number not in page


def test_secretary_list_shows_own_department_only(client, secretary, student, other_student):
    client.force_login(secretary)

    page = html(client.get(reverse("students:student_list")))
    assert student.student_number in page and student.name in page
    assert other_student.student_number not in page and other_student.name not in page

    # Searching for the other department's student by number or name finds nothing.
    other_link = f'href="{reverse("students:student_detail", kwargs={"pk": other_student.pk})}"'
    for query in (other_student.student_number, other_student.name):
        page = html(client.get(reverse("students:student_list"), {"q": query}))
        assert other_link not in page
        assert f"<td>{other_student.name}</td>" not in page
        assert "没有符合条件的学生" in page


def test_secretary_of_two_departments_lists_both(client, department, other_department, student, other_student):
    client.force_login(SecretaryFactory(departments=[department, other_department]))
    page = html(client.get(reverse("students:student_list")))
    assert student.student_number in page and other_student.student_number in page


def test_student_list_pages_keep_the_search(client, registrar, department):
    # One class for all: the factory's default makes a class (with its major and cohort) for each student.
    class_group = ClassGroupFactory(department=department)
    for n in range(55):
        StudentFactory(department=department, class_group=class_group, student_number=f"20250{n:05d}", name=f"测试{n}")
    StudentFactory(department=department, class_group=class_group, student_number="2099000001", name="别人")
    client.force_login(registrar)

    first = html(client.get(reverse("students:student_list"), {"q": "20250"}))
    assert "1 / 2" in first
    assert "?q=20250&amp;page=2" in first
    second = html(client.get(reverse("students:student_list"), {"q": "20250", "page": 2}))
    assert "2025000054" in second and "2099000001" not in second


def test_student_list_filters_by_class_and_roll_status(client, registrar, department):
    one = StudentFactory(department=department, class_group=ClassGroupFactory(department=department, name="计算2501"))
    two = StudentFactory(department=department, class_group=ClassGroupFactory(department=department, name="计算2502"))
    away = StudentFactory(department=department, class_group=one.class_group, roll_status="休学")
    client.force_login(registrar)
    url = reverse("students:student_list")

    page = html(client.get(url, {"class_group": one.class_group_id}))
    assert one.student_number in page and away.student_number in page and two.student_number not in page

    page = html(client.get(url, {"class_group": one.class_group_id, "roll_status": "休学"}))
    assert away.student_number in page and one.student_number not in page
    assert '<option value="休学" selected>休学</option>' in page


def test_a_secretary_can_filter_only_by_classes_of_their_departments(client, secretary, student, other_student):
    client.force_login(secretary)
    url = reverse("students:student_list")

    page = html(client.get(url))
    assert f'value="{student.class_group_id}"' in page and f'value="{other_student.class_group_id}"' not in page

    page = html(client.get(url, {"class_group": other_student.class_group_id}))
    assert other_student.student_number not in page and student.student_number not in page
    assert "筛选条件无效" in page


# ----------------------------------------------------------------------------
# Student detail
# ----------------------------------------------------------------------------


@pytest.fixture
def record(department):
    return StudentFactory(
        department=department,
        id_number=id_number_ending_in_x(),
        birth_date=datetime.date(2007, 3, 14),
        admission_date=datetime.date(2025, 9, 1),
        expected_graduation_date=datetime.date(2029, 6, 30),
    )


def detail(client, student):
    response = client.get(reverse("students:student_detail", kwargs={"pk": student.pk}))
    assert response.status_code == 200
    return html(response)


def test_student_sees_own_full_id_number(client, record):
    client.force_login(link_account(record))
    assert record.id_number in detail(client, record)


@pytest.mark.parametrize("viewer", ["secretary", "registrar"])
def test_staff_see_id_number_masked(client, record, viewer, request):
    client.force_login(request.getfixturevalue(viewer))
    page = detail(client, record)
    assert "**************123X" in page
    assert record.id_number not in page
    assert record.id_number[:14] not in page


def test_detail_heading_is_level_school_major(client, record):
    client.force_login(link_account(record))
    page = detail(client, record)
    assert re.search(r"<h1[^>]*>\s*本科-示范大学-计算机科学与技术\s*</h1>", page)
    assert f"<title>{record.name}" in page


def test_detail_shows_dates_as_chsi_does(client, record):
    client.force_login(link_account(record))
    page = detail(client, record)
    assert "2007年03月14日" in page
    assert "2025年09月01日" in page
    assert "2029年06月30日" in page
    assert "2007-03-14" not in page


def test_detail_shows_the_card_fields_with_chsi_labels(client, record):
    client.force_login(link_account(record))
    page = detail(client, record)
    for label, value in (("姓名", record.name), ("学号", record.student_number), ("学籍状态", record.roll_status)):
        assert re.search(rf"<dt>{label}.*?</dt>\s*<dd>{re.escape(value)}</dd>", page, re.S), label


def test_detail_lists_findings(client, record, secretary):
    ImportFinding.objects.create(
        student=record,
        field_code="XB",
        kind=ImportFinding.Kind.GENDER_MISMATCH,
        message="身份证号码对应的性别为女，记录为男",
    )
    ImportFinding.objects.create(
        student=record,
        field_code="MZ",
        kind=ImportFinding.Kind.UNKNOWN_ETHNICITY,
        message="民族“穿青人”不在 GB/T 3304 名录中",
    )
    client.force_login(secretary)
    page = detail(client, record)
    assert "导入时发现的问题" in page
    assert "性别与身份证号码不符" in page and "身份证号码对应的性别为女，记录为男" in page
    assert "民族不在 GB/T 3304 名录中" in page and "穿青人" in page


def test_detail_without_findings_has_no_findings_section(client, record):
    client.force_login(link_account(record))
    assert "导入时发现的问题" not in detail(client, record)


def test_findings_do_not_reveal_the_id_number_to_staff(client, department, secretary):
    """The 15-digit finding must not quote the upgraded number: staff read it in lists."""
    old_number = "110105070314123"
    new_number = idnumbers.upgrade_15_to_18(old_number)
    student = StudentFactory(department=department, id_number=old_number)
    [problem] = idnumbers.check_id_number(old_number, idnumbers.IdType.RESIDENT)
    ImportFinding.objects.create(student=student, field_code="SFZH", kind=problem.code, message=problem.message)

    client.force_login(secretary)
    page = detail(client, student)
    assert "15 位旧身份证号码" in page
    assert old_number not in page
    assert new_number not in page
    assert new_number[:14] not in page


# ----------------------------------------------------------------------------
# Roster upload
# ----------------------------------------------------------------------------

UPLOAD_URL = "/students/roster/import/"


def roster_file(tmp_path, rows, name="roster.xlsx") -> SimpleUploadedFile:
    path = write_xlsx(tmp_path / name, *as_table(rows))
    return SimpleUploadedFile(name, path.read_bytes(), content_type="application/octet-stream")


def private_files(settings) -> list:
    root = Path(settings.PRIVATE_ROOT)
    return list(root.rglob("*")) if root.exists() else []


def test_upload_imports_a_good_roster_and_shows_counts(client, registrar, tmp_path, settings):
    client.force_login(registrar)
    rows = base_rows(3)

    response = client.post(UPLOAD_URL, {"file": roster_file(tmp_path, rows)})

    page = html(response)
    assert response.status_code == 200
    assert "导入完成" in page
    assert "新增 3，更新 0，未变 0" in page
    assert set(Student.objects.values_list("student_number", flat=True)) == {r["XH"] for r in rows}
    run = RosterImport.objects.get()
    assert run.status == RosterImport.Status.APPLIED
    assert run.file_name == "roster.xlsx"
    assert run.imported_by == registrar
    assert "roster.xlsx" in page  # listed under the import history
    assert private_files(settings) == []


def test_uploading_the_same_roster_twice_changes_nothing(client, registrar, tmp_path):
    client.force_login(registrar)
    rows = base_rows(3)
    client.post(UPLOAD_URL, {"file": roster_file(tmp_path, rows)})
    versions = list(Student.objects.order_by("pk").values_list("version", flat=True))

    page = html(client.post(UPLOAD_URL, {"file": roster_file(tmp_path, rows)}))

    assert "新增 0，更新 0，未变 3" in page
    assert list(Student.objects.order_by("pk").values_list("version", flat=True)) == versions


def test_upload_of_broken_roster_names_row_and_field_and_writes_nothing(client, registrar, tmp_path, settings):
    client.force_login(registrar)
    rows = base_rows(3)
    rows[1]["CSRQ"] = "2007-13-45"  # the second data row: spreadsheet row 3

    page = html(client.post(UPLOAD_URL, {"file": roster_file(tmp_path, rows)}))

    assert "有错误，未导入任何记录" in page
    # People read the label; CHSI's code follows in a lighter style.
    assert re.search(
        r'<tr><td>3</td><td>出生日期 <span class="hint field-code">CSRQ</span></td><td>[^<]+</td></tr>', page
    )
    assert not Student.objects.exists()
    assert RosterImport.objects.get().status == RosterImport.Status.REJECTED
    assert private_files(settings) == []


def test_upload_of_a_file_that_is_not_a_roster_is_refused(client, registrar, settings):
    client.force_login(registrar)
    upload = SimpleUploadedFile("photo.xlsx", b"PK\x03\x04 not really a workbook")

    page = html(client.post(UPLOAD_URL, {"file": upload}))

    assert "有错误，未导入任何记录" in page
    assert not Student.objects.exists()
    assert private_files(settings) == []


def test_dry_run_checks_but_writes_nothing(client, registrar, tmp_path, settings):
    client.force_login(registrar)

    page = html(client.post(UPLOAD_URL, {"file": roster_file(tmp_path, base_rows(3)), "dry_run": "on"}))

    assert "检查通过（未写入）" in page
    assert "新增 3，更新 0，未变 0" in page
    assert not Student.objects.exists()
    assert private_files(settings) == []


def test_upload_page_without_a_file_asks_for_one(client, registrar):
    client.force_login(registrar)
    response = client.post(UPLOAD_URL, {})
    assert response.status_code == 200
    assert response.context["form"].errors["file"]
    assert not RosterImport.objects.exists()


@pytest.mark.parametrize("viewer", ["secretary", "student"])
def test_non_registrar_cannot_upload(client, viewer, request, tmp_path, settings):
    user = request.getfixturevalue(viewer)
    client.force_login(link_account(user) if viewer == "student" else user)

    response = client.post(UPLOAD_URL, {"file": roster_file(tmp_path, base_rows(3))})

    assert response.status_code == 404
    assert Student.objects.count() == (1 if viewer == "student" else 0)
    assert not RosterImport.objects.exists()
    assert private_files(settings) == []


# ----------------------------------------------------------------------------
# Language switch
# ----------------------------------------------------------------------------


def test_switching_to_english(client, registrar):
    client.force_login(registrar)
    page = html(client.get(reverse("students:student_list")))
    assert '<html lang="zh-hans">' in page

    response = client.post(reverse("set_language"), {"language": "en", "next": reverse("students:student_list")})
    assert_redirect(response, reverse("students:student_list"))

    page = html(client.get(reverse("students:student_list")))
    assert '<html lang="en">' in page
    # The switch now offers the way back.
    assert 'name="language" value="zh-hans"' in page
    with translation.override("en"):
        english_students = translation.pgettext("navigation", "学生")
    assert english_students == "Students"  # locale/en is committed, compiled
    assert f">{english_students}</a>" in page


def test_switching_back_to_chinese(client, registrar):
    client.force_login(registrar)
    client.post(reverse("set_language"), {"language": "en"})
    client.post(reverse("set_language"), {"language": "zh-hans"})
    page = html(client.get(reverse("students:student_list")))
    assert '<html lang="zh-hans">' in page
    assert ">学生</a>" in page


# ----------------------------------------------------------------------------
# Django admin
# ----------------------------------------------------------------------------


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", role=User.Role.ADMIN, is_staff=True, is_superuser=True)


STUDENT_CHANGELIST = "/admin/students/student/"


@pytest.mark.parametrize("persona", ["anonymous", "student", "secretary", "registrar"])
def test_the_admin_sends_all_but_superusers_to_its_own_sign_in(client, persona, request):
    """The admin namespace is outside the portal's matrix: Django's admin guards itself."""
    if persona == "student":
        client.force_login(link_account(request.getfixturevalue("student")))
    elif persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))

    response = client.get(reverse("admin:index"))

    assert_redirect(response, reverse("admin:login"), next_path=reverse("admin:index"))


def test_the_admin_opens_for_a_superuser(client, superuser):
    client.force_login(superuser)
    assert client.get(reverse("admin:index")).status_code == 200


def test_admin_student_list_masks_id_numbers(client, superuser, record):
    client.force_login(superuser)
    response = client.get(STUDENT_CHANGELIST)
    assert response.status_code == 200
    page = html(response)
    assert record.student_number in page
    assert "**************123X" in page
    assert record.id_number not in page


def test_admin_change_page_masks_the_id_number_and_logs_the_view(client, superuser, record):
    """Issue 11 item 3: the admin is no back door to the full number, and every look is logged."""
    from students.models import AccessEvent

    client.force_login(superuser)
    url = reverse("admin:students_student_change", args=[record.pk])

    page = html(client.get(url, REMOTE_ADDR="203.0.113.7"))

    assert record.id_number not in page and record.id_number[:14] not in page
    assert "**************123X" in page
    # Revealing is the registrar's page: a reason, written to the access log.
    assert reverse("students:student_detail", args=[record.pk]) in page
    view = AccessEvent.objects.get(action=AccessEvent.Action.RECORD_VIEW)
    assert (view.user, view.student, view.ip_address) == (superuser, record, "203.0.113.7")


def test_admin_replaces_an_id_number_without_showing_it(client, superuser, record):
    client.force_login(superuser)
    url = reverse("admin:students_student_change", args=[record.pk])
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() or "" for name in form.fields}
    data.update({"findings-TOTAL_FORMS": 0, "findings-INITIAL_FORMS": 0})

    kept = client.post(url, {**data, "name": "王大明"})
    assert kept.status_code == 302
    record_after = Student.objects.get(pk=record.pk)
    assert (record_after.name, record_after.id_number) == ("王大明", record.id_number)

    replaced = idnumbers.upgrade_15_to_18("110105070314123")
    assert client.post(url, {**data, "new_id_number": replaced}).status_code == 302
    assert Student.objects.get(pk=record.pk).id_number == replaced


@pytest.mark.parametrize("search", ["student_number", "name"])
def test_admin_student_search(client, superuser, department, search):
    wanted = StudentFactory(department=department, student_number="2025010001", name="欧阳明")
    unwanted = StudentFactory(department=department, student_number="2024020002", name="李四")
    client.force_login(superuser)

    page = html(client.get(STUDENT_CHANGELIST, {"q": getattr(wanted, search)}))

    assert f">{wanted.student_number}</a>" in page
    assert unwanted.student_number not in page
    assert wanted.id_number not in page


def test_admin_finding_list_searches_by_student_and_masks(client, superuser, department):
    student = StudentFactory(department=department, student_number="2025010001", name="欧阳明")
    other = StudentFactory(department=department, student_number="2024020002", name="李四")
    for who in (student, other):
        ImportFinding.objects.create(
            student=who, field_code="XB", kind=ImportFinding.Kind.GENDER_MISMATCH, message="性别不符"
        )
    client.force_login(superuser)

    for query in ("2025010001", "欧阳明"):
        page = html(client.get("/admin/students/importfinding/", {"q": query}))
        assert "2025010001 欧阳明" in page
        assert "2024020002" not in page
        assert student.id_number not in page


def test_admin_finding_list_shows_no_id_numbers(client, superuser, department):
    old_number = "110105070314123"
    new_number = idnumbers.upgrade_15_to_18(old_number)
    student = StudentFactory(department=department, id_number=old_number)
    [problem] = idnumbers.check_id_number(old_number, idnumbers.IdType.RESIDENT)
    ImportFinding.objects.create(student=student, field_code="SFZH", kind=problem.code, message=problem.message)
    client.force_login(superuser)

    page = html(client.get("/admin/students/importfinding/"))

    assert "应更换为 18 位身份证号码" in page
    assert new_number not in page
    assert old_number not in page


def test_every_students_model_is_in_the_admin(client, superuser):
    models = list(apps.get_app_config("students").get_models())
    assert len(models) >= 8
    client.force_login(superuser)
    for model in models:
        assert admin.site.is_registered(model), model.__name__
        url = reverse(f"admin:students_{model._meta.model_name}_changelist")
        assert client.get(url).status_code == 200, url


def test_portal_is_chinese_even_when_the_browser_prefers_english(client):
    response = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert 'lang="zh-hans"' in html(response)
    assert response["Content-Language"] == "zh-hans"


def test_chosen_language_is_kept_in_the_cookie(client):
    client.post("/i18n/setlang/", {"language": "en", "next": "/accounts/login/"})
    assert 'lang="en"' in html(client.get("/accounts/login/"))
