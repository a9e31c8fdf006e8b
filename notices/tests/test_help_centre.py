"""The help centre: seeded from docs/domain.md §7, searchable, editable by registrar staff."""

import importlib

import pytest
from django.apps import apps as django_apps
from django.urls import reverse

from notices.models import HelpArticle
from verification.tests.factories import CampaignFactory, student_with_account

from .cast import html, text

pytestmark = pytest.mark.django_db

seed_migration = importlib.import_module("notices.migrations.0002_help_articles")


@pytest.fixture
def seeded(db):
    # The migration seeds the test database; a transactional test elsewhere may have flushed it.
    seed_migration.seed(django_apps, None)


@pytest.fixture
def student_client(client, department):
    client.force_login(student_with_account(department=department).user)
    return client


def search(client, query) -> str:
    response = client.get(reverse("notices:help_index"), {"q": query})
    assert response.status_code == 200
    return html(response)


def test_the_help_centre_lists_the_problems_every_notice_repeats(student_client, seeded):
    page = text(html(student_client.get(reverse("notices:help_index"))))
    for title in (
        "身份证号已被注册",
        "手机号已被注册",
        "查不到我的学籍",
        "专业名称带括号",
        "没有录取照片",
        "显示多个学籍",
        "考生号与准考证号不一样",
        "学籍状态不是“在籍（注册学籍）”",
        "忘记学信网账号或密码",
    ):
        assert title in page, title


@pytest.mark.parametrize("query", ["尝试绑定学籍", "5 次", "5次"])
def test_search_finds_the_five_tries_of_binding_a_record(student_client, seeded, query):
    page = search(student_client, query)
    assert "学信网上查不到我的学籍" in page
    assert "手机号已被注册" not in page


def test_search_looks_in_keywords_and_says_when_nothing_matches(student_client, seeded):
    assert "学信网显示多个学籍" in text(search(student_client, "专升本"))
    page = search(student_client, "宿舍报修")
    assert "没有找到相关问题" in page


def test_an_article_page_shows_the_answer(student_client, seeded):
    page = html(student_client.get(reverse("notices:help_article", args=["record-not-found"])))
    assert "<strong>注意：只有 5 次机会。</strong>" in page
    assert "尝试绑定学籍" in page
    assert student_client.get(reverse("notices:help_article", args=["no-such-article"])).status_code == 404


def test_the_checklist_page_and_the_navigation_link_the_help_centre(client, department):
    me = student_with_account(department=department)
    campaign = CampaignFactory(cohorts=[me.cohort])
    client.force_login(me.user)
    page = html(client.get(reverse("verification:checklist", args=[campaign.pk])))
    assert page.count(f'href="{reverse("notices:help_index")}"') == 2  # the navigation and "遇到问题？"


def test_registrar_staff_edit_and_add_articles(client, registrar, seeded):
    client.force_login(registrar)
    article = HelpArticle.objects.get(slug="phone-registered")
    response = client.post(
        reverse("notices:help_update", args=[article.slug]),
        {
            "title": article.title,
            "slug": article.slug,
            "keywords": "手机号",
            "position": 5,
            "body": "请换用 **新号码**。",
        },
    )
    assert response["Location"] == reverse("notices:help_article", args=["phone-registered"])
    assert "<strong>新号码</strong>" in html(client.get(response["Location"]))

    client.post(
        reverse("notices:help_create"),
        {"title": "学号记不清", "slug": "student-number", "keywords": "学号", "position": 200, "body": "问辅导员。"},
    )
    assert "学号记不清" in search(client, "学号")
    assert HelpArticle.objects.get(slug="student-number").updated_by == registrar


def test_students_and_secretaries_cannot_edit_articles(client, department, secretary, seeded):
    article = HelpArticle.objects.get(slug="phone-registered")
    for user in (student_with_account(department=department).user, secretary):
        client.force_login(user)
        response = client.post(
            reverse("notices:help_update", args=[article.slug]),
            {"title": "改掉", "slug": article.slug, "position": 1, "body": "改掉"},
        )
        assert response.status_code == 404
        assert client.get(reverse("notices:help_create")).status_code == 404
    article.refresh_from_db()
    assert article.title != "改掉"


def test_the_help_centre_needs_signing_in(client, seeded):
    response = client.get(reverse("notices:help_index"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_chsi_account_articles_answer_e_mail_activation_and_a_wrong_id_number(student_client, seeded):
    importlib.import_module("notices.migrations.0007_help_chsi_account_articles").seed(django_apps, None)

    assert "注册学信网时收不到激活邮件" in text(search(student_client, "激活邮件"))
    page = text(search(student_client, "证件号码错误"))
    assert "学信网上显示的身份证号（证件号码）不对" in page


@pytest.mark.parametrize("query", ["采集码", "图像采集", "学历照片"])
def test_the_image_collection_code_article_is_listed_and_found(student_client, seeded, query):
    importlib.import_module("notices.migrations.0009_help_image_collection_code_article").seed(django_apps, None)

    assert "毕业生学历照片：如何获取采集码并参加图像采集" in text(
        html(student_client.get(reverse("notices:help_index")))
    )
    assert "毕业生学历照片：如何获取采集码并参加图像采集" in text(search(student_client, query))
    page = html(student_client.get(reverse("notices:help_article", args=["image-collection-code"])))
    assert "学信档案" in page and "480×640 像素" in page and "人像比对" in page
