"""ID numbers are encrypted at rest; a database dump alone does not reveal them."""

import base64
import hmac
import io

import pytest
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.core.exceptions import FieldError
from django.core.management import call_command
from django.db import connection

from students import crypto
from students.management.commands.rotate_id_keys import encrypted_models
from students.models import Student
from students.tests.factories import StudentFactory, valid_id_number
from students.tests.rosters import as_table, base_rows, write_xlsx

pytestmark = pytest.mark.django_db


def raw_rows():
    with connection.cursor() as cursor:
        cursor.execute("SELECT id_number, id_number_hash FROM students_student ORDER BY id")
        return cursor.fetchall()


def test_the_database_holds_no_plain_id_number(student):
    [(stored, hashed)] = raw_rows()
    assert student.id_number not in stored
    assert student.id_number[-6:] not in stored
    assert hashed == crypto.keyed_hash(student.id_number) and len(hashed) == 64
    # The application still reads the real value.
    assert Student.objects.get(pk=student.pk).id_number == student.id_number


def test_imported_id_numbers_are_encrypted_and_compared_by_hash(tmp_path):
    from students.services import roster_import

    rows = base_rows(3)
    header, table = as_table(rows)
    path = write_xlsx(tmp_path / "r.xlsx", header, table)
    assert roster_import(path=path).created == 3
    dump = " ".join(value for value, _hash in raw_rows())
    for row in rows:
        assert row["SFZH"] not in dump
    # Re-import: unchanged (hash comparison), no decryption needed to know it.
    again = roster_import(path=path)
    assert again.unchanged == 3 and again.updated == 0


def test_equality_lookups_on_ciphertext_are_refused(student):
    # A silent "no match" would hide bugs; the keyed hash is the way to search.
    with pytest.raises(FieldError):
        list(Student.objects.filter(id_number=student.id_number))
    assert Student.objects.get(id_number_hash=crypto.keyed_hash(student.id_number)) == student


def test_serialisation_never_writes_the_plain_value(student):
    field = Student._meta.get_field("id_number")
    assert field.value_to_string(student) == "[encrypted]"


def test_keys_rotate_without_losing_a_record(settings):
    old_key = settings.ID_NUMBER_KEYS[0]
    students = [StudentFactory(id_number=valid_id_number(n)) for n in range(3)]
    new_key = Fernet.generate_key().decode()
    settings.ID_NUMBER_KEYS = [new_key, old_key]
    # Old rows still read under the combined key list.
    assert [s.id_number for s in Student.objects.order_by("pk")] == [s.id_number for s in students]
    call_command("rotate_id_keys", stdout=io.StringIO())
    settings.ID_NUMBER_KEYS = [new_key]
    assert [s.id_number for s in Student.objects.order_by("pk")] == [s.id_number for s in students]
    settings.ID_NUMBER_KEYS = [old_key]
    with pytest.raises(ValueError, match="ID_NUMBER_KEYS"):
        list(Student.objects.all())


def test_a_new_hash_key_is_applied_by_rotation(settings, student):
    settings.ID_NUMBER_HASH_KEY = "another-hash-key-" + "z" * 40
    call_command("rotate_id_keys", stdout=io.StringIO())
    assert Student.objects.get(id_number_hash=crypto.keyed_hash(student.id_number)) == student


def test_rotation_leaves_nothing_under_the_old_key(settings):
    """Every encrypted column (claimed values, robot, channel and webhook secrets …) and every stored export
    and digest file reads with the new key alone after rotate_id_keys."""
    from notices.digests import digest_dir
    from notices.models import ChannelConfig, DepartmentChannel, WebhookEndpoint
    from students.tests.factories import DepartmentFactory
    from verification.exports import services as export_services
    from verification.exports import storage
    from verification.models import Flag
    from verification.tests.factories import ChecklistFactory

    old_key = settings.ID_NUMBER_KEYS[0]
    checklist = ChecklistFactory(student=StudentFactory(id_number=valid_id_number(7)))
    Flag.objects.create(
        checklist=checklist, field_code="XM", recorded_value="王小明", claimed_value="王晓明", record_version=1
    )
    DepartmentChannel.objects.create(
        department=DepartmentFactory(), robot="wecom", webhook_url="https://qyapi.example/?key=k", signing_secret="s1"
    )
    ChannelConfig.objects.create(name="sms", secret="sms-secret")
    WebhookEndpoint.objects.create(name="教务", url="https://jw.example/hook?token=t", secret="hook-secret")
    export_file = export_services.export_dir() / "a.xlsx.enc"
    digest_file = digest_dir() / "b.xlsx.enc"
    legacy_digest = digest_dir() / "c.xlsx"  # written before encryption at rest: a plain workbook
    storage.write_encrypted(export_file, b"PK\x03\x04export")
    storage.write_encrypted(digest_file, b"PK\x03\x04digest")
    legacy_digest.write_bytes(b"PK\x03\x04legacy")
    columns = [
        (model._meta.db_table, field.column)
        for model, fields in encrypted_models()
        for field in fields
        if isinstance(field, crypto.EncryptedTextField)
    ]
    assert len(columns) >= 8  # students, source records, flags, robots, channels, webhooks

    new_key = Fernet.generate_key().decode()
    settings.ID_NUMBER_KEYS = [new_key, old_key]
    out = io.StringIO()
    call_command("rotate_id_keys", stdout=out)

    new_only = Fernet(new_key.encode())
    with connection.cursor() as cursor:
        for table, column in columns:
            cursor.execute(f'SELECT "{column}" FROM "{table}"')
            for (value,) in cursor.fetchall():
                if value:
                    new_only.decrypt(value.encode())  # raises InvalidToken if still under the old key
    settings.ID_NUMBER_KEYS = [new_key]
    assert Flag.objects.get().claimed_value == "王晓明"
    assert WebhookEndpoint.objects.get().secret == "hook-secret"
    assert DepartmentChannel.objects.get().webhook_url == "https://qyapi.example/?key=k"
    assert ChannelConfig.objects.get().secret == "sms-secret"
    assert new_only.decrypt(export_file.read_bytes()) == b"PK\x03\x04export"
    assert new_only.decrypt(digest_file.read_bytes()) == b"PK\x03\x04digest"
    assert new_only.decrypt(legacy_digest.read_bytes()) == b"PK\x03\x04legacy"
    assert "Re-encrypted 1 stored export files" in out.getvalue()
    assert "Re-encrypted 2 digest files" in out.getvalue()


def test_bulk_decryption_reads_what_fernet_wrote_and_refuses_what_it_would_refuse(settings):
    old_key = settings.ID_NUMBER_KEYS[0]
    old_tokens = [crypto.encrypt(value) for value in ("110101200703041234", "张三")]
    new_key = Fernet.generate_key().decode()
    settings.ID_NUMBER_KEYS = [new_key, old_key]  # a rotation half done: rows under both keys
    values = ["", None, "x", "A" * 15, "B" * 16, "回族" * 50, *(valid_id_number(i) for i in range(50))]
    tokens = [crypto.encrypt(v) if v else v for v in values]

    assert crypto.decrypt_many([*tokens, *old_tokens]) == [*values, "110101200703041234", "张三"]

    tampered = bytearray(base64.urlsafe_b64decode(tokens[-1]))
    tampered[30] ^= 1  # one bit of the ciphertext
    with pytest.raises(ValueError):
        crypto.decrypt_many([base64.urlsafe_b64encode(bytes(tampered)).decode()])
    with pytest.raises(ValueError):
        crypto.decrypt_many(["not a token"])
    settings.ID_NUMBER_KEYS = [new_key]
    with pytest.raises(ValueError, match="wrong or missing key"):
        crypto.decrypt_many(old_tokens)


def test_bulk_decryption_refuses_bad_padding_under_a_valid_signature(settings):
    key = settings.ID_NUMBER_KEYS[0]
    raw = base64.urlsafe_b64decode(key)
    iv = bytes(range(16))
    encryptor = Cipher(algorithms.AES(raw[16:]), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(b"110101200703041\x00") + encryptor.finalize()  # ends in 0: not PKCS7
    body = b"\x80" + (1_767_225_600).to_bytes(8, "big") + iv + ciphertext
    token = base64.urlsafe_b64encode(body + hmac.digest(raw[:16], body, "sha256")).decode()
    with pytest.raises(InvalidToken):
        Fernet(key).decrypt(token)  # Fernet refuses it too

    with pytest.raises(ValueError, match="padding"):
        crypto.decrypt_many([crypto.encrypt("110101200703041234"), token])


def test_bulk_encryption_makes_the_tokens_fernet_makes(settings):
    values = ["x", "A" * 15, "B" * 16, "回族" * 50, "E12345678", *(valid_id_number(i) for i in range(50))]
    ivs = bytes(range(256)) * 5  # any 16 bytes per value
    at = 1_767_225_600
    fernet = Fernet(settings.ID_NUMBER_KEYS[0])

    tokens = crypto._encrypt_many(values, ivs=ivs[: 16 * len(values)], at=at)

    assert tokens == [
        fernet._encrypt_from_parts(v.encode(), at, ivs[16 * i : 16 * i + 16]).decode() for i, v in enumerate(values)
    ]
    fresh = crypto.encrypt_many(values)
    assert [crypto.decrypt(token) for token in fresh] == values == crypto.decrypt_many(fresh)
    assert len(set(crypto.encrypt_many(["same", "same"]))) == 2  # a random IV each
