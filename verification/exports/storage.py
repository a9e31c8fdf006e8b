"""Export files at rest: written encrypted, read back decrypted (docs/privacy.md, docs/deploy.md §7).

Stored exports and department digests may hold full ID numbers (the CHSI
correction list), so the file on disk is encrypted with the same keys as ID
numbers (``students.crypto``, Fernet under ``ID_NUMBER_KEYS``): a copy of the
private folder is unreadable without the keys, and a new key rotates them too.
The file is written under a temporary name and renamed, so a half-written file
is never served; a failed write leaves nothing behind.

The API other apps use (notices.digests builds its daily files with it)::

    rows = storage.write_export(exporter, params, path, exported_by=..., user=None)
    data = storage.read_export(path)  # the .xlsx bytes, or Http404 if the file is gone
    storage.rotate_folder(folder)  # manage.py rotate_id_keys, through students.signals.keys_rotated
"""

import io
from pathlib import Path

from django.http import Http404

from students import crypto

from . import writer

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Files written before encryption at rest are plain .xlsx (a zip); they expire within a day.
_ZIP_MAGIC = b"PK\x03\x04"


def write_export(exporter, params, path, *, exported_by, user=None) -> int:
    """Build ``exporter`` with ``params`` and store it encrypted at ``path``; returns the number of data rows."""
    buffer = io.BytesIO()
    rows = writer.write_xlsx(exporter, user, params, buffer, exported_by=exported_by)
    write_encrypted(path, buffer.getvalue())
    return rows


def write_encrypted(path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        partial.write_bytes(crypto.fernet().encrypt(data))
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def rotate_folder(folder) -> int:
    """Re-encrypt every stored file in ``folder`` under the first key (``manage.py rotate_id_keys``).

    A plain file from before encryption at rest is encrypted too.  Returns how many files were rewritten.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    done = 0
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.endswith(".part"):
            continue
        try:
            data = read_export(path)
        except Http404:  # expired and deleted meanwhile
            continue
        write_encrypted(path, data)
        done += 1
    return done


def read_export(path) -> bytes:
    """The stored file's plain bytes; ``Http404`` if it is gone (expired, purged)."""
    path = Path(path)
    if not path.is_file():
        raise Http404
    data = path.read_bytes()
    if data.startswith(_ZIP_MAGIC):
        return data
    return crypto.fernet().decrypt(data)
