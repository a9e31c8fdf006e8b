"""What the verification app announces, for the apps built on it to react (docs/architecture.md).

The dependency runs one way, students ← verification ← notices: verification
never imports notices.  Instead it sends these signals inside the transaction
that made the change, and notices (its ``apps.py``) connects the receivers that
tell students, plan reminders and post webhooks.  A receiver that writes rows
writes them in that same transaction.
"""

from django.dispatch import Signal

# A flag changed status.  Arguments: flag, previous (status), to (status), note, by (the actor).
flag_moved = Signal()

# A campaign was created or edited (its cohorts and checklists are in place).  Argument: campaign.
campaign_saved = Signal()
