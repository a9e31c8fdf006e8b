"""正确 and 有误 answer a field in place (htmx): the server returns the row, and without JavaScript the page still works."""

import gzip
import re

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.urls import reverse

from students.models import Student
from verification.models import Checklist, FieldCheck

from .pages import checklist_url, confirm, flag_url, html, row, text, version_of

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def the_row(fragment: str) -> str:
    """The row an in-place answer returns (first in the response, before the out-of-band parts)."""
    return fragment[: fragment.index("</li>")]


def confirm_url(campaign, code):
    return reverse("verification:field_confirm", args=[campaign.pk, code])


def test_the_checklist_loads_htmx_and_every_form_still_posts_without_it(me_client, campaign):
    page = html(me_client.get(checklist_url(campaign)))

    assert 'src="/static/django_htmx/htmx-2.min.js"' in page
    assert finders.find("django_htmx/htmx-2.min.js"), "the script is served from the portal's own static files"
    gender = row(page, "XB")
    # The same form with and without JavaScript: a plain POST to the same address.
    assert f'action="{confirm_url(campaign, "XB")}"' in gender
    assert f'hx-post="{confirm_url(campaign, "XB")}"' in gender
    assert f'href="{flag_url(campaign, "XB")}"' in gender and f'hx-get="{flag_url(campaign, "XB")}"' in gender


def test_the_first_load_on_a_phone_is_under_60_kb(me_client, campaign):
    """The page, its stylesheet, icon and htmx: what a phone downloads to start checking (static files as
    whitenoise serves them to a browser that accepts gzip; the page itself counted uncompressed)."""
    page = me_client.get(checklist_url(campaign)).content
    assets = re.findall(rb'<(?:link|script)[^>]+(?:href|src)="' + settings.STATIC_URL.encode() + rb'([^"]+)"', page)
    assert {b"css/portal.css", b"django_htmx/htmx-2.min.js", b"favicon.svg"} <= set(assets)

    sizes = {path.decode(): len(gzip.compress(open(finders.find(path.decode()), "rb").read(), 9)) for path in assets}
    total = len(page) + sum(sizes.values())
    assert total < 60 * 1024, f"page {len(page)} bytes + {sizes} = {total} bytes"


def test_tapping_correct_returns_only_the_row_answered(me_client, me, campaign, checklist):
    page = html(me_client.get(checklist_url(campaign)))
    response = me_client.post(confirm_url(campaign, "XB"), {"record_version": version_of(me)}, **HTMX)

    assert response.status_code == 200
    fragment = html(response)
    assert "<html" not in fragment and "<body" not in fragment
    # What a phone downloads per tap: a fraction of the page it would otherwise reload.
    assert len(fragment.encode()) * 4 < len(page.encode())
    assert fragment.lstrip().startswith('<li id="field-XB"')
    assert 'class="check-row answered-confirmed"' in fragment
    assert '<span class="answer-badge">正确</span>' in the_row(fragment)
    # The state badge above changes with it (out of band): the check has started.
    assert 'id="checklist-state" hx-swap-oob="true">核对中<' in fragment
    assert FieldCheck.objects.get(checklist=checklist, field_code="XB").status == FieldCheck.Status.CONFIRMED
    assert Checklist.objects.get(pk=checklist.pk).state == Checklist.State.IN_PROGRESS


def test_without_javascript_correct_posts_and_the_page_reloads_at_the_field(me_client, me, campaign, checklist):
    response = confirm(me_client, campaign, "XB", version=me.version, follow=False)

    assert response.status_code == 302
    assert response["Location"] == checklist_url(campaign) + "#field-XB"
    page = html(me_client.get(response["Location"]))
    assert 'class="check-row answered-confirmed"' in row(page, "XB")
    assert FieldCheck.objects.get(checklist=checklist, field_code="XB").status == FieldCheck.Status.CONFIRMED


def test_an_out_of_date_answer_in_place_says_so_in_the_row(me_client, me, campaign, checklist):
    stale = version_of(me)
    Student.objects.filter(pk=me.pk).update(version=stale + 1)  # a re-import changed the record meanwhile

    response = me_client.post(confirm_url(campaign, "XB"), {"record_version": stale}, **HTMX)

    assert response.status_code == 200
    assert "你的学籍信息在你打开页面后已更新" in text(the_row(html(response)))
    assert not FieldCheck.objects.filter(checklist=checklist, field_code="XB").exists()


def test_an_expired_form_in_place_reloads_the_whole_page(me_client, campaign):
    response = me_client.post(confirm_url(campaign, "XB"), {}, **HTMX)

    assert response.status_code == 200
    assert response["HX-Redirect"] == checklist_url(campaign)


def test_tapping_wrong_opens_the_form_inside_the_row(me_client, campaign):
    fragment = html(me_client.get(flag_url(campaign, "BH"), **HTMX))

    assert "<html" not in fragment
    assert f'action="{flag_url(campaign, "BH")}"' in fragment and 'enctype="multipart/form-data"' in fragment
    assert 'name="claimed_value"' in fragment
    # Without JavaScript the same link opens the form as a page of its own.
    page = html(me_client.get(flag_url(campaign, "BH")))
    assert "<html" in page and f'action="{flag_url(campaign, "BH")}"' in page
