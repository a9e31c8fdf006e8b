"""Notices as students and staff meet them: safe Markdown, audience, reads, read rates, attachments."""

import io
import threading
import zipfile
from pathlib import Path

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.urls import reverse

from notices.models import Notice, NoticeAttachment, NoticeRead
from students.tests.factories import ClassGroupFactory, CohortFactory
from verification.tests.factories import CampaignFactory, jpeg_bytes, pdf_bytes, student_with_account

from .cast import html, notice_published, table, text

pytestmark = pytest.mark.django_db


@pytest.fixture
def cohort(db):
    return CohortFactory(admission_year=2025, level="本科")


@pytest.fixture
def me(department, cohort):
    return student_with_account(
        department=department,
        cohort=cohort,
        class_group=ClassGroupFactory(department=department, name="计算机2501"),
        name="王小明",
    )


@pytest.fixture
def me_client(me):
    """The student's own browser, apart from ``client`` (which tests sign in as others)."""
    browser = Client()
    browser.force_login(me.user)
    return browser


def detail_url(notice) -> str:
    return reverse("notices:notice_detail", args=[notice.pk])


def private_notice_files(settings) -> list[Path]:
    folder = Path(settings.PRIVATE_ROOT) / "notices"
    return sorted(folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------------------
# Writing and publishing
# ---------------------------------------------------------------------------

EVIL_BODY = """请 **按时** 完成核对。

<script>alert(1)</script>

<img src=x onerror=alert(1)>

[x](javascript:alert(1)) 和 [学信网](https://www.chsi.com.cn)
"""


def test_markdown_with_scripts_renders_inert_on_the_notice_page(client, registrar, me, cohort):
    client.force_login(registrar)
    response = client.post(
        reverse("notices:notice_create"),
        {"title": "核对通知", "body": EVIL_BODY, "cohorts": [cohort.pk]},
    )
    notice = Notice.objects.get()
    assert response["Location"] == reverse("notices:notice_update", args=[notice.pk])
    client.post(reverse("notices:notice_publish", args=[notice.pk]))

    client.force_login(me.user)
    page = html(client.get(detail_url(notice)))

    assert "<strong>按时</strong>" in page
    assert '<a href="https://www.chsi.com.cn" rel="noopener noreferrer nofollow">学信网</a>' in page
    assert "<script" not in page
    assert "<img" not in page
    assert "onerror" not in page
    assert "javascript:" not in page
    assert "alert(1)" not in page


def test_a_draft_is_invisible_to_students_until_published(client, registrar, me_client, me, cohort):
    notice = Notice.objects.create(title="草稿通知", body="还没写完")
    assert me_client.get(detail_url(notice)).status_code == 404
    assert "草稿通知" not in html(me_client.get(reverse("notices:notice_list")))

    client.force_login(registrar)
    assert "草稿" in html(client.get(reverse("notices:notice_list")))
    client.post(reverse("notices:notice_publish", args=[notice.pk]))

    assert me_client.get(detail_url(notice)).status_code == 200
    assert "草稿通知" in html(me_client.get(reverse("notices:notice_list")))

    client.post(reverse("notices:notice_unpublish", args=[notice.pk]))
    assert me_client.get(detail_url(notice)).status_code == 404


def test_a_campaign_notice_without_a_deadline_takes_the_campaigns(client, registrar, cohort):
    campaign = CampaignFactory(cohorts=[cohort])
    client.force_login(registrar)
    client.post(reverse("notices:notice_create"), {"title": "核对通知", "body": "请核对", "campaign": campaign.pk})
    assert Notice.objects.get().deadline == campaign.closes_at


def test_students_and_secretaries_cannot_write_notices(client, me, secretary):
    for user in (me.user, secretary):
        client.force_login(user)
        assert client.get(reverse("notices:notice_create")).status_code == 404
        assert client.post(reverse("notices:notice_create"), {"title": "x", "body": "y"}).status_code == 404
    assert not Notice.objects.exists()


# ---------------------------------------------------------------------------
# Audience
# ---------------------------------------------------------------------------


def test_only_the_audience_sees_a_notice_and_its_attachment(
    client, me, me_client, department, other_department, cohort, registrar, secretary, other_secretary
):
    other_department_student = student_with_account(department=other_department, cohort=cohort)
    other_cohort_student = student_with_account(
        department=department, cohort=CohortFactory(admission_year=2024, level="本科")
    )
    notice = notice_published(title="计算机学院2025级专用", cohorts=[cohort], departments=[department])
    attachment = upload_attachment(client, registrar, notice, "核对说明.pdf", pdf_bytes())
    urls = [detail_url(notice), reverse("notices:attachment_download", args=[attachment.pk])]

    for outsider in (other_department_student, other_cohort_student):
        client.force_login(outsider.user)
        assert "计算机学院2025级专用" not in html(client.get(reverse("notices:notice_list")))
        assert "计算机学院2025级专用" not in html(client.get(reverse("verification:my_checks")))
        for url in urls:
            assert client.get(url).status_code == 404, url

    assert "计算机学院2025级专用" in html(me_client.get(reverse("notices:notice_list")))
    for url in urls:
        assert me_client.get(url).status_code == 200, url
    # Staff may open every published notice and its attachments.
    for user in (registrar, secretary, other_secretary):
        client.force_login(user)
        for url in urls:
            assert client.get(url).status_code == 200, url


def test_anonymous_visitors_are_sent_to_sign_in(client, cohort):
    notice = notice_published(cohorts=[cohort])
    response = client.get(detail_url(notice))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def test_reading_is_counted_once_even_when_opened_twice_or_in_two_tabs(me_client, me, cohort, registrar):
    notice = notice_published(cohorts=[cohort])
    other_tab = Client()
    other_tab.force_login(me.user)

    for browser in (me_client, me_client, other_tab):
        assert browser.get(detail_url(notice)).status_code == 200

    assert NoticeRead.objects.filter(notice=notice).count() == 1
    me_client.force_login(registrar)
    page = html(me_client.get(reverse("notices:notice_stats", args=[notice.pk])))
    assert "1 / 1 人已读" in page


def test_staff_opening_a_notice_is_not_counted_as_a_read(client, registrar, secretary, cohort):
    notice = notice_published(cohorts=[cohort])
    for user in (registrar, secretary):
        client.force_login(user)
        client.get(detail_url(notice))
    assert not NoticeRead.objects.exists()


def test_the_admissions_office_reads_published_notices_like_other_staff(client, registrar, department, cohort):
    from students.models import User
    from students.tests.factories import UserFactory

    published = notice_published(title="关于专业名称异议的说明", departments=[department])
    Notice.objects.create(title="草稿通知", body="未发布")
    client.force_login(UserFactory(role=User.Role.ADMISSIONS, username="admissions1"))

    listing = text(html(client.get(reverse("notices:notice_list"))))
    assert "关于专业名称异议的说明" in listing and "草稿通知" not in listing
    assert "阅读情况" not in listing  # read rates are the departments' and the registrar's
    assert "关于专业名称异议的说明" in text(html(client.get(detail_url(published))))
    assert not NoticeRead.objects.exists()
    nav = html(client.get(reverse("notices:notice_list"))).split("<nav>")[1].split("</nav>")[0]
    assert f'href="{reverse("notices:notice_list")}"' in nav  # the menu leads there


def test_unread_notices_come_first_on_the_students_home(me_client, me, cohort):
    CampaignFactory(cohorts=[cohort])
    older = notice_published(title="第一则通知", cohorts=[cohort])
    newer = notice_published(title="第二则通知", cohorts=[cohort])
    me_client.get(detail_url(newer))  # read

    response = me_client.get(reverse("home"), follow=True)

    page = html(response)
    assert response.redirect_chain[-1][0] == reverse("verification:my_checks")
    assert page.index("第一则通知") < page.index("第二则通知")
    assert "未读" in text(page[: page.index("第一则通知")])
    assert older.pk != newer.pk


def test_with_everything_read_the_home_leads_straight_to_the_check(me_client, me, cohort):
    campaign = CampaignFactory(cohorts=[cohort])
    notice = notice_published(cohorts=[cohort])

    assert me_client.get(reverse("verification:my_checks")).status_code == 200  # the unread notice is shown
    me_client.get(detail_url(notice))
    response = me_client.get(reverse("verification:my_checks"))

    assert response.status_code == 302
    assert response["Location"] == reverse("verification:checklist", args=[campaign.pk])


def test_a_student_before_any_campaign_still_sees_an_unread_notice(me_client, me, cohort):
    notice_published(title="请先注册学信网账号", cohorts=[cohort])
    response = me_client.get(reverse("home"), follow=True)
    page = html(response)
    assert "请先注册学信网账号" in page
    # The way on to the record does not lead back to this page.
    assert f'href="{reverse("students:student_detail", args=[me.pk])}"' in page


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_tabs_opening_a_notice_at_the_same_moment_count_one_read(me, cohort):
    notice = notice_published(cohorts=[cohort])
    start = threading.Barrier(2)
    statuses = []

    def open_tab():
        browser = Client()
        browser.force_login(me.user)
        start.wait()
        try:
            statuses.append(browser.get(detail_url(notice)).status_code)
        finally:
            connection.close()

    tabs = [threading.Thread(target=open_tab) for _ in range(2)]
    for tab in tabs:
        tab.start()
    for tab in tabs:
        tab.join()

    assert statuses == [200, 200]
    assert NoticeRead.objects.filter(notice=notice, user=me.user).count() == 1


# ---------------------------------------------------------------------------
# Read rates
# ---------------------------------------------------------------------------


@pytest.fixture
def readers(department, other_department, cohort):
    """计算机学院: 2501 (two students, one read), 2502 (one, none read); 外国语学院: a 2501 too (one, read)."""
    cs1 = ClassGroupFactory(department=department, name="2501")
    cs2 = ClassGroupFactory(department=department, name="2502")
    en1 = ClassGroupFactory(department=other_department, name="2501")
    students = {
        "cs1_read": student_with_account(department=department, class_group=cs1, cohort=cohort),
        "cs1_unread": student_with_account(department=department, class_group=cs1, cohort=cohort),
        "cs2_unread": student_with_account(department=department, class_group=cs2, cohort=cohort),
        "en1_read": student_with_account(department=other_department, class_group=en1, cohort=cohort),
    }
    notice = notice_published(cohorts=[cohort])
    browser = Client()
    for key in ("cs1_read", "en1_read"):
        browser.force_login(students[key].user)
        browser.get(detail_url(notice))
    return notice


def stats(client, user, notice) -> str:
    client.force_login(user)
    response = client.get(reverse("notices:notice_stats", args=[notice.pk]))
    assert response.status_code == 200
    return html(response)


def test_registrar_sees_read_rates_of_every_class_and_department(client, registrar, readers):
    page = stats(client, registrar, readers)

    assert "2 / 4 人已读" in page
    assert table(page, "by-department") == [["外国语学院", "1", "1", "100%"], ["计算机学院", "1", "3", "33%"]]
    # Two departments' classes named 2501 are counted apart.
    assert table(page, "by-class") == [
        ["外国语学院", "2501", "1", "1", "100%"],
        ["计算机学院", "2501", "1", "2", "50%"],
        ["计算机学院", "2502", "0", "1", "0%"],
    ]


def test_a_secretary_sees_read_rates_of_their_departments_only(client, secretary, other_secretary, readers):
    page = stats(client, secretary, readers)
    assert "1 / 3 人已读" in page
    assert table(page, "by-department") == [["计算机学院", "1", "3", "33%"]]
    assert "外国语学院" not in page

    page = stats(client, other_secretary, readers)
    assert "1 / 1 人已读" in page
    assert table(page, "by-class") == [["外国语学院", "2501", "1", "1", "100%"]]
    assert "计算机学院" not in page


def test_students_cannot_open_read_rates(me_client, readers):
    assert me_client.get(reverse("notices:notice_stats", args=[readers.pk])).status_code == 404


# ---------------------------------------------------------------------------
# Attachments
# ---------------------------------------------------------------------------


def upload_attachment(client, registrar, notice, name, data):
    client.force_login(registrar)
    client.post(reverse("notices:attachment_upload", args=[notice.pk]), {"file": SimpleUploadedFile(name, data)})
    return NoticeAttachment.objects.filter(notice=notice).order_by("-pk").first()


def docx_bytes(*, macros=False) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        package.writestr("[Content_Types].xml", "<Types/>")
        package.writestr("word/document.xml", "<w:document/>")
        if macros:
            package.writestr("word/vbaProject.bin", b"\x00macro")
    return out.getvalue()


def xlsx_bytes() -> bytes:
    out = io.BytesIO()
    workbook = openpyxl.Workbook()
    workbook.active.append(["学号", "姓名"])
    workbook.save(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "stored_as", "content_type"),
    [
        ("说明.pdf", pdf_bytes(), "说明.pdf", "application/pdf"),
        ("照片.jpeg", jpeg_bytes(), "照片.jpg", "image/jpeg"),
        ("流程", docx_bytes(), "流程.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("名单.xlsx", xlsx_bytes(), "名单.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ],
)
def test_an_attachment_is_stored_privately_and_served_as_a_download(
    client, registrar, me, cohort, settings, name, data, stored_as, content_type
):
    notice = notice_published(cohorts=[cohort])
    attachment = upload_attachment(client, registrar, notice, name, data)

    assert attachment.original_name == stored_as
    [stored] = private_notice_files(settings)
    assert stored.name == attachment.storage_name and stored.stem not in name and len(stored.stem) == 32
    client.force_login(me.user)
    assert stored_as in html(client.get(detail_url(notice)))
    response = client.get(reverse("notices:attachment_download", args=[attachment.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("通知.pdf", b"<html><script>alert(1)</script></html>"),
        ("宏.docx", docx_bytes(macros=True)),
        ("压缩包.docx", b"PK\x03\x04" + b"\x00" * 100),
        ("程序.exe", b"MZ\x90\x00"),
    ],
)
def test_an_attachment_that_is_not_an_allowed_type_is_refused(client, registrar, cohort, settings, name, data):
    notice = notice_published(cohorts=[cohort])
    client.force_login(registrar)
    response = client.post(
        reverse("notices:attachment_upload", args=[notice.pk]), {"file": SimpleUploadedFile(name, data)}, follow=True
    )
    assert "不是 PDF、Word（.docx）、Excel（.xlsx）、JPEG 或 PNG 文件" in html(response)
    assert not NoticeAttachment.objects.exists()
    assert private_notice_files(settings) == []


def test_an_attachment_over_20_mb_is_refused(client, registrar, cohort, settings):
    notice = notice_published(cohorts=[cohort])
    client.force_login(registrar)
    big = pdf_bytes() + b"0" * (20 * 1024 * 1024)
    response = client.post(
        reverse("notices:attachment_upload", args=[notice.pk]), {"file": SimpleUploadedFile("大.pdf", big)}, follow=True
    )
    assert "超过 20 MB" in html(response)
    assert not NoticeAttachment.objects.exists()
    assert private_notice_files(settings) == []


def test_deleting_an_attachment_removes_its_file(
    client, registrar, cohort, settings, django_capture_on_commit_callbacks
):
    notice = notice_published(cohorts=[cohort])
    attachment = upload_attachment(client, registrar, notice, "说明.pdf", pdf_bytes())
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("notices:attachment_delete", args=[attachment.pk]))
    assert not NoticeAttachment.objects.exists()
    assert private_notice_files(settings) == []


def test_dashboards_show_the_read_rate_of_the_latest_notice(client, registrar, secretary, department, cohort):
    from verification.tests.factories import CampaignFactory

    campaign = CampaignFactory(cohorts=[cohort], by=registrar)
    group = ClassGroupFactory(department=department, name="计算2599", cohort=cohort)
    readers = [student_with_account(department=department, class_group=group, cohort=cohort) for _ in range(3)]
    notice = notice_published(title="请按时核对学籍", created_by=registrar, campaign=campaign)
    for student in readers[:2]:
        NoticeRead.objects.create(notice=notice, user=student.user)
    client.force_login(secretary)
    page = text(html(client.get(reverse("workspace:dashboard"), {"campaign": campaign.pk})))
    assert "通知阅读率：请按时核对学籍" in page
    assert "计算2599 2 3 67%" in page
    client.force_login(registrar)
    school = text(html(client.get(reverse("workspace:school"), {"campaign": campaign.pk})))
    assert f"{department.name} 2 3 67%" in school
