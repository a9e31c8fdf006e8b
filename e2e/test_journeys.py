"""One flag's whole life in a real browser, from a student's phone to CHSI and back.

A class of four is imported from a real roster file; one student's 出生日期 on
CHSI is a day off their ID number.  She claims her account on a phone, confirms
everything else and flags the date with a photo; the department secretary sees
the class count move, returns the flag, gets it back amended and forwards it;
registrar staff download the CHSI correction list, mark the flag corrected on
CHSI and import the corrected roster through the upload page; the student
confirms the reopened field.  Every page on the way is audited (``Person.audit``).
"""

import datetime
import io
from pathlib import Path

import openpyxl
import pytest
from django.conf import settings
from django.utils import translation

from students import fields as roll_fields
from students.models import Cohort, Department, Student
from students.services import roster_import
from students.tests.factories import SecretaryFactory, UserFactory
from students.tests.rosters import as_table, base_rows, write_xlsx
from verification.models import Checklist, FieldCheck, Flag
from verification.tests.factories import PASSWORD, CampaignFactory, png_bytes

from .browser import PHONE, Person

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("browser")]

S = Flag.Status
STUDENT_PASSWORD = "Lanmei-roll-2025"
COUNT_COLUMNS = ["total", "confirmed", "flagged", "in_progress", "not_started", "overdue", "completion"]


# ---------------------------------------------------------------------------
# The school
# ---------------------------------------------------------------------------


def roster(tmp_path: Path, rows: list[dict], name: str) -> Path:
    header, data = as_table(rows)
    return write_xlsx(tmp_path / name, header, data)


@pytest.fixture
def school(transactional_db, tmp_path):
    """Four students of one class from a roster import, a campaign, a secretary and registrar staff."""
    rows = base_rows(4)
    for row in rows[1:]:  # one class, so its counts show every step
        row.update(ZYDM=rows[0]["ZYDM"], ZYMC=rows[0]["ZYMC"], BH=rows[0]["BH"])
    id_birth = datetime.datetime.strptime(rows[0]["SFZH"][6:14], "%Y%m%d").date()
    rows[0]["CSRQ"] = (id_birth + datetime.timedelta(days=1)).strftime("%Y%m%d")  # keyed in a day off
    report = roster_import(path=roster(tmp_path, rows, "first.xlsx"), file_name="2025级新生.xlsx")
    assert not report.errors, report.errors
    department = Department.objects.get(name=rows[0]["XSH"])
    registrar = UserFactory(username="xjk01", role="registrar", first_name="学籍科")
    campaign = CampaignFactory(
        name="2025级新生学籍核对", cohorts=[Cohort.objects.get(admission_year=2025, level="本科")], by=registrar
    )
    return {
        "rows": rows,
        "id_birth": id_birth,
        "student": Student.objects.get(student_number=rows[0]["XH"]),
        "department": department,
        "secretary": SecretaryFactory(username="jsj-mishu", departments=[department]),
        "registrar": registrar,
        "campaign": campaign,
    }


# ---------------------------------------------------------------------------
# Reading pages and files
# ---------------------------------------------------------------------------


def class_counts(person: Person, class_name: str) -> dict[str, str]:
    """The dashboard row of one class: 人数, 已确认, 已报错, 核对中, 未开始, 逾期, 完成率."""
    row = person.page.locator("tr", has=person.page.get_by_role("link", name=class_name, exact=True))
    cells = [text.strip() for text in row.locator("td").all_inner_texts()]
    return dict(zip(COUNT_COLUMNS, cells[2:], strict=True))


def download(person: Person, button) -> openpyxl.Workbook:
    with person.page.expect_download() as info:
        button.click()
    path = info.value.path()
    assert info.value.suggested_filename.endswith(".xlsx")
    return openpyxl.load_workbook(io.BytesIO(Path(path).read_bytes()))


def table(sheet, first_heading: str) -> list[tuple]:
    """The data rows (as cells) below the header row that starts with ``first_heading``, up to the first blank row.

    Exports carry a title and who exported it above the header, and a sheet that is
    signed has a signature line under the table, after a blank row.
    """
    rows = list(sheet.iter_rows())
    start = next(i for i, row in enumerate(rows) if row[0].value == first_heading)
    table = []
    for row in rows[start + 1 :]:
        if all(cell.value is None for cell in row):
            break
        table.append(row)
    return table


def bulk_act(person: Person, flag: Flag, action: str, note: str = ""):
    """Tick one flag in a review or correction queue and apply an action to it."""
    page = person.page
    page.locator(f"input[name=flags][value='{flag.pk}']").check()
    page.select_option("#action", action)
    if note:
        page.fill("#note", note)
    person.submit(page.locator("#bulk button[type=submit]"))
    errors = page.locator(".messages li.error").all_inner_texts()
    assert not errors, errors


def status_of(flag: Flag) -> str:
    flag.refresh_from_db()
    return flag.status


# ---------------------------------------------------------------------------
# The journey
# ---------------------------------------------------------------------------


def answer_in_place(person: Person, code: str):
    """Tap 正确: the row answers in place (htmx), without a page load."""
    url = person.page.url
    person.page.locator(f"#field-{code} button.ok").click()
    person.page.locator(f"#field-{code}.answered-confirmed").wait_for()
    assert person.page.url == url


def open_flag_form(person: Person, code: str):
    """Tap 有误: the form opens inside the field's row (htmx); it posts as a page."""
    person.page.locator(f"#field-{code} a.button.bad").click()
    form = person.page.locator(f"#flag-slot-{code} form")
    form.wait_for()
    return form


def test_a_wrong_birth_date_goes_from_a_phone_to_chsi_and_back(chromium, live_server, school, tmp_path, shots_dir):
    rows, me = school["rows"], school["student"]
    campaign = school["campaign"]
    class_name = me.class_name
    claimed = school["id_birth"].isoformat()
    student = Person(chromium, live_server.url, viewport=PHONE, mobile=True, name="student", shots_dir=shots_dir)
    secretary = Person(chromium, live_server.url, name="secretary", shots_dir=shots_dir)
    registrar = Person(chromium, live_server.url, name="registrar", shots_dir=shots_dir)
    try:
        # The secretary's dashboard before anyone has started.
        secretary.sign_in(school["secretary"].username, PASSWORD)
        assert "/workspace/" in secretary.page.url
        secretary.audit("dashboard")
        before = class_counts(secretary, class_name)
        assert before["total"] == "4" and before["not_started"] == "4" and before["flagged"] == "0"

        # --- The student claims her account on a phone ----------------------
        page = student.page
        student.open("/accounts/login/")
        student.audit("login")
        student.submit(page.locator("a[href='/accounts/claim/']"))
        student.audit("claim")
        page.fill("#id_student_number", rows[0]["XH"])
        page.fill("#id_name", rows[0]["XM"])
        page.fill("#id_id_suffix", rows[0]["SFZH"][-6:])
        student.submit(page.locator("main form button[type=submit]"))
        assert page.url.endswith("/accounts/claim/password/")
        student.audit("claim-password")
        page.fill("#id_password1", STUDENT_PASSWORD)
        page.fill("#id_password2", STUDENT_PASSWORD)
        student.submit(page.locator("main form button[type=submit]"))
        checklist_path = f"/check/{campaign.pk}/"
        assert page.url.endswith(checklist_path), "one open check: straight to it"
        student.audit("checklist")
        me.refresh_from_db()
        assert me.user.username == rows[0]["XH"]
        # The import's finding shows as a hint on the date she is about to flag.
        assert school["id_birth"].isoformat() in page.locator("#field-CSRQ .finding").inner_text()

        # Confirms every field but 出生日期, one tap each, each row answering in place.
        codes = page.eval_on_selector_all("li.check-row", "rows => rows.map((row) => row.id.slice(6))")
        assert "CSRQ" in codes and len(codes) > 8
        for code in codes:
            if code != "CSRQ":
                answer_in_place(student, code)
        assert page.locator(".state-badge").inner_text() == str(Checklist.State.IN_PROGRESS.label)
        student.audit("checklist-confirmed")
        assert page.locator("#field-XM button.ok[aria-pressed=true]").count() == 1

        # Flags 出生日期 with a photo of the household register: the form opens inside the row.
        form = open_flag_form(student, "CSRQ")
        student.audit("flag-form")
        page.fill("#id_claimed_value", claimed)
        page.fill("#id_explanation", "户口簿和身份证上都是这一天")
        page.set_input_files(
            "#id_evidence", files=[{"name": "户口簿.png", "mimeType": "image/png", "buffer": png_bytes((400, 300))}]
        )
        student.submit(form.locator("button[type=submit]"))
        flag = Flag.objects.get(checklist__student=me, field_code="CSRQ")
        assert flag.status == S.SUBMITTED and flag.claimed_value == claimed
        assert flag.evidence.get().content_type == "image/png"
        status_line = page.locator("#field-CSRQ .flag-status").inner_text()
        assert claimed in status_line and str(S.SUBMITTED.label) in status_line
        student.audit("checklist-flagged")
        student.submit(page.locator("#field-CSRQ .flag-status a"))
        student.audit("flag-detail")
        assert page.locator(".state-badge").inner_text() == str(S.SUBMITTED.label)
        assert page.get_by_role("link", name="户口簿.png").count() == 1

        # --- The secretary sees the class move and returns the flag ---------
        secretary.open("/workspace/")
        after = class_counts(secretary, class_name)
        assert (after["flagged"], after["not_started"]) == ("1", "3"), after
        secretary.submit(secretary.page.get_by_role("link", name=class_name, exact=True))
        secretary.audit("class")
        sheet = download(secretary, secretary.page.locator("form.export-button button"))
        numbers = {row[1].value for row in table(sheet.worksheets[0], "序号")}
        assert numbers == {r["XH"] for r in rows}, "every student of the class on the sign-off sheet"
        feedback = table(sheet.worksheets[1], "学号")
        assert [(r[0].value, r[3].value) for r in feedback] == [(rows[0]["XH"], claimed)]

        secretary.follow_menu("/workspace/review/")
        secretary.audit("review-queue")
        reason = "请在说明里写明户口簿上的出生日期，并上传身份证正面"
        bulk_act(secretary, flag, "return", reason)
        assert status_of(flag) == S.RETURNED

        # --- The student reads the reason, amends and resubmits --------------
        student.open(checklist_path)
        assert reason in page.locator("#field-CSRQ .reason").inner_text()
        student.audit("checklist-returned")
        form = open_flag_form(student, "CSRQ")
        assert reason in page.locator("#flag-slot-CSRQ .notice").inner_text()
        student.audit("flag-form-returned")
        page.fill("#id_explanation", "户口簿上的出生日期为 " + claimed + "，与身份证一致")
        page.set_input_files(
            "#id_evidence", files=[{"name": "身份证.png", "mimeType": "image/png", "buffer": png_bytes((300, 200))}]
        )
        student.submit(form.locator("button[type=submit]"))
        assert status_of(flag) == S.SUBMITTED and flag.evidence.count() == 2
        student.audit("checklist-resubmitted")

        # --- The secretary forwards it to the registrar ----------------------
        secretary.open("/workspace/review/")
        assert "户口簿上的出生日期为" in secretary.page.locator("article.flag-card").inner_text()
        bulk_act(secretary, flag, "forward", "材料齐全")
        assert status_of(flag) == S.FORWARDED

        # --- Registrar staff: correction list, corrected on CHSI, new roster -
        registrar.sign_in(school["registrar"].username, PASSWORD)
        assert "/workspace/school/" in registrar.page.url
        registrar.audit("school")
        registrar.follow_menu("/workspace/corrections/")
        registrar.audit("corrections")
        book = download(registrar, registrar.page.locator("form.export-button button"))
        found = [row for sheet in book.worksheets for row in table(sheet, "XH") if row[0].value == rows[0]["XH"]]
        assert len(found) == 1, "the flag on the CHSI correction list once"
        row = found[0]
        # The whole 18-digit ID number, as text (a number cell would lose the last digits).
        assert row[2].value == rows[0]["SFZH"] and row[2].data_type == "s" and len(row[2].value) == 18
        assert (row[3].value, row[6].value) == ("CSRQ", claimed)

        bulk_act(registrar, flag, "accept")
        bulk_act(registrar, flag, "corrected", "已在学信网更正")
        assert status_of(flag) == S.CORRECTED

        rows[0]["CSRQ"] = school["id_birth"].strftime("%Y%m%d")
        corrected = roster(tmp_path, rows, "2025级新生（更正后）.xlsx")
        registrar.follow_menu("/students/roster/import/")
        registrar.audit("roster-upload")
        registrar.page.set_input_files("#id_file", corrected)
        registrar.submit(registrar.page.locator("main form button[type=submit]"))
        registrar.audit("roster-imported")
        assert registrar.page.locator("#report").count() == 1
        assert registrar.page.locator("#report table.errors").count() == 0
        me.refresh_from_db()
        assert me.birth_date == school["id_birth"]

        # --- The student confirms the reopened field -------------------------
        student.open(checklist_path)
        reopened = page.locator("#field-CSRQ .notice").inner_text()
        shown = roll_fields.BY_CODE["CSRQ"].display
        wrong_day = school["id_birth"] + datetime.timedelta(days=1)
        assert f"{shown(wrong_day)} → {shown(school['id_birth'])}" in reopened, reopened
        assert str(S.CORRECTED.label) in page.locator("#field-CSRQ .flag-status").inner_text()
        student.audit("checklist-reopened")
        answer_in_place(student, "CSRQ")
        assert page.locator("#field-CSRQ .notice").count() == 0
        assert "你已核对完全部项目" in page.locator("#field-CSRQ .field-message").inner_text()
        assert FieldCheck.objects.get(checklist__student=me, field_code="CSRQ").status == FieldCheck.Status.CONFIRMED
        assert Checklist.objects.get(campaign=campaign, student=me).state in Checklist.FINISHED
        student.audit("checklist-done")

        # --- Language: Chinese so far; the switch gives English --------------
        switch_to_english(student)
        student.audit("checklist-english")
        switch_to_english(secretary)
        secretary.open("/workspace/")
        secretary.audit("dashboard-english")
    finally:
        for person in (student, secretary, registrar):
            person.close()
    assert {"login", "claim", "checklist", "flag-form", "class", "review-queue", "corrections"} <= set(
        student.audited + secretary.audited + registrar.audited
    )


def english_catalogue() -> bool:
    return any((Path(path) / "en" / "LC_MESSAGES" / "django.mo").exists() for path in settings.LOCALE_PATHS)


def switch_to_english(person: Person):
    """Press the language switch; with an English catalogue the brand must read in English."""
    person.submit(person.page.locator("header form.lang button[value=en]"))
    person.language = "en"
    if english_catalogue():
        with translation.override("en"):
            person.brand = translation.gettext("学籍核对")
        assert person.brand != "学籍核对", "the English catalogue does not translate the brand"
    # Without the catalogue only the lang attribute can change (checked by audit).
