"""How notices reacts to what verification announces (verification/signals.py)."""


def flag_moved(sender, *, flag, previous, to, note="", by=None, **kwargs):
    from .services import flag_change_notify
    from .webhooks import webhook_event

    flag_change_notify(flag=flag, to=to, note=note)
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
