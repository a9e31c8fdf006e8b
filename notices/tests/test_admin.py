"""The notices models in the Django admin: all there, the admin named as the portal, credentials masked."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from notices.models import DepartmentChannel, Digest, DigestDelivery
from students.models import User
from students.tests.factories import UserFactory
from verification.tests.factories import CampaignFactory

from .cast import html

pytestmark = pytest.mark.django_db

TOKEN = "d2f5c0ffee1234567890abcdef"
SECRET = "SEC0123456789abcdef0123456789abcdef"


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", role=User.Role.ADMIN, is_staff=True, is_superuser=True)


def test_the_admin_is_named_as_the_portal_not_django(client, superuser):
    client.force_login(superuser)

    page = html(client.get(reverse("admin:index")))

    assert "学籍核对 · 管理后台" in page and "数据管理" in page
    assert "Django 管理" not in page and "Django administration" not in page


def test_every_notices_model_is_in_the_admin(client, superuser, department):
    campaign = CampaignFactory()
    digest = Digest.objects.create(department=department, campaign=campaign, day=timezone.localdate())
    DigestDelivery.objects.create(digest=digest, channel=DigestDelivery.Channel.EMAIL, recipient="mishu@example.edu")
    models = [model for model in apps.get_app_config("notices").get_models()]
    assert len(models) >= 9
    client.force_login(superuser)

    for model in models:
        assert admin.site.is_registered(model), model.__name__
        url = reverse(f"admin:notices_{model._meta.model_name}_changelist")
        assert client.get(url).status_code == 200, url
    assert client.get(reverse("admin:notices_digest_change", args=[digest.pk])).status_code == 200


def test_a_group_robots_credentials_are_masked_in_the_admin(client, superuser, department):
    channel = DepartmentChannel.objects.create(
        department=department,
        robot=DepartmentChannel.Robot.DINGTALK,
        webhook_url=f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}",
        signing_secret=SECRET,
    )
    client.force_login(superuser)

    pages = [
        html(client.get(reverse("admin:notices_departmentchannel_changelist"))),
        html(client.get(reverse("admin:notices_departmentchannel_change", args=[channel.pk]))),
    ]

    for page in pages:
        assert TOKEN not in page and SECRET not in page
        assert "oapi.dingtalk.com" in page
    assert 'name="webhook_url"' not in pages[1]  # shown, not edited, here
