"""What the students app announces, for the apps built on it to react (docs/architecture.md).

students never imports verification or notices; they connect receivers in
their ``AppConfig.ready``.  Receivers run inside the sender's transaction.
"""

from django.dispatch import Signal

# A CHSI roster import is being applied.  Arguments: report (students.services.ImportReport: ``changes``
# maps student id → {field key: (old, new)}, ``roster_import_id``).
roster_imported = Signal()
