"""How notices reacts to what verification announces (verification/signals.py)."""


def flag_moved(sender, *, flag, previous, to, note="", by=None, **kwargs):
    from verification.models import Flag

    from .services import flag_change_notify, flag_closed_notify
    from .webhooks import webhook_event

    flag_change_notify(flag=flag, to=to, note=note)
    if to == Flag.Status.NOT_RESUBMITTED:
        flag_closed_notify(flag=flag)
    webhook_event(
        "flag.status_changed",
        key=f"flag-{flag.pk}-{flag.updated_at.timestamp():.6f}-{to}",
        payload={
            "flag": flag.pk,
            "student_number": flag.checklist.student.student_number,
            "field": flag.field_code,
            "from": previous,
            "to": to,
            "at": flag.updated_at.isoformat(),
        },
    )


def campaign_saved(sender, *, campaign, **kwargs):
    from .reminders import reminder_plan_ensure

    reminder_plan_ensure(campaign=campaign)


def _sign_off_payload(sign_off, at) -> dict:
    # Counts only: the secretary's remark is free text and may name students.
    return {
        "sign_off": sign_off.pk,
        "campaign": sign_off.campaign_id,
        "department": sign_off.department.code or sign_off.department.name,
        "department_name": sign_off.department.name,
        "total": sign_off.total,
        "finished": sign_off.finished,
        "flagged": sign_off.flagged,
        "overdue": sign_off.overdue,
        "excluded": sign_off.excluded,
        "at": at.isoformat(),
    }


def department_signed_off(sender, *, sign_off, **kwargs):
    from .webhooks import webhook_event

    webhook_event(
        "department.signed_off", key=f"signoff-{sign_off.pk}", payload=_sign_off_payload(sign_off, sign_off.signed_at)
    )


def sign_off_withdrawn(sender, *, sign_off, **kwargs):
    from .webhooks import webhook_event

    webhook_event(
        "department.sign_off_withdrawn",
        key=f"signoff-{sign_off.pk}-withdrawn",
        payload=_sign_off_payload(sign_off, sign_off.withdrawn_at),
    )


def support_replied(sender, *, ticket, reply, **kwargs):
    """The student's in-portal message about a registrar reply to their support request."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.urls import reverse
    from django.utils import translation
    from django.utils.translation import gettext as _

    from .services import message_send, ticket_reply_notify

    user = get_user_model().objects.filter(pk=ticket.checklist.student.user_id, is_active=True).first()
    with translation.override(settings.LANGUAGE_CODE):
        text = _("学籍科回复了你的求助“%(kind)s”：%(text)s") % {
            "kind": ticket.get_kind_display(),
            "text": reply.text[:400],
        }
    url = reverse("verification:checklist", args=[ticket.checklist.campaign_id]) + "#help"
    message_send(user=user, text=text, url=url)
    # And on their channel (WeCom, DingTalk, e-mail …), through the outbox, once per reply.
    ticket_reply_notify(ticket=ticket, reply=reply)


def student_home(sender, *, request, student, **kwargs):
    """The student's notices on their home page, unread first; an unread one keeps them there."""
    from verification.signals import HomePanel

    from .selectors import notices_with_read_flag

    if student is None:
        return None
    notices = notices_with_read_flag(student=student, user=request.user)
    if not notices:
        return None
    return HomePanel(
        template="notices/partials/home_notices.html",
        context={"notices": notices},
        holds=not all(notice.is_read for notice in notices),
    )


def keys_rotated(sender, **kwargs):
    """Digest files are encrypted with the ID-number keys: re-encrypt them under the new one."""
    from verification.exports import storage

    from .digests import digest_dir

    return "digest files", storage.rotate_folder(digest_dir())
