from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from students import crypto, signals

BATCH = 2000


def encrypted_models():
    """Every model with a value under the keys: ``EncryptedTextField`` (ID numbers, claimed values, robot,
    channel and webhook secrets …) or ``KeyedHashField``.  Found by field type, so a new one is rotated too."""
    for model in apps.get_models():
        fields = [
            field
            for field in model._meta.local_concrete_fields
            if isinstance(field, (crypto.EncryptedTextField, crypto.KeyedHashField))
        ]
        if fields and not model._meta.proxy:
            yield model, fields


def rotate_model(model, fields) -> int:
    """Re-save each row's encrypted values under the first key and recompute its keyed hashes."""
    names = [field.name for field in fields]
    hashes = [field for field in fields if isinstance(field, crypto.KeyedHashField)]
    manager = model._base_manager
    pks = list(manager.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(pks), BATCH):
        with transaction.atomic():
            rows = list(manager.select_for_update().filter(pk__in=pks[start : start + BATCH]).only("pk", *names))
            for row in rows:
                # Reading decrypted with any listed key; saving encrypts with the first.
                for field in hashes:
                    setattr(row, field.attname, crypto.keyed_hash(getattr(row, field.source) or ""))
            manager.bulk_update(rows, names)
    return len(pks)


class Command(BaseCommand):
    help = (
        "Re-encrypt every value encrypted at rest (ID numbers, claimed values, channel, robot and webhook "
        "secrets, stored exports and digests) under the first key of ID_NUMBER_KEYS and recompute the keyed "
        "hashes with ID_NUMBER_HASH_KEY.  Run after putting a new key first (docs/keys.md); safe to re-run."
    )

    def handle(self, *args, **options):
        for model, fields in encrypted_models():
            done = rotate_model(model, fields)
            names = ", ".join(field.name for field in fields)
            self.stdout.write(f"Re-encrypted {done} rows of {model._meta.label} ({names}) under the current key.")
        # The files other apps keep under the same keys (verification: stored exports; notices: digests).
        for _receiver, (label, done) in signals.keys_rotated.send(sender=Command):
            self.stdout.write(f"Re-encrypted {done} {label} under the current key.")
