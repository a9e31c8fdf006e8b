"""What the verification app announces, for the apps built on it to react (docs/architecture.md).

The dependency runs one way, students ← verification ← notices: verification
never imports notices.  Instead it sends these signals inside the transaction
that made the change, and notices (its ``apps.py``) connects the receivers that
tell students, plan reminders and post webhooks.  A receiver that writes rows
writes them in that same transaction.
"""

from dataclasses import dataclass, field

from django.dispatch import Signal

# A flag changed status.  Arguments: flag, previous (status), to (status), note, by (the actor).
flag_moved = Signal()

# A campaign was created or edited (its cohorts and checklists are in place).  Argument: campaign.
campaign_saved = Signal()

# A department signed off its results (院系确认提交), or registrar staff withdrew that sign-off.
# Argument: sign_off (a DepartmentSignOff; ``withdrawn_at`` is set on a withdrawal).
department_signed_off = Signal()
sign_off_withdrawn = Signal()

# A registrar reply to a support request (求助) was written.  Arguments: ticket (a SupportRequest), reply (its
# SupportEvent).  Notices sends the student an in-portal message, in the same transaction.
support_replied = Signal()


@dataclass
class HomePanel:
    """What a receiver of ``student_home`` adds to the student's home (我的核对), above their checks.

    ``template`` is included with ``panel`` in its context.  A panel that ``holds`` keeps a student with one open
    check on the home page instead of sending them straight to that check (unread notices do).
    """

    template: str
    context: dict = field(default_factory=dict)
    holds: bool = False


# The student's home is being drawn.  Arguments: request, student (None for an account without a record).
# A receiver returns a HomePanel or None.
student_home = Signal()
