"""What the students app announces, for the apps built on it to react (docs/architecture.md).

students never imports verification or notices; they connect receivers in
their ``AppConfig.ready``.  Receivers run inside the sender's transaction.
"""

from django.dispatch import Signal

# A CHSI roster import is being applied.  Arguments: report (students.services.ImportReport: ``changes``
# maps student id → {field key: (old, new)}, ``roster_import_id``).
roster_imported = Signal()

# A batch of a photo package was saved.  Arguments: kind (students.models.Photo.Kind), changes (student id →
# {photo field key: (old, new)} for photos replaced by a different one), added (ids of students whose first
# photo of this kind it is).  A re-import of the identical photo is in neither.
photos_imported = Signal()

# manage.py rotate_id_keys has re-encrypted the database under the first key of ID_NUMBER_KEYS.  No arguments.
# A receiver re-encrypts the files it keeps under those keys and returns (what they are, how many).
keys_rotated = Signal()
