"""The verification models in the Django admin: a flag's values as its field shows them to staff."""

import pytest
from auditlog.models import LogEntry
from django.urls import reverse

from students import idnumbers
from students.models import User
from students.tests.factories import UserFactory
from verification import services
from verification.models import Flag

from .factories import png_bytes, upload

pytestmark = pytest.mark.django_db


def _claimed_for(recorded: str) -> str:
    body = recorded[:14] + ("11" if recorded[14:16] != "11" else "22") + recorded[16]
    return body + idnumbers.check_digit(body)


@pytest.fixture
def id_flag(me, checklist):
    return services.field_flag(
        checklist_id=checklist.pk,
        field_code="SFZH",
        claimed_value=_claimed_for(me.id_number),
        explanation="身份证号码有误",
        files=[upload("id.png", png_bytes(), "image/png")],
        record_version=me.version,
        by=me.user,
    )


def test_the_flag_admin_shows_id_numbers_masked(client, me, id_flag):
    root = UserFactory(username="root", role=User.Role.ADMIN, is_staff=True, is_superuser=True)
    client.force_login(root)

    pages = [
        client.get(reverse("admin:verification_flag_change", args=[id_flag.pk])).content.decode(),
        client.get(reverse("admin:verification_flag_changelist")).content.decode(),
        client.get(reverse("admin:auditlog_logentry_changelist")).content.decode(),
    ]

    for page in pages:
        for number in (me.id_number, id_flag.claimed_value):
            assert number not in page and number[:14] not in page
    assert idnumbers.mask(id_flag.claimed_value) in pages[0]


def test_a_flags_string_and_audit_entries_carry_no_value(me, id_flag, registrar):
    """Issue 11 item 2: auditlog stores str(flag) and the changes; neither holds the numbers."""
    services.flag_transition(flag_id=id_flag.pk, to=Flag.Status.RETURNED, by=registrar, note="请补充户口簿")

    entries = LogEntry.objects.get_for_object(id_flag)
    stored = str(id_flag) + str(list(entries.values_list("object_repr", "changes", "additional_data")))
    for number in (me.id_number, id_flag.claimed_value):
        assert number not in stored
    # What staff lists show is kept: the field, and the values masked.
    assert entries.filter(additional_data__claimed=idnumbers.mask(id_flag.claimed_value)).exists()


def test_every_verification_model_is_in_the_admin_and_the_service_records_are_read_only(
    client, me, campaign, checklist, secretary, department
):
    from django.apps import apps
    from django.contrib import admin

    from verification.models import CampaignEvent, DepartmentSignOff

    sign_off = services.department_sign_off(campaign=campaign, department=department, by=secretary)
    event = CampaignEvent.objects.get(action=CampaignEvent.Action.SIGNED_OFF)
    root = UserFactory(username="root", role=User.Role.ADMIN, is_staff=True, is_superuser=True)
    client.force_login(root)

    for model in apps.get_app_config("verification").get_models():
        assert admin.site.is_registered(model), model.__name__
        url = reverse(f"admin:verification_{model._meta.model_name}_changelist")
        assert client.get(url).status_code == 200, url

    # Sign-offs, the campaign log and checklists are viewable; a change would bypass the services that log them.
    for obj in (sign_off, event, checklist):
        name = type(obj)._meta.model_name
        assert client.get(reverse(f"admin:verification_{name}_change", args=[obj.pk])).status_code == 200
        assert client.get(reverse(f"admin:verification_{name}_add")).status_code == 403
        client.post(reverse(f"admin:verification_{name}_delete", args=[obj.pk]), {"post": "yes"})
        assert type(obj).objects.filter(pk=obj.pk).exists()
    # The campaign's name may be edited here; its calendar only on the portal's campaign page.
    closes_at = campaign.closes_at
    page = client.get(reverse("admin:verification_campaign_change", args=[campaign.pk])).content.decode()
    assert 'name="name"' in page and 'name="closes_at' not in page
    assert DepartmentSignOff.objects.get(pk=sign_off.pk).total == 1
    campaign.refresh_from_db()
    assert campaign.closes_at == closes_at
