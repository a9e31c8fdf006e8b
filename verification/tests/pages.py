"""Reading and driving the student's pages the way a browser does."""

import re

from django.urls import reverse

from students.models import Student


def html(response) -> str:
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def checklist_url(campaign) -> str:
    return reverse("verification:checklist", args=[campaign.pk])


def flag_url(campaign, code) -> str:
    return reverse("verification:field_flag", args=[campaign.pk, code])


def version_of(student) -> int:
    return Student.objects.values_list("version", flat=True).get(pk=student.pk)


def confirm(client, campaign, code, *, version, follow=True):
    return client.post(
        reverse("verification:field_confirm", args=[campaign.pk, code]), {"record_version": version}, follow=follow
    )


def flag(client, campaign, code, claimed, *, version, explanation="", files=(), follow=True):
    data = {"record_version": version, "claimed_value": claimed, "explanation": explanation}
    if files:
        data["evidence"] = list(files)
    return client.post(flag_url(campaign, code), data, follow=follow)


def confirm_all(client, campaign, *, version, attest=True, follow=True):
    data = {"record_version": version}
    if attest:
        data["attest"] = "on"
    return client.post(reverse("verification:confirm_all", args=[campaign.pk]), data, follow=follow)


def row(page: str, code: str) -> str:
    """The checklist row of one field, as HTML."""
    match = re.search(rf'<li id="field-{code}".*?</li>\s*(?=<li id="field-|</ol>)', page, re.S)
    assert match, f"no row for {code}"
    return match.group()


def text(fragment: str) -> str:
    """Visible text with tags removed and whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)).strip()
