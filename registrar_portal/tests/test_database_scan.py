"""Issue 11 item 2: after a whole campaign, no table holds an ID number in plain text.

The journey touches everything that writes: a roster import, a student flagging
证件号码 with a claimed value (and an explanation and a file name quoting it), the
department's review, the registrar's correction, a re-import bringing the
corrected number, every export, reminders, the daily digest, the admin and a
reveal.  Then every column of every table is read back and searched.  Encrypted
columns hold ciphertext and keyed hashes, which never match.
"""

import datetime
import json
import re

import pytest
from auditlog.models import LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from notices import digests, reminders
from students import idnumbers
from students.models import Cohort, Student
from students.tests.factories import SecretaryFactory, UserFactory
from students.tests.rosters import as_table, base_rows, write_xlsx
from verification import services
from verification.exports import registry as export_registry
from verification.models import Flag
from verification.tests.factories import CampaignFactory, png_bytes
from verification.tests.pages import flag, version_of

pytestmark = pytest.mark.django_db

# An ID number standing alone (not inside a longer run of letters and digits, as in a hash).
ID_PATTERN = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


def _valid_id(base: str) -> str:
    """Another valid number for the same person: the sequence digits changed, same gender."""
    body = base[:14] + ("11" if base[14:16] != "11" else "22") + base[16]
    return body + idnumbers.check_digit(body)


def _roster(tmp_path, rows, name):
    header, data = as_table(rows)
    return write_xlsx(tmp_path / name, header, data)


def _text_of(value) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def scan_database() -> list[str]:
    """``table.column: match`` for every ID-number-shaped text in the database."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            columns = [c.name for c in connection.introspection.get_table_description(cursor, table)]
            quote = connection.ops.quote_name
            cursor.execute(f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table)}")
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    for match in ID_PATTERN.findall(_text_of(value)):
                        found.append(f"{table}.{column}: {match[:4]}…{match[-4:]}")
    return sorted(set(found))


def test_the_scan_finds_a_plain_id_number(department):
    """The scan itself can fail: a number in a plain column is found, with its table and column."""
    from students.tests.factories import StudentFactory

    StudentFactory(department=department, name="11010519491231002X")
    # …and wherever the audit trail copied it.
    assert scan_database() == [
        "auditlog_logentry.changes: 1101…002X",
        "auditlog_logentry.object_repr: 1101…002X",
        "students_student.name: 1101…002X",
    ]


def test_free_text_is_stored_with_id_numbers_masked(department):
    from students.models import AccessEvent

    event = AccessEvent.objects.create(action=AccessEvent.Action.ID_REVEAL, detail="核对 11010519491231002X 的号码")
    assert AccessEvent.objects.get(pk=event.pk).detail == "核对 **************002X 的号码"


def test_no_table_holds_an_id_number_after_a_whole_campaign(
    client, tmp_path, registrar, admin_user, django_capture_on_commit_callbacks
):
    # Messages and deliveries written after commit are part of the journey.
    with django_capture_on_commit_callbacks(execute=True):
        _journey(client, tmp_path, registrar, admin_user)
    found = scan_database()
    assert found == [], "\n".join(found)


def _journey(client, tmp_path, registrar, admin_user):
    # --- The registrar imports the roster through the portal ---------------
    rows = base_rows(3)
    recorded = rows[0]["SFZH"]
    claimed = _valid_id(recorded)
    client.force_login(registrar)
    with open(_roster(tmp_path, rows, "roster.xlsx"), "rb") as handle:
        response = client.post(reverse("students:roster_upload"), {"file": handle})
    assert response.status_code == 200 and Student.objects.count() == 3
    student = Student.objects.get(student_number=rows[0]["XH"])
    student.user = UserFactory(username=student.student_number)
    student.save(update_fields=["user"])
    secretary = SecretaryFactory(departments=[student.department])
    campaign = CampaignFactory(cohorts=list(Cohort.objects.all()), by=registrar)

    # --- The student flags 证件号码, quoting the number everywhere they can ---
    client.force_login(student.user)
    evidence = SimpleUploadedFile(f"{claimed}.png", png_bytes(), content_type="image/png")
    response = flag(
        client, campaign, "SFZH", claimed, version=version_of(student),
        explanation=f"身份证号应为 {claimed}，学信网上是 {recorded}", files=[evidence],
    )  # fmt: skip
    assert response.status_code == 200
    item = Flag.objects.get(field_code="SFZH")
    support = client.post(
        reverse("verification:support_request", args=[campaign.pk, "id_registered"]),
        {"note": f"{claimed} 已被注册"},
    )
    assert support.status_code in (200, 302)

    # --- Review, return, resubmit, forward, accept --------------------------
    services.flag_transition(flag_id=item.pk, to=Flag.Status.RETURNED, by=secretary, note=f"请核对 {claimed}")
    client.force_login(student.user)
    flag(client, campaign, "SFZH", claimed, version=version_of(student), explanation=f"确认为 {claimed}")
    services.flag_transition(flag_id=item.pk, to=Flag.Status.FORWARDED, by=secretary, note=f"已核对 {claimed}")
    services.flag_transition(flag_id=item.pk, to=Flag.Status.ACCEPTED, by=registrar)
    services.flag_transition(flag_id=item.pk, to=Flag.Status.SUBMITTED_TO_CHSI, by=registrar)

    # --- Reminders and the digest -------------------------------------------
    others = list(campaign.checklists.exclude(student=student).values_list("student_id", flat=True))
    reminders.remind_now(campaign=campaign, student_ids=others, by=registrar, request_key="scan-remind-0001")
    digests.digest_build(department_id=student.department_id, campaign_id=campaign.pk, day=timezone.localdate())

    # --- Exports, by the registrar and the secretary ------------------------
    class_group = student.class_group
    params = {"campaign": campaign.pk, "class_group": class_group.pk, "department": student.department_id}
    for user in (registrar, secretary):
        client.force_login(user)
        for kind in [exporter.key for exporter in export_registry.all_exporters()]:
            client.post(reverse("exports:export_create"), {"kind": kind, **params})

    # --- The registrar reveals the number with a reason; the admin looks -----
    client.force_login(registrar)
    client.post(reverse("students:student_detail", args=[student.pk]), {"reason": f"核对 {recorded}"})
    client.force_login(admin_user)
    assert client.get(reverse("admin:students_student_change", args=[student.pk])).status_code == 200
    assert client.get(reverse("admin:verification_flag_change", args=[item.pk])).status_code == 200
    client.get(reverse("admin:students_student_changelist"), {"q": recorded})

    # --- CHSI is corrected: the next roster brings the claimed number -------
    rows[0]["SFZH"] = claimed
    client.force_login(registrar)
    with open(_roster(tmp_path, rows, "roster-2.xlsx"), "rb") as handle:
        client.post(reverse("students:roster_upload"), {"file": handle})
    item.refresh_from_db()
    assert item.status == Flag.Status.CORRECTED
    assert Student.objects.get(pk=student.pk).id_number == claimed
    digests.digest_build(
        department_id=student.department_id, campaign_id=campaign.pk,
        day=timezone.localdate() + datetime.timedelta(days=1),
    )  # fmt: skip


def test_the_migration_masks_what_was_written_before(department):
    """Rows written before the fix (plain free text, flag names in the audit trail) are masked in place."""
    import importlib

    from django.apps import apps

    from students.models import AccessEvent

    event = AccessEvent.objects.create(action=AccessEvent.Action.ID_REVEAL, detail="x")
    entry = LogEntry.objects.log_create(event, force_log=True, action=LogEntry.Action.CREATE, changes={})
    with connection.cursor() as cursor:
        cursor.execute("UPDATE students_accessevent SET detail = %s", ["核对 11010519491231002X"])
    LogEntry.objects.filter(pk=entry.pk).update(
        object_repr="SFZH: 11010519491231002X → 440308199901101512",
        changes={"claimed_value": ["11010519491231002X", "440308199901101512"]},
    )
    assert len(scan_database()) == 5  # two numbers in each audit column, one in the access log

    migration = importlib.import_module("verification.migrations.0007_mask_ids_in_free_text")
    migration.mask_existing(apps, None)

    assert scan_database() == []
    assert AccessEvent.objects.get(pk=event.pk).detail == "核对 **************002X"
