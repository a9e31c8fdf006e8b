"""Verification services: campaigns, answers, flags and their review chain.

Every write a student, secretary or registrar makes goes through one function
here.  Each locks the checklist row, checks the move is allowed, writes the
history, and recomputes the checklist's state.
"""

import datetime
from collections import defaultdict

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from students import fields as roll_fields
from students.models import Student

from . import evidence as evidence_files
from .claims import clean_claimed_value
from .models import Campaign, Checklist, Evidence, FieldCheck, Flag, FlagEvent, SupportRequest


class VerificationError(Exception):
    """A refused action; the message is meant for the person who tried it."""


class StaleRecordError(VerificationError):
    pass


S = Flag.Status
# (from, to) → who may make the move.  Registrar staff may also act as a department.
TRANSITIONS = {
    (S.SUBMITTED, S.RETURNED): "department",
    (S.SUBMITTED, S.FORWARDED): "department",
    (S.SUBMITTED, S.WITHDRAWN): "student",
    (S.RETURNED, S.SUBMITTED): "student",
    (S.RETURNED, S.WITHDRAWN): "student",
    (S.FORWARDED, S.ACCEPTED): "registrar",
    (S.FORWARDED, S.RETURNED): "registrar",
    (S.ACCEPTED, S.RETURNED): "registrar",
    (S.ACCEPTED, S.SUBMITTED_TO_CHSI): "registrar",
    (S.ACCEPTED, S.CORRECTED): "registrar",
    (S.SUBMITTED_TO_CHSI, S.CORRECTED): "registrar",
}
# Status changes the student is told about (notices issue sends the message).
STUDENT_VISIBLE = {S.RETURNED, S.FORWARDED, S.ACCEPTED, S.SUBMITTED_TO_CHSI, S.CORRECTED}


def record_value(student: Student, field: roll_fields.RollField) -> str:
    """A field's value as CHSI's card shows it."""
    return field.display(getattr(student, field.key))


def _seen_value(student: Student, field: roll_fields.RollField) -> str:
    # The confirmation pins the record version; the ID number itself is not copied again.
    if field.key == "id_number":
        return student.masked_id_number
    return record_value(student, field)[:200]


# ---------------------------------------------------------------------------
# Campaigns
# ---------------------------------------------------------------------------


def campaign_sync_students(*, campaign: Campaign) -> int:
    """Give every student of the campaign's cohorts a checklist; returns how many were added."""
    student_ids = Student.objects.filter(cohort__in=campaign.cohorts.all()).values_list("id", flat=True)
    existing = set(campaign.checklists.values_list("student_id", flat=True))
    new = [Checklist(campaign=campaign, student_id=sid) for sid in student_ids if sid not in existing]
    Checklist.objects.bulk_create(new, batch_size=5000, ignore_conflicts=True)
    return len(new)


def campaigns_sync_open(*, now=None) -> int:
    """After an import: new students of open campaigns' cohorts get checklists."""
    now = now or timezone.now()
    added = 0
    for campaign in Campaign.objects.filter(closed_at__isnull=True, closes_at__gt=now):
        added += campaign_sync_students(campaign=campaign)
    return added


@transaction.atomic
def campaign_save(*, campaign: Campaign, cohorts, by=None) -> Campaign:
    """Create or update a campaign and its checklists."""
    if campaign.closes_at <= campaign.opens_at:
        raise VerificationError(_("截止时间必须晚于开始时间"))
    unknown = set(campaign.field_codes) - set(roll_fields.BY_CODE)
    if unknown:
        raise VerificationError(_("未知字段：%(codes)s") % {"codes": _("、").join(sorted(unknown))})
    if campaign.pk is None:
        campaign.created_by = by
    campaign.save()
    campaign.cohorts.set(cohorts)
    campaign_sync_students(campaign=campaign)
    from notices.reminders import reminder_plan_ensure

    reminder_plan_ensure(campaign=campaign)
    return campaign


def campaign_close(*, campaign_id: int, now=None) -> int:
    """Close a campaign past its deadline: students who never answered become 逾期未核对.

    Safe to run twice; returns how many checklists were marked overdue.
    """
    now = now or timezone.now()
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if campaign.closed_at or campaign.closes_at > now:
            return 0
        overdue = campaign.checklists.filter(state=Checklist.State.NOT_STARTED).update(state=Checklist.State.OVERDUE)
        campaign.closed_at = now
        campaign.save(update_fields=["closed_at"])
    return overdue


def campaigns_close_due(*, now=None) -> int:
    now = now or timezone.now()
    return sum(
        campaign_close(campaign_id=pk, now=now)
        for pk in Campaign.objects.filter(closed_at__isnull=True, closes_at__lte=now).values_list("pk", flat=True)
    )


# ---------------------------------------------------------------------------
# Answers
# ---------------------------------------------------------------------------


def _lock(checklist_id: int) -> Checklist:
    return Checklist.objects.select_for_update().select_related("campaign", "student").get(pk=checklist_id)


def _check_writable(checklist: Checklist, record_version: int | None, *, now):
    if not checklist.campaign.is_open(now):
        raise VerificationError(_("核对已截止，不能再修改"))
    if record_version is not None and int(record_version) != checklist.student.version:
        raise StaleRecordError(_("你的学籍信息在你打开页面后已更新，请查看最新信息后重新核对。"))


def _checked_field(checklist: Checklist, field_code: str) -> roll_fields.RollField:
    for field in checklist.campaign.checked_fields():
        if field.code == field_code:
            return field
    raise VerificationError(_("该字段无需核对"))


def refresh_state(checklist: Checklist, *, now=None) -> Checklist:
    """Recompute and save a checklist's state from its answers and flags."""
    now = now or timezone.now()
    codes = [f.code for f in checklist.campaign.checked_fields()]
    answers = dict(checklist.field_checks.values_list("field_code", "status"))
    flag_statuses = set(checklist.flags.values_list("status", flat=True))
    answered = [c for c in codes if answers.get(c) in (FieldCheck.Status.CONFIRMED, FieldCheck.Status.FLAGGED)]
    if S.RETURNED in flag_statuses:
        state = Checklist.State.RETURNED
    elif codes and len(answered) == len(codes):
        flagged = any(answers[c] == FieldCheck.Status.FLAGGED for c in codes)
        state = Checklist.State.FLAGGED if flagged else Checklist.State.CONFIRMED
    elif answers:
        state = Checklist.State.IN_PROGRESS
    elif checklist.state == Checklist.State.OVERDUE:
        state = Checklist.State.OVERDUE
    else:
        state = Checklist.State.NOT_STARTED
    checklist.state = state
    if state in Checklist.FINISHED:
        checklist.finished_at = checklist.finished_at or now
    else:
        checklist.finished_at = None
    checklist.save(update_fields=["state", "finished_at", "last_activity_at", "attested_at"])
    return checklist


def _answer(checklist, fields, status, *, by, proxy, now):
    """Record the student's answer for some fields in one statement (an upsert)."""
    FieldCheck.objects.bulk_create(
        [
            FieldCheck(
                checklist=checklist,
                field_code=field.code,
                status=status,
                seen_value=_seen_value(checklist.student, field),
                record_version=checklist.student.version,
                previous_value="",
                answered_at=now,
                answered_by=by,
                is_proxy=proxy,
            )
            for field in fields
        ],
        update_conflicts=True,
        unique_fields=["checklist", "field_code"],
        update_fields=[
            "status",
            "seen_value",
            "record_version",
            "previous_value",
            "answered_at",
            "answered_by",
            "is_proxy",
        ],
    )


def _log(flag, action, *, by, from_status="", to_status="", note="", now=None):
    FlagEvent.objects.create(
        flag=flag,
        action=action,
        from_status=from_status,
        to_status=to_status,
        actor=by,
        note=note,
        created_at=now or timezone.now(),
    )


def field_confirm(*, checklist_id: int, field_code: str, record_version, by, proxy=False, now=None) -> Checklist:
    """The student says one field is right.  An open flag of theirs on it is withdrawn."""
    now = now or timezone.now()
    with transaction.atomic():
        checklist = _lock(checklist_id)
        _check_writable(checklist, record_version, now=now)
        field = _checked_field(checklist, field_code)
        flag = checklist.flags.filter(field_code=field_code, status__in=Flag.OPEN).first()
        if flag:
            if flag.status not in (S.SUBMITTED, S.RETURNED):
                raise VerificationError(_("该报错已转学籍科处理，不能改为正确；如有疑问请联系学籍科。"))
            _flag_move(flag, S.WITHDRAWN, by=by, note=_("学生改为确认正确"), now=now)
        _answer(checklist, [field], FieldCheck.Status.CONFIRMED, by=by, proxy=proxy, now=now)
        checklist.last_activity_at = now
        return refresh_state(checklist, now=now)


def checklist_confirm_all(*, checklist_id: int, record_version, by, proxy=False, now=None) -> Checklist:
    """全部正确: confirm every field at once; refused while any field is flagged."""
    now = now or timezone.now()
    with transaction.atomic():
        checklist = _lock(checklist_id)
        _check_writable(checklist, record_version, now=now)
        if (
            checklist.flags.filter(status__in=Flag.OPEN).exists()
            or checklist.field_checks.filter(status=FieldCheck.Status.FLAGGED).exists()
        ):
            raise VerificationError(_("你有报错的字段，不能一键确认全部正确；请逐项核对。"))
        _answer(
            checklist, checklist.campaign.checked_fields(), FieldCheck.Status.CONFIRMED, by=by, proxy=proxy, now=now
        )
        checklist.attested_at = now
        checklist.last_activity_at = now
        return refresh_state(checklist, now=now)


def _validate_claim(field, claimed_value: str, student: Student) -> str:
    try:
        value = clean_claimed_value(field, claimed_value, id_type=student.id_type)
    except ValueError as exc:
        raise VerificationError(str(exc)) from None
    if field.same(value, getattr(student, field.key)):
        raise VerificationError(_("填写的正确值与学信网记录相同"))
    return value


def _store_files(files) -> list[evidence_files.StoredFile]:
    """Validate and write uploads before the transaction; all or none are kept."""
    if len(files) > evidence_files.MAX_FILES_PER_FLAG:
        raise VerificationError(_("每个报错最多上传 %(n)s 个文件") % {"n": evidence_files.MAX_FILES_PER_FLAG})
    stored = []
    try:
        for upload in files:
            stored.append(evidence_files.store_upload(upload))
    except evidence_files.EvidenceError as exc:
        _discard(stored)
        raise VerificationError(str(exc)) from None
    return stored


def _discard(stored):
    for item in stored:
        evidence_files.delete_file(item.storage_name)


def _attach(flag: Flag, stored, *, by):
    # A double submit uploads the same file again; re-encoding makes identical
    # uploads byte-identical, so keep one copy instead of listing it twice.
    held = set(flag.evidence.values_list("sha256", flat=True))
    fresh = []
    for item in stored:
        if item.sha256 in held:
            evidence_files.delete_file(item.storage_name)
        else:
            held.add(item.sha256)
            fresh.append(item)
    stored = fresh
    if flag.evidence.count() + len(stored) > evidence_files.MAX_FILES_PER_FLAG:
        raise VerificationError(_("每个报错最多上传 %(n)s 个文件") % {"n": evidence_files.MAX_FILES_PER_FLAG})
    return Evidence.objects.bulk_create(
        [
            Evidence(
                flag=flag,
                storage_name=item.storage_name,
                original_name=item.original_name,
                content_type=item.content_type,
                size=item.size,
                sha256=item.sha256,
                uploaded_by=by,
            )
            for item in stored
        ]
    )


def field_flag(
    *,
    checklist_id: int,
    field_code: str,
    claimed_value: str,
    explanation: str = "",
    files=(),
    record_version,
    by,
    proxy=False,
    now=None,
) -> Flag:
    """The student says a field is wrong, giving the right value and evidence.

    A second tab or a double click updates the one open flag instead of adding
    another (the database allows one open flag per field).
    """
    now = now or timezone.now()
    stored = _store_files(list(files))
    try:
        with transaction.atomic():
            checklist = _lock(checklist_id)
            _check_writable(checklist, record_version, now=now)
            field = _checked_field(checklist, field_code)
            value = _validate_claim(field, claimed_value, checklist.student)
            flag = checklist.flags.filter(field_code=field_code, status__in=Flag.OPEN).first()
            if flag:
                return _amend(flag, checklist, field, value, explanation, stored, by=by, proxy=proxy, now=now)
            flag = Flag.objects.create(
                checklist=checklist,
                field_code=field_code,
                recorded_value=record_value(checklist.student, field)[:200],
                claimed_value=value,
                explanation=explanation.strip(),
                record_version=checklist.student.version,
                created_by=by,
                is_proxy=proxy,
            )
            _attach(flag, stored, by=by)
            _log(flag, "verification.flag.submitted", by=by, to_status=S.SUBMITTED, note=flag.explanation, now=now)
            _answer(checklist, [field], FieldCheck.Status.FLAGGED, by=by, proxy=proxy, now=now)
            checklist.last_activity_at = now
            checklist.attested_at = None  # "all correct" no longer holds
            refresh_state(checklist, now=now)
            return flag
    except BaseException:
        _discard(stored)
        raise


def flag_amend(
    *, flag_id: int, claimed_value: str, explanation: str = "", files=(), record_version, by, now=None
) -> Flag:
    """The student corrects a flag (typically one returned to them) and resubmits it."""
    now = now or timezone.now()
    stored = _store_files(list(files))
    try:
        with transaction.atomic():
            checklist_id = Flag.objects.values_list("checklist_id", flat=True).get(pk=flag_id)
            checklist = _lock(checklist_id)
            flag = Flag.objects.get(pk=flag_id)
            _check_writable(checklist, record_version, now=now)
            field = _checked_field(checklist, flag.field_code)
            value = _validate_claim(field, claimed_value, checklist.student)
            return _amend(flag, checklist, field, value, explanation, stored, by=by, proxy=False, now=now)
    except BaseException:
        _discard(stored)
        raise


def _amend(flag, checklist, field, value, explanation, stored, *, by, proxy, now) -> Flag:
    if flag.status not in (S.SUBMITTED, S.RETURNED):
        raise VerificationError(_("该报错已转学籍科处理，不能再修改；如有疑问请联系学籍科。"))
    edited = (flag.claimed_value, flag.explanation) != (value, explanation.strip())
    flag.claimed_value = value
    flag.explanation = explanation.strip()
    flag.recorded_value = record_value(checklist.student, field)[:200]
    flag.record_version = checklist.student.version
    flag.save(update_fields=["claimed_value", "explanation", "recorded_value", "record_version", "updated_at"])
    added = _attach(flag, stored, by=by)
    if flag.status == S.RETURNED:
        _flag_move(flag, S.SUBMITTED, by=by, note=flag.explanation, now=now, action="verification.flag.resubmitted")
    elif edited or added:
        # A double submit changes nothing and leaves no trace in the history.
        _log(flag, "verification.flag.amended", by=by, note=flag.explanation, now=now)
    _answer(checklist, [field], FieldCheck.Status.FLAGGED, by=by, proxy=proxy, now=now)
    checklist.last_activity_at = now
    refresh_state(checklist, now=now)
    return flag


def flag_withdraw(*, flag_id: int, by, now=None) -> Flag:
    """The student takes a flag back; the field is unanswered again."""
    now = now or timezone.now()
    with transaction.atomic():
        checklist_id = Flag.objects.values_list("checklist_id", flat=True).get(pk=flag_id)
        checklist = _lock(checklist_id)
        _check_writable(checklist, None, now=now)
        flag = Flag.objects.get(pk=flag_id)
        _flag_move(flag, S.WITHDRAWN, by=by, now=now)
        checklist.field_checks.filter(field_code=flag.field_code, status=FieldCheck.Status.FLAGGED).delete()
        checklist.last_activity_at = now
        refresh_state(checklist, now=now)
        return flag


def _flag_move(flag: Flag, to: str, *, by, note="", now=None, action=None):
    if (flag.status, to) not in TRANSITIONS:
        raise VerificationError(
            _("报错当前为“%(status)s”，不能改为“%(to)s”") % {"status": flag.get_status_display(), "to": S(to).label}
        )
    previous = flag.status
    flag.status = to
    if to == S.RETURNED:
        flag.return_reason = note
    flag.save(update_fields=["status", "return_reason", "updated_at"])
    _log(flag, action or f"verification.flag.{to}", by=by, from_status=previous, to_status=to, note=note, now=now)
    from notices.services import flag_change_notify

    flag_change_notify(flag=flag, to=to, note=note)


def flag_transition(*, flag_id: int, to: str, by, note: str = "", now=None) -> Flag:
    """Move a flag along the review chain (department and registrar actions).

    Who may act is checked by the caller's scoped lookup plus the role the
    transition needs; a move not in ``TRANSITIONS`` is refused.
    """
    from students.permissions import is_registrar, is_secretary, students_for

    now = now or timezone.now()
    with transaction.atomic():
        checklist_id = Flag.objects.values_list("checklist_id", flat=True).get(pk=flag_id)
        checklist = _lock(checklist_id)
        flag = Flag.objects.select_for_update().get(pk=flag_id)
        if not students_for(by).filter(pk=checklist.student_id).exists():
            # Out of the actor's scope: behave as if the flag did not exist.
            raise Flag.DoesNotExist
        needed = TRANSITIONS.get((flag.status, to))
        allowed = {
            "department": is_registrar(by) or is_secretary(by),
            "registrar": is_registrar(by),
            "student": False,
        }
        if needed is None or not allowed[needed]:
            raise VerificationError(
                _("报错当前为“%(status)s”，不能改为“%(to)s”") % {"status": flag.get_status_display(), "to": S(to).label}
            )
        if to == S.RETURNED and not note.strip():
            raise VerificationError(_("退回时请填写原因"))
        _flag_move(flag, to, by=by, note=note.strip(), now=now)
        refresh_state(checklist, now=now)
        return flag


def flag_note(*, flag_id: int, by, note: str, now=None):
    if not note.strip():
        raise VerificationError(_("备注不能为空"))
    flag = Flag.objects.get(pk=flag_id)
    _log(flag, "verification.flag.note", by=by, note=note.strip(), now=now)


def support_request_create(*, checklist_id: int, kind: str, note: str = "", by, now=None) -> SupportRequest:
    """ "Record not found on CHSI" or a CHSI account problem; one open request per kind."""
    now = now or timezone.now()
    with transaction.atomic():
        checklist = _lock(checklist_id)
        _check_writable(checklist, None, now=now)
        request, _created = SupportRequest.objects.get_or_create(
            checklist=checklist, kind=kind, status=SupportRequest.Status.OPEN, defaults={"note": note.strip()}
        )
        checklist.last_activity_at = now
        checklist.save(update_fields=["last_activity_at"])
        return request


# ---------------------------------------------------------------------------
# Roster re-imports
# ---------------------------------------------------------------------------

CORRECTION_PENDING = (S.FORWARDED, S.ACCEPTED, S.SUBMITTED_TO_CHSI, S.CORRECTED)


def roster_changes_apply(*, changes: dict, roster_import_id=None, now=None) -> int:
    """Reopen answers whose value a roster import changed, in open campaigns.

    ``changes`` maps student id → {field key: (old, new)}.  A confirmed field
    whose value really changed (as the registry compares it) is reopened for
    the student, showing old → new.  A flagged field whose new value is the
    one the student claimed is corrected: the flag closes and the field
    reopens so the student confirms the fix.  Returns the number reopened.
    """
    from notices.services import flag_change_notify

    now = now or timezone.now()
    by_code = defaultdict(dict)
    for student_id, fields in changes.items():
        for key, (old, new) in fields.items():
            field = roll_fields.BY_KEY.get(key)
            if field and not field.same(old, new):
                by_code[student_id][field.code] = (field, old, new)
    if not by_code:
        return 0
    reopened = 0
    student_ids = list(by_code)
    open_campaigns = Q(checklist__campaign__closed_at__isnull=True, checklist__campaign__closes_at__gt=now)
    touched = set()
    with transaction.atomic():
        for start in range(0, len(student_ids), 2000):
            chunk = student_ids[start : start + 2000]
            checks = FieldCheck.objects.filter(open_campaigns, checklist__student_id__in=chunk).select_related(
                "checklist"
            )
            # Oldest first, so that a field flagged again after an earlier fix
            # is matched with its newest flag, not the one already corrected.
            flags = {
                (f.checklist_id, f.field_code): f
                for f in Flag.objects.filter(
                    checklist__student_id__in=chunk, status__in=CORRECTION_PENDING + (S.SUBMITTED, S.RETURNED)
                ).order_by("created_at", "id")
            }
            for check in checks:
                change = by_code[check.checklist.student_id].get(check.field_code)
                if not change:
                    continue
                field, old, new = change
                if check.status == FieldCheck.Status.FLAGGED:
                    flag = flags.get((check.checklist_id, check.field_code))
                    if not flag or not field.same(flag.claimed_value, new):
                        continue
                    if flag.status != S.CORRECTED:
                        previous = flag.status
                        flag.status = S.CORRECTED
                        flag.save(update_fields=["status", "updated_at"])
                        _log(
                            flag,
                            "verification.flag.corrected_by_import",
                            by=None,
                            from_status=previous,
                            to_status=S.CORRECTED,
                            note=_("名单导入 #%(id)s 已带来更正后的值") % {"id": roster_import_id},
                            now=now,
                        )
                        flag_change_notify(flag=flag, to=S.CORRECTED)
                elif check.status != FieldCheck.Status.CONFIRMED:
                    continue
                check.status = FieldCheck.Status.REOPENED
                check.previous_value = check.seen_value if field.key != "id_number" else _mask_old(old)
                check.save(update_fields=["status", "previous_value"])
                touched.add(check.checklist_id)
                reopened += 1
        for checklist in Checklist.objects.filter(pk__in=touched).select_related("campaign"):
            refresh_state(checklist, now=now)
    return reopened


def _mask_old(value) -> str:
    from students.idnumbers import mask

    return mask(value or "")


def flags_transition_bulk(*, flag_ids: list[int], to: str, by, note: str = "", now=None) -> tuple[int, list[str]]:
    """The same move for many flags; each is its own transaction, refusals are collected.

    Returns (moved, messages for the refused ones).
    """
    moved, refused = 0, []
    for flag_id in flag_ids:
        try:
            flag_transition(flag_id=flag_id, to=to, by=by, note=note, now=now)
        except (VerificationError, Flag.DoesNotExist) as exc:
            refused.append(f"#{flag_id}: {exc}" if str(exc) else f"#{flag_id}")
        else:
            moved += 1
    return moved, refused


# ---------------------------------------------------------------------------
# Class progress links
# ---------------------------------------------------------------------------

PROGRESS_LINK_DAYS = 14


def progress_link_create(*, campaign: Campaign, class_group, by, days: int = PROGRESS_LINK_DAYS, now=None):
    """A new link to a class's progress for its WeChat group; valid ``days`` days."""
    import secrets

    from .models import ClassProgressLink

    now = now or timezone.now()
    days = max(1, min(int(days), 60))
    return ClassProgressLink.objects.create(
        token=secrets.token_urlsafe(24),
        campaign=campaign,
        class_group=class_group,
        created_by=by,
        created_at=now,
        expires_at=now + datetime.timedelta(days=days),
    )


def progress_link_revoke(*, link, now=None):
    if link.revoked_at is None:
        link.revoked_at = now or timezone.now()
        link.save(update_fields=["revoked_at"])
    return link
