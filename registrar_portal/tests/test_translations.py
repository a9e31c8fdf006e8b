"""The English catalogue: complete, compiled, and used once a visitor chooses English.

The portal is Chinese unless the language switch says otherwise
(registrar_portal/middleware.py).  The catalogue is read with the standard
library only: a small PO reader here, ``gettext.GNUTranslations`` for the
compiled file, which is committed because CI has no GNU gettext.
"""

import ast
import gettext
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from verification.tests.factories import CampaignFactory, student_with_account

LC_MESSAGES = Path(settings.BASE_DIR) / "locale" / "en" / "LC_MESSAGES"
PO_FILE = LC_MESSAGES / "django.po"
MO_FILE = LC_MESSAGES / "django.mo"
# CJK ideographs and CJK/full-width punctuation.
CHINESE = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%%|%[sd]")


# ----------------------------------------------------------------------------
# The catalogue
# ----------------------------------------------------------------------------


@dataclass
class Entry:
    flags: set = field(default_factory=set)
    msgctxt: str | None = None
    msgid: str = ""
    msgid_plural: str | None = None
    msgstr: dict = field(default_factory=dict)  # plural index (0 when not plural) → text


def read_po(path: Path) -> list[Entry]:
    """The entries of a PO file, header first; obsolete (``#~``) entries are skipped."""
    entries, entry, target = [], None, None
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        line = line.strip()
        if not line or line.startswith("#~"):
            if entry is not None and not line:
                entries.append(entry)
                entry = None
            continue
        if entry is None:
            entry = Entry()
        if line.startswith("#,"):
            entry.flags |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            kind, index = target
            text = ast.literal_eval(line)
            if kind == "msgstr":
                entry.msgstr[index] += text
            else:
                setattr(entry, kind, getattr(entry, kind) + text)
        else:
            keyword, _space, value = line.partition(" ")
            text = ast.literal_eval(value)
            if keyword.startswith("msgstr"):
                index = int(keyword[7:-1]) if keyword.startswith("msgstr[") else 0
                entry.msgstr[index] = text
                target = ("msgstr", index)
            else:
                setattr(entry, keyword, text)
                target = (keyword, None)
    return entries


@pytest.fixture(scope="module")
def catalogue() -> list[Entry]:
    entries = read_po(PO_FILE)
    assert entries and entries[0].msgid == "", "the catalogue starts with its header"
    return entries


def test_the_header_declares_english_utf8_and_english_plurals(catalogue):
    header = catalogue[0].msgstr[0]
    assert "Language: en\n" in header
    assert "charset=UTF-8" in header
    assert "Plural-Forms: nplurals=2; plural=(n != 1);" in header


def test_every_message_is_translated_and_none_is_fuzzy(catalogue):
    messages = catalogue[1:]
    assert len(messages) > 500  # the whole portal, not a stub
    fuzzy = [entry.msgid for entry in catalogue if "fuzzy" in entry.flags]
    untranslated = [entry.msgid for entry in messages if not all(entry.msgstr.values())]
    plural_gaps = [entry.msgid for entry in messages if entry.msgid_plural is not None and set(entry.msgstr) != {0, 1}]
    assert fuzzy == []
    assert untranslated == []
    assert plural_gaps == []


def test_translations_keep_every_placeholder(catalogue):
    changed = [
        (entry.msgid, text)
        for entry in catalogue[1:]
        for text in entry.msgstr.values()
        if sorted(PLACEHOLDER.findall(text)) != sorted(PLACEHOLDER.findall(entry.msgid))
    ]
    assert changed == []


def test_translations_are_english(catalogue):
    """No Chinese msgid was copied through; Chinese left in a msgstr is CHSI's own wording, quoted."""

    def mostly_chinese(text):
        letters = [char for char in text if not char.isspace()]
        return sum(bool(CHINESE.match(char)) for char in letters) * 2 > len(letters)

    copied = [
        entry.msgid
        for entry in catalogue[1:]
        for text in entry.msgstr.values()
        if CHINESE.search(entry.msgid) and (text in (entry.msgid, entry.msgid_plural) or mostly_chinese(text))
    ]
    assert copied == []


def test_the_compiled_catalogue_matches_the_po_file(catalogue):
    """The committed .mo was compiled from this .po: every message translates as the .po says."""
    with MO_FILE.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    assert compiled.info()["language"] == "en"
    for entry in catalogue[1:]:
        if entry.msgid_plural is not None:
            assert compiled.ngettext(entry.msgid, entry.msgid_plural, 1) == entry.msgstr[0], entry.msgid
            assert compiled.ngettext(entry.msgid, entry.msgid_plural, 2) == entry.msgstr[1], entry.msgid
        elif entry.msgctxt is not None:
            assert compiled.pgettext(entry.msgctxt, entry.msgid) == entry.msgstr[0], entry.msgid
        else:
            assert compiled.gettext(entry.msgid) == entry.msgstr[0], entry.msgid


# ----------------------------------------------------------------------------
# Pages
# ----------------------------------------------------------------------------


@pytest.fixture
def cast(department, secretary, settings):
    settings.SCHOOL_NAME = "Demo University"  # the school's name is configuration, not portal text
    student = student_with_account(department=department)
    campaign = CampaignFactory(cohorts=[student.cohort])
    return {
        "login": (None, reverse("login")),
        "checklist": (student.user, reverse("verification:checklist", args=[campaign.pk])),
        "dashboard": (secretary, reverse("workspace:dashboard")),
        "help": (student.user, reverse("notices:help_index")),
    }


def page(client, user, url, *, language=None) -> str:
    if language:
        response = client.post(reverse("set_language"), {"language": language, "next": url})
        assert response.status_code == 302
    if user:
        client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def navigation(html: str) -> tuple[str, str]:
    """The navigation's text without the language switch, and the switch's button."""
    nav = re.search(r"<nav>(.*?)</nav>", html, re.S)[1]
    switch = re.search(r'<form[^>]*class="inline lang".*?</form>', nav, re.S)[0]
    button = re.search(r'<button[^>]*name="language"[^>]*>(.*?)</button>', switch)[1]
    return re.sub(r"<[^>]+>", " ", nav.replace(switch, "")), button


ENGLISH = {
    "login": ["Sign in", "Student ID or staff ID", "Password", "Students signing in for the first time"],
    "checklist": [">Correct</button>", ">Wrong</a>", "Confirm all correct", "My checks", "Deadline:"],
    "dashboard": ["Department dashboard", "Completion rate", "Progress by class", "Export list of students not done"],
    "help": ["FAQ", "Search questions", "CHSI help desk"],
}
CHINESE_TEXT = {
    "login": ["登录", "学号或工号", "密码", "学生首次登录（激活账号）"],
    "checklist": [">正确</button>", ">有误</a>", "确认全部正确", "我的核对", "截止时间："],
    "dashboard": ["院系工作台", "完成率", "各班进度", "导出未完成核对名单"],
    "help": ["常见问题", "搜索问题", "学信网客服"],
}
TITLES = {
    "login": "Sign in",
    "dashboard": "Department dashboard",
    "help": "FAQ",
}  # the checklist's is the campaign's name
# Staff links sit in menus named by task (registrar_portal/navigation.py); students have 我的核对 first.
NAVIGATION = {
    "login": [],
    "checklist": ["My checks", "Notices", "Messages", "Help", "Sign out"],
    "dashboard": [
        "Progress",
        "Departments",
        "Review and corrections",
        "Review",
        "Students and rosters",
        "Students",
        "Exports",
        "Notices and reminders",
        "Notices",
        "Daily reports",
        "System",
        "Sign out",
    ],
    "help": ["My checks", "Notices", "Help", "Sign out"],
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["login", "checklist", "dashboard", "help"])
def test_pages_are_english_after_choosing_english(client, cast, name):
    user, url = cast[name]

    html = page(client, user, url, language="en")

    assert '<html lang="en">' in html
    for text in ENGLISH[name]:
        assert text in html
    for text in CHINESE_TEXT[name]:
        assert text not in html
    nav, switch = navigation(html)
    assert not CHINESE.search(nav), nav
    for link in NAVIGATION[name]:
        assert link in nav
    assert switch == "中文"  # the way back, named in its own language
    if name in TITLES:
        assert f"<title>{TITLES[name]} · Demo University</title>" in html


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["login", "checklist", "dashboard", "help"])
def test_pages_are_chinese_without_a_choice(client, cast, name):
    user, url = cast[name]

    html = page(client, user, url)

    assert '<html lang="zh-hans">' in html
    for text in CHINESE_TEXT[name]:
        assert text in html
    for text in ENGLISH[name]:
        assert text not in html
    nav, switch = navigation(html)
    assert switch == "English"
    assert ("退出" in nav) == (user is not None)


@pytest.mark.django_db
def test_choosing_chinese_again_switches_back(client, cast):
    user, url = cast["checklist"]
    page(client, user, url, language="en")

    html = page(client, user, url, language="zh-hans")

    assert ">正确</button>" in html and ">Correct</button>" not in html
