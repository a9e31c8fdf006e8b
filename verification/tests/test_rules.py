"""The school notices' rules on the checklist (docs/domain.md §10): 考生号 for information, 政治面貌 hidden, 专业 brackets, hints."""

import pytest
from django.urls import reverse

from students.models import ImportFinding
from verification.models import FieldCheck, Flag

from .pages import checklist_url, confirm, flag, flag_url, html, row, text

pytestmark = pytest.mark.django_db


def test_exam_number_is_shown_for_information_and_cannot_be_checked(me_client, me, campaign, checklist):
    page = html(me_client.get(checklist_url(campaign)))

    assert 'id="field-KSH"' not in page
    info = page[page.index("仅供参考，无需核对") :]
    assert "考生号" in info and "25110105150123" in info
    assert "与入学考试准考证号不同属正常情况，无需核对" in info
    assert reverse("verification:field_confirm", args=[campaign.pk, "KSH"]) not in page

    assert confirm(me_client, campaign, "KSH", version=me.version).status_code == 404
    assert me_client.get(flag_url(campaign, "KSH")).status_code == 404
    assert flag(me_client, campaign, "KSH", "25110105150999", version=me.version).status_code == 404
    assert not FieldCheck.objects.exists() and not Flag.objects.exists()


def test_political_status_is_not_shown_and_cannot_be_answered(me_client, me, campaign):
    page = html(me_client.get(checklist_url(campaign)))

    assert "政治面貌" not in page and "中共预备党员" not in page
    assert confirm(me_client, campaign, "ZZMM", version=me.version).status_code == 404
    assert flag(me_client, campaign, "ZZMM", "群众", version=me.version).status_code == 404
    assert not FieldCheck.objects.exists() and not Flag.objects.exists()


def test_the_bracketed_part_of_a_major_name_is_not_compared(me_client, me, campaign):
    me.major_name = "计算机科学与技术（软件方向）"
    me.save(update_fields=["major_name"])
    page = html(me_client.get(checklist_url(campaign)))
    assert "本科-示范大学-计算机科学与技术（软件方向）" in page
    assert "专业名称括号内的内容无需核对" in row(page, "ZYMC")

    refused = flag(me_client, campaign, "ZYMC", "计算机科学与技术", version=me.version)

    assert refused.status_code == 200
    assert "填写的正确值与学信网记录相同" in html(refused)
    assert not Flag.objects.exists()

    accepted = flag(me_client, campaign, "ZYMC", "软件工程", version=me.version)
    assert "软件工程" in text(row(html(accepted), "ZYMC"))
    assert Flag.objects.get().claimed_value == "软件工程"


def test_import_findings_appear_as_hints_next_to_their_field(me_client, me, campaign):
    message = "证件号码中的出生日期为 2007-03-14，记录为 2007-03-15"
    ImportFinding.objects.create(student=me, field_code="CSRQ", kind="birth_date_mismatch", message=message)

    page = html(me_client.get(checklist_url(campaign)))

    assert message in row(page, "CSRQ")
    assert message not in row(page, "XM") and message not in row(page, "SFZH")
    assert message in html(me_client.get(flag_url(campaign, "CSRQ")))


def test_choice_fields_offer_the_list_and_refuse_anything_else(me_client, me, campaign):
    form_page = html(me_client.get(flag_url(campaign, "XB")))
    assert '<option value="女">' in form_page

    refused = flag(me_client, campaign, "XXXS", "半日制", version=me.version)

    assert refused.status_code == 200 and "errorlist" in html(refused)
    assert not Flag.objects.exists()


def test_the_one_open_flag_constraint_covers_exactly_the_open_statuses():
    (constraint,) = [c for c in Flag._meta.constraints if c.name == "flag_one_open_per_field"]
    (lookup, statuses) = constraint.condition.children[0]
    assert lookup == "status__in" and set(statuses) == set(Flag.OPEN)
