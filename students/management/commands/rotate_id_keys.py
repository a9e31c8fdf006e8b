from django.core.management.base import BaseCommand
from django.db import transaction

from students import crypto
from students.models import Student

BATCH = 2000


class Command(BaseCommand):
    help = (
        "Re-encrypt every ID number under the first key of ID_NUMBER_KEYS and recompute the keyed "
        "hashes with ID_NUMBER_HASH_KEY.  Run after putting a new key first (docs/keys.md); safe to re-run."
    )

    def handle(self, *args, **options):
        done = 0
        ids = list(Student.objects.order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(ids), BATCH):
            with transaction.atomic():
                students = list(Student.objects.select_for_update().filter(pk__in=ids[start : start + BATCH]))
                for student in students:
                    # Reading decrypted with any listed key; saving encrypts with the first.
                    student.id_number_hash = crypto.keyed_hash(student.id_number)
                Student.objects.bulk_update(students, ["id_number", "id_number_hash"])
            done += len(students)
        self.stdout.write(f"Re-encrypted {done} ID numbers under the current key.")
