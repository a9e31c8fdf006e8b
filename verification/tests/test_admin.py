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
