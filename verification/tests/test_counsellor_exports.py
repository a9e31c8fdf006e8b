"""A counsellor exports the sign-off sheet and the error list of their own classes, and nothing of other classes."""

import re

import pytest
from django.urls import reverse

from verification.models import Export

from .test_exports import download, request_export, values, workbook
from .test_people import classes, counsellor, flag_of, students  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def flagged(students, campaign):  # noqa: F811
    """A flag in each class: the counsellor's two, and the class next door."""
    for who in ("classmate", "abroad", "next door"):
        flag_of(students[who], campaign)


def cells(book) -> str:
    return "\n".join(str(value) for sheet in book for row in values(sheet) for value in row if value is not None)


def test_a_counsellor_is_offered_the_class_lists_and_not_the_department_ones(client, counsellor):  # noqa: F811
    client.force_login(counsellor)
    page = client.get(reverse("exports:export_list")).content.decode()
    assert set(re.findall(r'name="kind" value="([^"]+)"', page)) == {"class-sign-off", "class-errors"}
    assert "计算机2501" in page and "英语2501" in page and "计算机2502" not in page


def test_the_counsellors_error_list_holds_their_classes_in_both_departments_only(
    client,
    counsellor,  # noqa: F811
    classes,  # noqa: F811
    flagged,
    campaign,
):
    client.force_login(counsellor)
    text = cells(workbook(download(request_export(client, "class-errors", campaign=campaign.pk))))
    assert "赵同学" in text and "孙外语" in text
    assert "钱邻班" not in text and "计算机2502" not in text

    one = cells(
        workbook(download(request_export(client, "class-errors", campaign=campaign.pk, classes=classes["abroad"].pk)))
    )
    assert "孙外语" in one and "赵同学" not in one


def test_the_counsellors_sign_off_sheet_is_their_class_and_the_class_next_door_is_404(
    client,
    counsellor,  # noqa: F811
    classes,  # noqa: F811
    flagged,
    campaign,
):
    client.force_login(counsellor)
    sheet = cells(
        workbook(
            download(request_export(client, "class-sign-off", campaign=campaign.pk, class_group=classes["mine"].pk))
        )
    )
    assert "赵同学" in sheet and "王小明" in sheet
    assert "钱邻班" not in sheet and "孙外语" not in sheet

    before = Export.objects.count()
    for kind, params in (
        ("class-sign-off", {"class_group": classes["next door"].pk}),
        ("class-errors", {"classes": classes["next door"].pk}),
    ):
        assert request_export(client, kind, campaign=campaign.pk, **params).status_code == 404, kind
    assert Export.objects.count() == before
