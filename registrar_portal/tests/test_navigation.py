"""The header navigation: grouped by task for staff, the role's subset only, the current page marked."""

import re

import pytest
from django.urls import reverse

from students.tests.factories import UserFactory
from verification.tests.factories import CampaignFactory, student_with_account

pytestmark = pytest.mark.django_db

GROUPS = ["进度", "审核与更正", "学生与名单", "通知与提醒", "系统"]


def nav_of(response) -> str:
    assert response.status_code == 200
    return re.search(r"<nav>(.*?)</nav>", response.content.decode(), re.S)[1]


def groups_of(nav: str) -> dict[str, list[str]]:
    """Menu name → the link texts inside it."""
    return {
        re.sub(r"<[^>]+>", "", summary).strip(): re.findall(r">([^<>]+)</a>", body)
        for summary, body in re.findall(r"<summary[^>]*>(.*?)</summary>(.*?)</details>", nav, re.S)
    }


def test_registrar_staff_see_their_links_in_five_menus_by_task(client, registrar):
    client.force_login(registrar)

    groups = groups_of(nav_of(client.get(reverse("workspace:school"))))

    assert list(groups) == GROUPS
    assert groups["进度"] == ["全校", "院系", "核对活动"]
    assert groups["审核与更正"] == ["审核", "更正", "数据问题", "学生求助"]
    assert groups["学生与名单"] == ["学生", "导入名单", "名单对照", "导出"]
    assert groups["通知与提醒"] == ["通知", "日报", "群机器人", "提醒渠道"]
    assert groups["系统"] == ["访问日志", "接口客户端", "Webhook", "两步验证"]  # no admin link: not a superuser


def test_a_secretary_sees_only_the_links_that_apply(client, secretary):
    client.force_login(secretary)

    groups = groups_of(nav_of(client.get(reverse("workspace:dashboard"))))

    assert groups == {
        "进度": ["院系"],
        "审核与更正": ["审核", "学生求助"],
        "学生与名单": ["学生", "导出"],
        "通知与提醒": ["通知", "日报"],
        "系统": ["两步验证"],
    }


def test_a_counsellor_finds_my_classes_in_the_menu_and_the_crumbs_of_a_class(client, department):
    from students.models import User
    from students.tests.factories import ClassGroupFactory

    class_group = ClassGroupFactory(department=department, name="计算机2501")
    counsellor = UserFactory(role=User.Role.COUNSELLOR, username="counsellor1")
    counsellor.classes.set([class_group])
    client.force_login(counsellor)

    response = client.get(reverse("workspace:class_detail", args=[class_group.pk]))

    groups = groups_of(nav_of(response))
    assert groups["进度"] == ["我的班级"]
    assert re.findall(r'<summary aria-current="true">(.*?)</summary>', nav_of(response)) == ["进度"]
    crumbs = re.search(r'<p class="crumbs">(.*?)</p>', response.content.decode(), re.S)[1]
    assert "我的班级" in crumbs and "院系工作台" not in crumbs
    assert "院系" not in "".join(re.findall(r">([^<>]+)</a>", nav_of(response)))


def test_a_student_has_my_checks_and_no_staff_menus(client, department):
    student = student_with_account(department=department)
    campaign = CampaignFactory(cohorts=[student.cohort])
    client.force_login(student.user)

    nav = nav_of(client.get(reverse("verification:checklist", args=[campaign.pk])))

    assert "<details" not in nav
    assert f'<a href="{reverse("verification:my_checks")}" aria-current="page">我的核对</a>' in nav
    for text in ["通知", "消息", "帮助", "退出"]:
        assert text in nav


@pytest.mark.parametrize(
    "url_name, group, link",
    [
        ("workspace:correction_queue", "审核与更正", "更正"),
        ("students:roster_upload", "学生与名单", "导入名单"),
        ("students:access_log", "系统", "访问日志"),
        ("verification:campaign_create", "进度", None),  # a page under a menu link marks its menu
    ],
)
def test_the_current_page_and_its_menu_are_marked(client, registrar, url_name, group, link):
    client.force_login(registrar)

    nav = nav_of(client.get(reverse(url_name)))

    assert re.findall(r'<summary aria-current="true">(.*?)</summary>', nav) == [group]
    current = re.findall(r'aria-current="page">([^<]+)</a>', nav)
    assert current == ([link] if link else [])


def test_superusers_find_the_admin_under_system(client, registrar):
    superuser = UserFactory(username="root", is_superuser=True, is_staff=True, role="registrar")
    client.force_login(superuser)

    groups = groups_of(nav_of(client.get(reverse("workspace:school"))))

    assert groups["系统"][-1] == "管理后台"
    assert f'href="{reverse("admin:index")}"' in nav_of(client.get(reverse("workspace:school")))


def test_a_class_monitor_sees_class_progress_and_the_unread_badge_from_one_query(
    client, department, django_assert_num_queries
):
    from notices.models import Message

    student = student_with_account(department=department)
    student.class_group.monitors.add(student.user)
    Message.objects.create(user=student.user, text="更正已受理")
    client.force_login(student.user)
    client.get(reverse("notices:help_index"))

    with django_assert_num_queries(4):  # session, user, the help page's articles, the 班长 check with the count
        nav = nav_of(client.get(reverse("notices:help_index")))

    assert f'<a href="{reverse("verification:class_progress")}">班级进度</a>' in nav
    assert re.search(r'class="badge"[^>]*>1<', nav)
