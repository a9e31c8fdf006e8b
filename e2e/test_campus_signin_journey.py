"""A reminder on WeCom, opened in the WeCom app, signs the student in through WeCom OAuth to their checklist.

The school's WeCom app is configured as on the 提醒渠道 page and points at a local fake of WeCom
(notices/tests/fake_providers.py): the reminder is a textcard the fake checks and records; the
student's in-app browser follows its link, is sent to WeCom's OAuth page (routed to the fake, which
answers as WeCom does for ``snsapi_base``: straight back with a code), and the portal turns the code
into the student's userid (their 学号) through the fake's API, signs them in and opens the checklist.
"""

import uuid
from urllib.parse import urlsplit

import pytest
from django.core.cache import cache

from notices import reminders
from notices.models import ChannelConfig, Delivery
from notices.tests.fake_providers import WECOM, Fake
from students.tests.factories import CohortFactory, StudentFactory
from verification.tests.factories import CampaignFactory

from .browser import PHONE, Person

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("browser")]

# WeCom's in-app browser on Android names itself "wxwork/…" in its user agent.
WECOM_BROWSER = (
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 "
    "Chrome/107.0.5304.141 Mobile Safari/537.36 wxwork/4.1.16 MicroMessenger/7.0.1 NetType/WIFI Language/zh"
)


def to_fake(route, fake):
    """Let the portal answer, then point its redirect to WeCom's OAuth page at the fake's same path."""
    response = route.fetch(max_redirects=0)
    target = urlsplit(response.headers["location"])
    assert (target.scheme, target.hostname) == ("https", "open.weixin.qq.com"), target
    location = f"{fake.url}{target.path}?{target.query}"
    route.fulfill(response=response, headers={**response.headers, "location": location})


@pytest.fixture
def wecom():
    cache.clear()  # the access token is cached per corp
    with Fake() as fake:
        yield fake
    cache.clear()


def test_a_student_follows_a_wecom_reminder_through_wecom_sign_in_to_their_checklist(
    chromium, live_server, transactional_db, wecom, settings, shots_dir
):
    settings.PORTAL_URL = live_server.url  # links and the OAuth callback are built from it
    ChannelConfig.objects.create(
        name="wecom",
        enabled=True,
        position=1,
        options={"corp_id": WECOM["corp"], "agent_id": WECOM["agent"], "api": wecom.url},
        secret=WECOM["secret"],
    )
    student = StudentFactory(name="林晓雨", student_number="2025990101", email="", cohort=CohortFactory())
    campaign = CampaignFactory(name="2025级新生学籍核对", cohorts=[student.cohort])

    stage = reminders.remind_now(campaign=campaign, student_ids=[student.pk], by=None, request_key=uuid.uuid4().hex)

    assert list(Delivery.objects.filter(stage=stage).values_list("channel", "status")) == [("wecom", "sent")]
    (card,) = [r["body"] for r in wecom.of("wecom") if r.get("ok")]
    assert card["touser"] == "2025990101"
    link = card["textcard"]["url"]
    assert link == f"{live_server.url}/check/{campaign.pk}/"

    # The student is signed in to WeCom as 2025990101 and taps the card in the app.
    wecom.wecom_member = "2025990101"
    person = Person(
        chromium, live_server.url, viewport=PHONE, mobile=True, name="student", user_agent=WECOM_BROWSER,
        shots_dir=shots_dir,
    )  # fmt: skip
    # WeCom's OAuth page is the fake's: where the portal sends the browser to open.weixin.qq.com, it goes to
    # the fake instead (as a DNS entry would; Playwright does not route the target of a redirect itself).
    person.context.route(lambda url: urlsplit(url).path == "/notices/signin/wecom/", lambda r: to_fake(r, wecom))
    try:
        person.open(link)
        assert urlsplit(person.page.url).path == "/accounts/login/"  # signed out: the sign-in page first
        person.audit("sign-in from a reminder")

        person.submit(person.page.get_by_role("link", name="企业微信登录"))

        assert urlsplit(person.page.url).path == f"/check/{campaign.pk}/"
        person.audit("checklist after WeCom sign-in")
        assert "林晓雨" in person.page.locator("main").inner_text()
        (authorize,) = [r["query"] for r in wecom.of("wecom") if r.get("path") == "authorize"]
        assert authorize["redirect_uri"] == f"{live_server.url}/notices/signin/wecom/callback/"
        assert [r["code"] for r in wecom.of("wecom") if r.get("path") == "getuserinfo"] == ["user:2025990101"]
    finally:
        person.close()
