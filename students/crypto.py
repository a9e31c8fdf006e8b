"""Encryption at rest for ID numbers (and other values too sensitive for a plain dump).

Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under the keys in
``ID_NUMBER_KEYS``: the first key encrypts, every key decrypts, so a new key
can be put first and old rows re-encrypted at leisure (``manage.py
rotate_id_keys``).  Because an encrypted value cannot be searched, a keyed
hash (HMAC-SHA256 under ``ID_NUMBER_HASH_KEY``) is stored beside it for
uniqueness checks and look-ups.  See docs/keys.md.
"""

import base64
import binascii
import functools
import hashlib
import hmac
import os
import time

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
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


# URL-safe base64 (Fernet's) read by the C decoder.
_URLSAFE = bytes.maketrans(b"-_", b"+/")


@functools.lru_cache(maxsize=4)
def _key_pairs(keys: tuple[str, ...]) -> tuple[tuple[bytes, Cipher], ...]:
    """(signing key, AES-ECB cipher of the encryption key) of each key, as Fernet splits a key."""
    pairs = []
    for key in keys:
        raw = base64.urlsafe_b64decode(key.encode() if isinstance(key, str) else key)
        pairs.append((raw[:16], Cipher(algorithms.AES(raw[16:]), modes.ECB())))
    return tuple(pairs)


@functools.lru_cache(maxsize=8)
def _hmac_states(signing_key: bytes) -> tuple:
    """HMAC-SHA256 (RFC 2104) of one key with its inner and outer pads hashed once: then each token costs
    two copies and updates, a quarter of ``hmac.digest`` looking SHA-256 up again for every token."""
    padded = signing_key.ljust(64, b"\0")
    return hashlib.sha256(bytes(b ^ 0x36 for b in padded)), hashlib.sha256(bytes(b ^ 0x5C for b in padded))


def _mac(states: tuple, body: bytes) -> bytes:
    inner, outer = states[0].copy(), states[1].copy()
    inner.update(body)
    outer.update(inner.digest())
    return outer.digest()


def decrypt_many(tokens) -> list:
    """``decrypt`` of many tokens at once, for exports of tens of thousands of rows (docs/performance.md §4).

    The same checks as Fernet: each token's HMAC is verified (under each key
    in turn, as MultiFernet does) before it is decrypted, and the padding
    after.  Fernet pays about 8 µs of CPU a token, most of it setting up
    objects; here the tokens under one key go through one AES-CBC call: a
    token's body after its version and time is its IV then its ciphertext,
    so CBC over the bodies one after the other decrypts each token's first
    block against its own IV (the block before it), and the IV blocks' own
    output is skipped.  About 2 µs a token.  ``None`` and "" pass through.
    """
    pairs = _key_pairs(tuple(settings.ID_NUMBER_KEYS))
    macs = [_hmac_states(signing_key) for signing_key, _cipher in pairs]
    results: list = list(tokens)
    by_key: dict[int, list] = {index: [] for index in range(len(pairs))}
    a2b, compare = binascii.a2b_base64, hmac.compare_digest
    # The first key's check inlined: nearly every token is under it, and a call a token shows at 50,000.
    first_inner, first_outer = macs[0]
    first = by_key[0]
    for index, token in enumerate(results):
        if not token:
            continue
        try:
            data = a2b(token.encode().translate(_URLSAFE))
        except (ValueError, TypeError, UnicodeEncodeError):
            data = b""
        body, mac = data[:-32], data[-32:]
        if len(data) < 73 or data[0] != 0x80 or (len(body) - 25) % 16:
            raise ValueError("ID number could not be decrypted: not a Fernet token")
        inner, outer = first_inner.copy(), first_outer.copy()
        inner.update(body)
        outer.update(inner.digest())
        if compare(outer.digest(), mac):
            first.append((index, body))
            continue
        for key_index in range(1, len(macs)):
            if compare(_mac(macs[key_index], body), mac):
                by_key[key_index].append((index, body))
                break
        else:
            raise ValueError("ID number could not be decrypted: wrong or missing key in ID_NUMBER_KEYS")
    for key_index, items in by_key.items():
        if not items:
            continue
        decryptor = Cipher(pairs[key_index][1].algorithm, modes.CBC(bytes(16))).decryptor()
        plain = decryptor.update(b"".join([body[9:] for _index, body in items])) + decryptor.finalize()
        offset = 0
        for index, body in items:
            end = offset + len(body) - 9
            pad = plain[end - 1]
            if not 1 <= pad <= 16 or plain[end - pad : end] != bytes((pad,)) * pad:
                raise ValueError("ID number could not be decrypted: bad padding")
            results[index] = plain[offset + 16 : end - pad].decode()
            offset = end
    return results


def encrypt_many(texts) -> list[str]:
    """``encrypt`` of many values at once, for a roster import's tens of thousands of ID numbers.

    Each result is the Fernet token ``encrypt`` would make (version, time, a random IV, AES-128-CBC
    with PKCS7 padding, HMAC-SHA256 over all of it) under the first key, so ``decrypt`` and
    ``decrypt_many`` read it.  Fernet pays about 20 µs a token in object set-up; here block n of
    every token goes through one AES call in ECB mode, chained per token as CBC is (plain block XOR
    the ciphertext block before it, the first XOR the IV): 0.4–0.5 s instead of 0.6–1.25 s at 50,000.
    """
    texts = list(texts)
    return _encrypt_many(texts, ivs=os.urandom(16 * len(texts)), at=int(time.time()))


def _encrypt_many(texts: list[str], *, ivs: bytes, at: int) -> list[str]:
    signing_key, cipher = _key_pairs(tuple(settings.ID_NUMBER_KEYS))[0]
    padded = []
    for text in texts:
        data = text.encode()
        pad = 16 - len(data) % 16
        padded.append(data + bytes([pad]) * pad)
    previous = [ivs[16 * i : 16 * i + 16] for i in range(len(texts))]
    ciphertexts = [b""] * len(texts)
    encryptor = cipher.encryptor()
    for position in range(0, max(map(len, padded), default=0), 16):
        todo = [i for i, data in enumerate(padded) if len(data) > position]
        mixed = b"".join(
            (int.from_bytes(padded[i][position : position + 16], "big") ^ int.from_bytes(previous[i], "big")).to_bytes(
                16, "big"
            )
            for i in todo
        )
        out = encryptor.update(mixed)
        for n, i in enumerate(todo):
            previous[i] = block = out[16 * n : 16 * n + 16]
            ciphertexts[i] += block
    encryptor.finalize()
    prefix = b"\x80" + at.to_bytes(8, "big")
    tokens = []
    for i, ciphertext in enumerate(ciphertexts):
        body = prefix + ivs[16 * i : 16 * i + 16] + ciphertext
        tokens.append(base64.urlsafe_b64encode(body + hmac.digest(signing_key, body, "sha256")).decode())
    return tokens


def rotate(token: str) -> str:
    """The same value encrypted under the current first key."""
    return fernet().rotate(token.encode()).decode()


def keyed_hash(text: str) -> str:
    if not text:
        return ""
    # One-shot HMAC: a third faster than building an hmac object, over a whole roster's ID numbers.
    return hmac.digest(settings.ID_NUMBER_HASH_KEY.encode(), text.encode(), "sha256").hex()


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
