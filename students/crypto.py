"""Encryption at rest for ID numbers (and other values too sensitive for a plain dump).

Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under the keys in
``ID_NUMBER_KEYS``: the first key encrypts, every key decrypts, so a new key
can be put first and old rows re-encrypted at leisure (``manage.py
rotate_id_keys``).  Because an encrypted value cannot be searched, a keyed
hash (HMAC-SHA256 under ``ID_NUMBER_HASH_KEY``) is stored beside it for
uniqueness checks and look-ups.  See docs/keys.md.
"""

import functools
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


@functools.lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.ID_NUMBER_KEYS))


def encrypt(text: str) -> str:
    return fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("ID number could not be decrypted: wrong or missing key in ID_NUMBER_KEYS") from None


def rotate(token: str) -> str:
    """The same value encrypted under the current first key."""
    return fernet().rotate(token.encode()).decode()


def keyed_hash(text: str) -> str:
    if not text:
        return ""
    return hmac.new(settings.ID_NUMBER_HASH_KEY.encode(), text.encode(), hashlib.sha256).hexdigest()


class EncryptedTextField(models.TextField):
    """Text stored encrypted; Python code sees the plain value.

    Equality look-ups cannot work on ciphertext, so only ``isnull`` is
    allowed: search by the keyed hash beside it instead.
    """

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)

    def get_lookup(self, lookup_name):
        if lookup_name != "isnull":
            return None
        return super().get_lookup(lookup_name)

    def value_to_string(self, obj):
        # Serialisation (dumpdata, audit logs) never writes the plain value.
        return "[encrypted]"


class KeyedHashField(models.CharField):
    """The keyed hash of another field, recomputed whenever the row is written."""

    def __init__(self, *args, source: str = "", **kwargs):
        self.source = source
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["source"] = self.source
        return name, path, args, kwargs

    def pre_save(self, model_instance, add):
        value = keyed_hash(getattr(model_instance, self.source) or "")
        setattr(model_instance, self.attname, value)
        return value


class _MasksIdNumbers:
    """Free text (a student's explanation, a return reason, a file name) may quote an ID
    number; it is written masked, whatever code path writes it (save, bulk_create, update)."""

    def pre_save(self, model_instance, add):
        # The saved object holds the masked text too, so its str() (the admin's history) matches the row.
        from registrar_portal.logging import mask_text

        value = super().pre_save(model_instance, add)
        if isinstance(value, str) and value:
            value = mask_text(value)
            setattr(model_instance, self.attname, value)
        return value

    def get_prep_value(self, value):
        from registrar_portal.logging import mask_text

        value = super().get_prep_value(value)
        return mask_text(value) if isinstance(value, str) and value else value


class IdMaskedTextField(_MasksIdNumbers, models.TextField):
    pass


class IdMaskedCharField(_MasksIdNumbers, models.CharField):
    pass
