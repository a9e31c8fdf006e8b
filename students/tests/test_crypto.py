"""ID numbers are encrypted at rest; a database dump alone does not reveal them."""

import io

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import FieldError
from django.core.management import call_command
from django.db import connection

from students import crypto
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
