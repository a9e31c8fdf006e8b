"""The graduate campaign (毕业生学历信息核对): its fields, its photos and its April close.

A campaign kind decides what is checked and when (verification.campaign_kinds);
this follows one graduate campaign from the registrar's form in the spring to
the close at the end of April, with the clock moved by time-machine.
"""

import datetime
import re
import zoneinfo

import pytest
import time_machine
from django.urls import reverse

from students.models import ClassGroup
from students.tests.factories import CohortFactory
from verification import services
from verification.campaign_kinds import CAMPAIGN_KINDS, GRADUATING, NEW_STUDENTS
from verification.models import Campaign, Checklist
from verification.tests.factories import student_with_account
from verification.tests.pages import html
from verification.tests.test_photos import give_photo

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
FEBRUARY = datetime.datetime(2029, 2, 20, 10, 0, tzinfo=SHANGHAI)
MARCH = datetime.datetime(2029, 3, 5, 10, 0, tzinfo=SHANGHAI)
MAY = datetime.datetime(2029, 5, 1, 9, 0, tzinfo=SHANGHAI)


def codes_on(page: str) -> list[str]:
    return re.findall(r'<li id="field-([A-Z]+)"', page)


def test_every_kind_of_campaign_is_in_the_table():
    assert set(CAMPAIGN_KINDS) == set(Campaign.Kind.values)
    assert "XLZP" in GRADUATING.field_codes and "XLZP" not in NEW_STUDENTS.field_codes
    assert GRADUATING.closes[0] == 4  # April: the last chance before the diploma registration


def test_a_graduate_campaign_from_opening_to_the_april_close(tmp_path, client, department, registrar, secretary):
    cohort = CohortFactory(admission_year=2025, level="本科")
    class_group = ClassGroup.objects.create(department=department, name="计科2101")
    graduate = student_with_account(
        department=department, cohort=cohort, class_group=class_group, class_name="计科2101"
    )
    not_photographed = student_with_account(
        department=department, cohort=cohort, class_group=class_group, class_name="计科2101"
    )
    give_photo(tmp_path, graduate)
    give_photo(tmp_path, graduate, kind="graduation", size=(480, 640))
    give_photo(tmp_path, not_photographed)

    # February: the registrar's form for a graduate campaign proposes its fields and the April deadline.
    with time_machine.travel(FEBRUARY, tick=False):
        client.force_login(registrar)
        form = client.get(reverse("verification:campaign_create") + "?kind=graduating").context["form"]
        initial = {name: form[name].value() for name in ("kind", "field_codes", "opens_at", "closes_at")}
        assert initial["kind"] == "graduating"
        assert {"XLZP", "LQZP", "YJBYRQ", "XM", "SFZH"} <= set(initial["field_codes"])
        assert "BH" not in initial["field_codes"]  # the class is not on the diploma registration
        closes = initial["closes_at"]  # as the form shows it, in the school's time zone
        assert (closes.year, closes.month, closes.day) == (2029, 4, 30)
        response = client.post(
            reverse("verification:campaign_create"),
            {
                "name": "2029届毕业生学历信息核对",
                "kind": initial["kind"],
                "cohorts": [cohort.pk],
                "opens_at": "2029-03-01T08:00",
                "closes_at": closes.strftime("%Y-%m-%dT%H:%M"),
                "instructions": "",
                "field_codes": initial["field_codes"],
            },
        )
        assert response.status_code == 302, response.context["form"].errors
        campaign = Campaign.objects.get(name="2029届毕业生学历信息核对")
        assert campaign.kind == Campaign.Kind.GRADUATING

    # March: the graduate sees both photos and the graduation fields, checks the photo and finishes.
    with time_machine.travel(MARCH, tick=False):
        client.force_login(graduate.user)
        page = html(client.get(reverse("verification:checklist", args=[campaign.pk])))
        codes = codes_on(page)
        assert codes[:2] == ["LQZP", "XLZP"]
        assert "YJBYRQ" in codes and "RXRQ" in codes and "BH" not in codes
        assert reverse("students:photo", args=[graduate.pk, "graduation"]) in page
        checklist = Checklist.objects.get(campaign=campaign, student=graduate)
        services.field_confirm(
            checklist_id=checklist.pk, field_code="XLZP", record_version=graduate.version, by=graduate.user
        )
        services.checklist_confirm_rest(checklist_id=checklist.pk, record_version=graduate.version, by=graduate.user)
        assert Checklist.objects.get(pk=checklist.pk).state == Checklist.State.CONFIRMED

        # The student still without a 学历照片 is told when it will be taken, and listed for the department.
        client.force_login(not_photographed.user)
        page = html(client.get(reverse("verification:checklist", args=[campaign.pk])))
        assert "XLZP" not in codes_on(page) and "图像采集" in page
        article = reverse("notices:help_article", args=["image-collection-code"])
        assert article in page  # how to get the 采集码
        client.force_login(secretary)
        dashboard = html(client.get(reverse("workspace:dashboard") + f"?campaign={campaign.pk}"))
        assert reverse("workspace:missing_photos") in dashboard
        listing = html(client.get(reverse("workspace:missing_photos") + f"?campaign={campaign.pk}"))
        assert not_photographed.student_number in listing and "计科2101" in listing
        assert graduate.student_number not in listing
        assert "采集码" in listing and article in listing  # an article departments can send on

    # May: the campaign has closed; the record goes to the diploma registration and cannot change.
    with time_machine.travel(MAY, tick=False):
        services.campaigns_close_due()
        client.force_login(graduate.user)
        page = html(client.get(reverse("verification:checklist", args=[campaign.pk])))
        assert "不能再修改" in page and "4月是最后的更正机会" in page
        assert reverse("verification:field_confirm", args=[campaign.pk, "XLZP"]) not in page
        with pytest.raises(services.VerificationError):
            services.field_confirm(
                checklist_id=checklist.pk, field_code="XLZP", record_version=graduate.version, by=graduate.user
            )
        assert Checklist.objects.get(campaign=campaign, student=not_photographed).state == Checklist.State.OVERDUE
