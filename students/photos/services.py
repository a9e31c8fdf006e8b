"""Importing photo packages as CHSI and the admission office deliver them, and checking 学历照片.

A package is a zip of JPEGs named by 身份证号, 考生号 or 学号.  It is read
member by member straight from disk (a 50,000-photo package of a few GB is
never held in memory), and each photo is checked by content (a real JPEG:
start and end markers, a frame header found by walking the markers, sane
dimensions and size).
Only a broken package (not a zip, a zip bomb, a path that climbs out with
``../``) stops the import; photos that match no student, duplicates and
unreadable files are listed in the report and the rest are imported.
"""

import ctypes
import hashlib
import io
import os
import queue
import secrets
import struct
import threading
import time
import zipfile
import zlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import crypto, signals
from .. import fields as roll_fields
from ..idnumbers import check_digit
from ..models import Photo, Student

MAX_PHOTO_BYTES = 2 * 1024 * 1024
MIN_SIDE, MAX_SIDE = 100, 4000
MAX_MEMBERS = 300_000
MAX_RATIO = 50  # JPEGs barely compress: a member that inflates 50× is not a photo
WRITE_BATCH = 1000
PACK_LIMIT = 1024**3  # bytes of photos per pack file
WRITE_BUFFER = 1024 * 1024  # photo bytes gathered for one writev
_IOV_MAX = 1024  # buffers per writev (Linux's limit)
KEYS = ("sfzh", "ksh", "xh")

# 学历照片 as 图像采集 delivers it (docs/domain.md §6.5).
GRADUATION_SPEC = {"width": 480, "height": 640, "max_bytes": 40 * 1024}


class PhotoPackageError(Exception):
    """The package itself is broken: nothing is imported."""


@dataclass
class PhotoReport:
    matched: int = 0
    replaced: int = 0
    unchanged: int = 0
    unmatched: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict:
        return {
            "matched": self.matched,
            "replaced": self.replaced,
            "unchanged": self.unchanged,
            "unmatched": self.unmatched,
            "errors": self.errors,
        }

    def skip(self, name: str, reason: str):
        self.unmatched.append({"file": name, "reason": str(reason)})


def photo_dir() -> Path:
    return Path(settings.PRIVATE_ROOT) / "photos"


def path_of(storage_name: str) -> Path:
    return photo_dir() / storage_name[:2] / storage_name


def key_of(stem: str) -> str:
    """Recognise what a file is named by: an 18-character ID, a 14-digit 考生号, else a 学号."""
    text = stem.strip().upper()
    if len(text) == 18 and text[:17].isdigit() and check_digit(text[:17]) == text[17]:
        return "sfzh"
    if len(text) == 14 and text.isdigit():
        return "ksh"
    return "xh"


def _check_package(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) > MAX_MEMBERS:
        raise PhotoPackageError(_("压缩包中的文件超过 %(n)s 个") % {"n": MAX_MEMBERS})
    for member in members:
        # As PurePosixPath's is_absolute() and parts, without a path object per member.
        path = member.filename.replace("\\", "/")
        if path.startswith("/") or ".." in path.split("/") or ":" in member.filename:
            raise PhotoPackageError(_("压缩包中有越出目录的路径：%(name)s") % {"name": member.filename})
        if member.file_size > 1024 * 1024 and member.file_size / max(member.compress_size, 1) > MAX_RATIO:
            raise PhotoPackageError(_("压缩包中 %(name)s 的压缩比异常（可能是压缩炸弹）") % {"name": member.filename})
    return members


def photo_check(data: bytes) -> tuple[int, int]:
    """(width, height) of a real JPEG, or ``ValueError`` saying what is wrong with it."""
    if len(data) > MAX_PHOTO_BYTES:
        raise ValueError(_("文件过大（超过 2 MB）"))
    if not data.startswith(b"\xff\xd8\xff"):
        kind = _("PNG 图片") if data.startswith(b"\x89PNG") else _("非 JPEG 文件")
        raise ValueError(_("不是 JPEG 照片（内容为%(kind)s）") % {"kind": kind})
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise ValueError(_("JPEG 文件不完整"))
    width, height = _frame_size(data)
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise ValueError(_("照片尺寸 %(w)s×%(h)s 不合理") % {"w": width, "h": height})
    return width, height


# Start-of-frame markers (baseline, progressive, lossless…): C0–CF but DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


_SEGMENT = struct.Struct(">BBH")  # 0xFF, marker, segment length
_FRAME = struct.Struct(">HH")  # a frame header's height and width


def _frame_size(data: bytes) -> tuple[int, int]:
    """Walk the marker segments to the frame header, as Pillow's JPEG reader does, without Pillow:
    opening each of 50,000 photos with Pillow cost more than reading the package."""
    at, end = 2, len(data)
    segment = _SEGMENT.unpack_from
    while at + 4 <= end:
        prefix, marker, length = segment(data, at)
        if prefix != 0xFF:
            break
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if length < 2:
            break
        if marker in _SOF:
            if length < 8 or at + 9 > end:
                break
            height, width = _FRAME.unpack_from(data, at + 5)
            return width, height
        if marker == 0xDA or marker == 0xD9:  # a scan or the end before any frame header
            break
        at += 2 + length
    raise ValueError(_("照片无法读取"))


def _index(key: str) -> dict[str, int | list[int]]:
    """File stem → the id of the student it names, or the ids of all it may name (ambiguous).
    A plain id, not a list of one, for the usual case: the index holds one entry per student."""
    index = {}
    if key == "xh":
        rows = Student.objects.values_list("student_number", "pk")
    elif key == "ksh":
        rows = Student.objects.exclude(exam_number="").values_list("exam_number", "pk")
    else:
        rows = Student.objects.values_list("id_number_hash", "pk")
    for value, pk in rows.iterator(chunk_size=5000):
        value = value.upper() if key != "sfzh" else value
        found = index.setdefault(value, pk)
        if found != pk:
            index[value] = [*found, pk] if isinstance(found, list) else [found, pk]
    return index


def photos_import(*, path, kind: str, key: str | None = None, dry_run: bool = False) -> PhotoReport:
    """Import a photo package; see the module docstring for what stops it and what is only reported.

    One transaction for the whole package: if anything fails, no row is saved and the pack files
    the import wrote are removed.  Only a batch of rows is held at once (memory stays flat).
    """
    report = PhotoReport(dry_run=dry_run)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        report.errors.append({"file": None, "message": _("文件不是 zip 压缩包")})
        return report
    writer = _PackWriter()
    try:
        # Each stops (``with``) before what encloses it: the hasher's thread before the saver's,
        # and both before the transaction ends, committed or rolled back.
        with archive, transaction.atomic(), _Saver(kind) as saver:
            members = _check_package(archive)
            indexes: dict[str, dict] = {}
            existing: dict[int, str] = dict(
                Photo.objects.filter(kind=kind).values_list("student_id", "sha256").iterator(chunk_size=5000)
            )
            seen: dict[int, int] = {}  # student id → the position of their first photo in ``members``
            with _Hasher(report, existing, writer, dry_run) as hasher:
                for position, member in enumerate(members):
                    name = member.filename
                    if _base_name(name).startswith(".") or "__MACOSX" in name:
                        continue  # Finder's resource forks are not photos
                    if member.file_size > MAX_PHOTO_BYTES:
                        report.skip(name, _("文件过大（超过 2 MB）"))
                        continue
                    try:
                        data = _read_member(archive, member)
                    except (zipfile.BadZipFile, zlib.error) as exc:
                        raise PhotoPackageError(_("压缩包已损坏：%(name)s") % {"name": name}) from exc
                    try:
                        width, height = photo_check(data)
                    except ValueError as exc:
                        report.skip(name, exc)
                        continue
                    stem = _stem(_base_name(name.replace("\\", "/"))).strip().upper()
                    member_key = key or key_of(stem)
                    if member_key not in indexes:
                        saver.finish()
                        indexes[member_key] = _index(member_key)
                    student_id = indexes[member_key].get(crypto.keyed_hash(stem) if member_key == "sfzh" else stem)
                    if student_id is None:
                        report.skip(name, _("没有对应的学生"))
                        continue
                    if isinstance(student_id, list):
                        report.skip(name, _("对应 %(n)s 名学生，无法确定") % {"n": len(student_id)})
                        continue
                    if student_id in seen:
                        other = members[seen[student_id]].filename
                        report.skip(name, _("与 %(other)s 是同一名学生的照片，已忽略") % {"other": other})
                        continue
                    seen[student_id] = position
                    for rows in hasher.add(student_id, data, width, height):
                        saver.save(rows)
                for rows in hasher.close():
                    saver.save(rows)
            saver.finish()
            writer.close()
    except PhotoPackageError as exc:
        report.errors.append({"file": None, "message": str(exc)})
        report.matched = report.replaced = report.unchanged = 0
        report.unmatched = []
        writer.discard()
    except BaseException:
        writer.discard()  # the rows were rolled back: their bytes go too
        raise
    return report


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
    """A member's bytes, as ``archive.read(member)`` gives them.

    Packages come stored (JPEGs do not compress): such a member is read with one call after its
    local header and checked against its CRC, without ZipFile.read's file object, seeks and
    decompressor per member, which cost more than the read itself at 50,000 photos.
    """
    if member.compress_type != zipfile.ZIP_STORED or member.flag_bits & 0x1 or member.compress_size != member.file_size:
        return archive.read(member)  # deflated or encrypted: the general way
    handle = archive.fp.fileno()
    # The local header, the name and extra field (usually as long as in the central directory) and
    # the data in one read; a second read only when the local extra field is longer than that.
    guess = 30 + 3 * len(member.orig_filename) + len(member.extra) + 64
    chunk = os.pread(handle, guess + member.file_size, member.header_offset)
    if len(chunk) < 30 or chunk[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"Bad magic number for file header of {member.filename!r}")
    name_length, extra_length = struct.unpack_from("<HH", chunk, 26)
    start = 30 + name_length + extra_length
    if start + member.file_size <= len(chunk):
        data = chunk[start : start + member.file_size]
    else:
        data = os.pread(handle, member.file_size, member.header_offset + start)
    if len(data) != member.file_size or zlib.crc32(data) != member.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {member.filename!r}")
    return data


def _base_name(name: str) -> str:
    return name[name.rfind("/") + 1 :]


def _stem(base: str) -> str:
    """As ``PurePosixPath(base).stem``, without building a path object per photo."""
    dot = base.rfind(".")
    return base[:dot] if 0 < dot < len(base) - 1 else base


def packs_dir() -> Path:
    return photo_dir() / "packs"


def pack_path(pack: str) -> Path:
    return packs_dir() / pack


class _PackWriter:
    """Appends an import's photos to its own pack file(s) and says where each one is.

    One private file per photo cost ~180 µs of kernel time each (creating the file), more than
    reading the package; appending to one file is a plain sequential write.  A new pack is started
    every ``PACK_LIMIT`` bytes, so a pack never outgrows what a backup or a copy handles easily.
    """

    def __init__(self):
        self.packs: list[str] = []
        self.handle: int | None = None
        self.offset = 0
        self.buffered: list[bytes] = []
        self.buffered_bytes = 0

    def _start(self):
        self.close()
        os.makedirs(packs_dir(), mode=0o700, exist_ok=True)
        name = secrets.token_hex(16) + ".pack"
        self.handle = os.open(pack_path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.packs.append(name)
        self.offset = 0

    def write(self, data: bytes) -> tuple[str, int]:
        """Where ``data`` goes.  It is written with the photos after it, one ``writev`` per
        ``WRITE_BUFFER`` bytes (about 50 photos, one system call instead of 50), at the latest by
        ``close``: nothing reads a pack before the import commits."""
        if self.handle is None or self.offset + len(data) > PACK_LIMIT:
            self._start()
        offset = self.offset
        self.offset += len(data)
        self.buffered.append(data)
        self.buffered_bytes += len(data)
        if self.buffered_bytes >= WRITE_BUFFER:
            self._flush()
        return self.packs[-1], offset

    def _flush(self):
        buffered, self.buffered, self.buffered_bytes = self.buffered, [], 0
        for start in range(0, len(buffered), _IOV_MAX):
            group = buffered[start : start + _IOV_MAX]
            written = os.writev(self.handle, group)
            for data in group:  # after a short write (rare on a regular file), the rest one by one
                if written >= len(data):
                    written -= len(data)
                    continue
                view = memoryview(data)[written:]
                written = 0
                while view:
                    view = view[os.write(self.handle, view) :]

    def close(self):
        if self.handle is not None:
            self._flush()
            os.close(self.handle)
            self.handle = None

    def discard(self):
        self.buffered, self.buffered_bytes = [], 0
        self.close()
        for name in self.packs:
            pack_path(name).unlink(missing_ok=True)
        self.packs.clear()


HAND_OFF = 1024 * 1024  # photo bytes given to the hasher's thread at once (~50 photos)


class _Hasher:
    """Hashes the matched photos, drops the unchanged ones and appends the rest to the pack, in a
    thread of its own, while the main thread reads and checks the next members.

    SHA-256 and ``writev`` release the GIL, so this work runs on the other core.  Photos are handed
    over ~``HAND_OFF`` bytes at a time (one hand-off per photo cost more in locking than it saved),
    through a queue of at most ``_QUEUED`` hand-offs, so memory stays flat.  ``add`` and ``close``
    give back the rows ready for the saver, ``WRITE_BATCH`` at a time; an exception in the thread
    is raised again in the main thread by the next ``add`` or by ``close``.  The main thread does
    not touch the pack writer until the thread has stopped (``close`` or leaving ``with``).
    """

    _QUEUED = 3

    def __init__(self, report: PhotoReport, existing: dict[int, str], writer: "_PackWriter", dry_run: bool):
        self.report, self.existing, self.writer, self.dry_run = report, existing, writer, dry_run
        self.inbox: queue.Queue = queue.Queue(maxsize=self._QUEUED)
        self.done: queue.Queue = queue.Queue()  # row batches for the saver
        self.pending: list[tuple] = []
        self.pending_bytes = 0
        self.rows: list[tuple] = []
        self.error: BaseException | None = None
        self.abandoned = False
        self.thread = threading.Thread(target=self._run, name="photo-hasher", daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, exc_type, *exc):
        if self.thread.is_alive():  # left early (an exception): drop the queued work, stop the thread
            self.abandoned = True
            self.inbox.put(None)
            self.thread.join()

    def add(self, student_id: int, data: bytes, width: int, height: int) -> list[list[tuple]]:
        self.pending.append((student_id, data, width, height))
        self.pending_bytes += len(data)
        if self.pending_bytes < HAND_OFF:
            return []
        self._hand_off()
        return self._ready()

    def close(self) -> list[list[tuple]]:
        """Hand over the last photos, wait for the thread to finish; the rows still to save."""
        if self.pending:
            self._hand_off()
        self.inbox.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
        ready = self._ready()
        return ready + [self.rows] if self.rows else ready

    def _hand_off(self):
        if self.error is not None:
            raise self.error
        self.inbox.put(self.pending)
        self.pending, self.pending_bytes = [], 0

    def _ready(self) -> list[list[tuple]]:
        ready = []
        while not self.done.empty():
            ready.append(self.done.get_nowait())
        return ready

    def _run(self):
        while (photos := self.inbox.get()) is not None:
            if self.error is not None or self.abandoned:
                continue  # keep taking hand-offs so the main thread never blocks on a full queue
            try:
                self._hash(photos)
            except BaseException as exc:  # raised again in the main thread
                self.error = exc

    def _hash(self, photos: list[tuple]):
        report, existing, writer, rows = self.report, self.existing, self.writer, self.rows
        sha256 = hashlib.sha256
        for student_id, data, width, height in photos:
            sha = sha256(data).hexdigest()
            old_sha = existing.get(student_id)
            if old_sha == sha:
                report.unchanged += 1  # the identical photo again: nothing is written
                continue
            if old_sha is None:
                report.matched += 1
            else:
                report.replaced += 1
            if self.dry_run:
                continue
            pack, offset = writer.write(data)
            rows.append((student_id, pack, offset, sha, width, height, len(data), old_sha is not None))
            if len(rows) >= WRITE_BATCH:
                self.done.put(rows)
                self.rows = rows = []


_COLUMNS = ("student_id", "kind", "storage_name", "pack", "offset", "sha256", "width", "height", "size", "imported_at")
_OLD = ("student_id", "storage_name", "pack", "offset", "size", "sha256", "width", "height")


class _Saver:
    """Saves the rows of an import batch by batch, inside the import's transaction.

    On PostgreSQL a second thread COPYs each batch into a temporary table and upserts it from there,
    on the import's own connection (so in its transaction): the database works on the other core
    while the main thread reads on, and COPY costs half of a 10,000-parameter INSERT.  The main
    thread then does the ORM part of each batch (record versions, signals) once its rows are in,
    never while the thread is using the connection.  Elsewhere (SQLite) each batch is one INSERT,
    in the main thread.  At most two batches are held.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self.threaded = connection.vendor == "postgresql"
        self.pending = None
        self.pool = None
        self.foreign_key = None

    def __enter__(self):
        if self.threaded:
            quote = connection.ops.quote_name
            table = quote(Photo._meta.db_table)
            columns = ", ".join(quote(c) for c in _column_names(_COLUMNS))
            temporary = quote("photo_import_" + secrets.token_hex(6))
            with connection.cursor() as cursor:
                cursor.execute(
                    f"CREATE TEMPORARY TABLE {temporary} ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA"
                )
                # The rows' student foreign key (deferred, as Django declares it) is checked batch by
                # batch in the saver's thread, not 50,000 at once at commit while the import waits.
                self.foreign_key = _student_foreign_key(cursor)
                if self.foreign_key:
                    cursor.execute(f"SET CONSTRAINTS {quote(self.foreign_key)} IMMEDIATE")
            # The statements the thread runs, written here: Django's connection is the main thread's.
            self.old_sql = (
                f"SELECT {', '.join(quote(c) for c in _column_names(_OLD))} FROM {table} "
                f"WHERE {quote('kind')} = %s AND {quote('student_id')} = ANY(%s)"
            )
            self.copy_sql = f"COPY {temporary} ({columns}) FROM STDIN"
            self.upsert_sql = (
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {temporary} {_on_conflict()}; "
                f"TRUNCATE {temporary}"
            )
            self.raw = connection.connection  # psycopg's own connection: usable from another thread
            self.pool = ThreadPoolExecutor(max_workers=1)
        return self

    def __exit__(self, exc_type, *exc):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.foreign_key and exc_type is None:  # as declared again, for the rest of an enclosing transaction
            with connection.cursor() as cursor:
                cursor.execute(f"SET CONSTRAINTS {connection.ops.quote_name(self.foreign_key)} DEFERRED")

    def save(self, batch: list[tuple]):
        if not self.threaded:
            with transaction.atomic():
                _after_save(self.kind, batch, _upsert_values(self.kind, batch))
            return
        # One statement at a time on the connection: a COPY in progress does not survive another
        # thread's query (psycopg releases its lock while it feeds the COPY).
        self.finish()
        self.pending = (batch, self.pool.submit(self._upsert_copy, batch))

    def finish(self):
        """Wait for the batch in the thread and do its ORM part; call before using the database."""
        if self.pending is not None:
            batch, future = self.pending
            self.pending = None
            _after_save(self.kind, batch, future.result())

    def _upsert_copy(self, batch: list[tuple]) -> dict:
        """In the saver's thread: the replaced photos' rows as they were, then the batch upserted."""
        now = timezone.now().isoformat()
        lines = "".join(
            f"{student_id}\t{self.kind}\t\\N\t{pack}\t{offset}\t{sha}\t{width}\t{height}\t{size}\t{now}\n"
            for student_id, pack, offset, sha, width, height, size, _replaced in batch
        )
        with self.raw.cursor() as cursor:
            old = {}
            replaced = [item[0] for item in batch if item[7]]
            if replaced:
                cursor.execute(self.old_sql, [self.kind, replaced])
                old = {row[0]: row for row in cursor.fetchall()}
            cursor.copy_expert(self.copy_sql, io.StringIO(lines))
            cursor.execute(self.upsert_sql)
        return old


def _student_foreign_key(cursor) -> str | None:
    constraints = connection.introspection.get_constraints(cursor, Photo._meta.db_table)
    column = Photo._meta.get_field("student").column
    return next((name for name, c in constraints.items() if c["foreign_key"] and c["columns"] == [column]), None)


def _column_names(names) -> list[str]:
    return [Photo._meta.get_field(name.removesuffix("_id")).column for name in names]


def _on_conflict() -> str:
    quote = connection.ops.quote_name
    updates = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in _column_names(_COLUMNS[2:]))
    return f"ON CONFLICT ({quote('student_id')}, {quote('kind')}) DO UPDATE SET {updates}"


def _upsert_values(kind: str, batch: list[tuple]) -> dict:
    """The replaced photos' rows as they were, then the batch upserted in one portable statement
    (PostgreSQL and SQLite; a model instance per photo cost more than the statement)."""
    now = timezone.now()
    quote = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    params = [
        value
        for student_id, pack, offset, sha, width, height, size, _replaced in batch
        for value in (student_id, kind, None, pack, offset, sha, width, height, size, now)
    ]
    replaced = [item[0] for item in batch if item[7]]
    old = {}
    if replaced:
        old = {row[0]: row for row in Photo.objects.filter(kind=kind, student_id__in=replaced).values_list(*_OLD)}
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(Photo._meta.db_table)} ({', '.join(quote(c) for c in _column_names(_COLUMNS))}) "
            f"VALUES {', '.join([row] * len(batch))} {_on_conflict()}",
            params,
        )
    return old


def _after_save(kind: str, batch: list[tuple], old: dict):
    """Once a batch's rows point at the new photos: the replaced photos' bytes are erased on commit.

    Students whose photo changed get a new record version (a page showing the old photo cannot
    confirm the new one), and the apps built on the roll hear of it in the same transaction
    (verification reopens the answers on the old photo).
    """
    field = next(f for f in roll_fields.PHOTO_FIELDS if f.photo == kind)
    old_photos = {student_id: Photo(**dict(zip(_OLD, row, strict=True))) for student_id, row in old.items()}
    changes = {}
    for student_id, _pack, _offset, sha, width, height, size, _replaced in batch:
        if student_id in old_photos:
            new = Photo(sha256=sha, width=width, height=height, size=size)
            changes[student_id] = {field.key: (field.display(old_photos[student_id]), field.display(new))}
    if changes:
        Student.objects.filter(pk__in=list(changes)).update(version=F("version") + 1)
    added = [item[0] for item in batch if item[0] not in old_photos]
    signals.photos_imported.send(sender=Photo, kind=kind, changes=changes, added=added)
    if old_photos:
        doomed = [_location(photo) for photo in old_photos.values()]
        transaction.on_commit(lambda: photos_erase(doomed))


def _location(photo: Photo) -> tuple:
    return (photo.storage_name, photo.pack, photo.offset, photo.size)


def photo_bytes(photo: Photo) -> bytes | None:
    """The photo's JPEG as stored (from its pack, or its own file for photos imported before packs),
    or None when it is gone."""
    if photo.pack:
        try:
            handle = os.open(pack_path(photo.pack), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            data = os.pread(handle, photo.size, photo.offset)
        finally:
            os.close(handle)
    elif photo.storage_name:
        try:
            data = path_of(photo.storage_name).read_bytes()
        except FileNotFoundError:
            return None
    else:
        return None
    # Erased bytes (a photo deleted since its row was read) are zeros, not a JPEG.
    return data if len(data) == photo.size and data.startswith(b"\xff\xd8") else None


# fallocate(2) flags: give the erased range's blocks back to the file system, keeping the file's size.
_PUNCH_HOLE = 0x02 | 0x01
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _fallocate = _libc.fallocate
    _fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
except (AttributeError, OSError):  # not Linux
    _fallocate = None


def photos_erase(locations):
    """Really remove photos' bytes, after their rows are gone: a photo's range in its pack is
    overwritten with zeros (then punched out where the file system allows), a pack in which no
    photo is left is deleted, and a photo stored in a file of its own loses the file.

    ``locations`` are ``(storage_name, pack, offset, size)`` of deleted or replaced photos.
    """
    by_pack = defaultdict(list)
    for storage_name, pack, offset, size in locations:
        if pack:
            by_pack[pack].append((offset, size))
        elif storage_name:
            path_of(storage_name).unlink(missing_ok=True)
    for pack, ranges in by_pack.items():
        if not Photo.objects.filter(pack=pack).exists():
            pack_path(pack).unlink(missing_ok=True)
            continue
        try:
            handle = os.open(pack_path(pack), os.O_WRONLY)
        except FileNotFoundError:
            continue
        try:
            for offset, size in ranges:
                zeros = bytes(size)
                written = 0
                while written < size:
                    written += os.pwrite(handle, zeros[written:], offset + written)
                if _fallocate is not None:
                    _fallocate(handle, _PUNCH_HOLE, offset, size)  # best effort: the zeros are what count
            os.fsync(handle)
        finally:
            os.close(handle)


@receiver(post_delete, sender=Photo)
def _photo_bytes_go_with_their_row(sender, instance, **kwargs):
    # Also for a student deleted with their photos (cascade); the bytes go once the delete commits.
    location = _location(instance)
    transaction.on_commit(lambda: photos_erase([location]))


def photos_sweep_orphans(*, now: float | None = None, min_age: float = 86400) -> int:
    """Delete pack files no photo row names and older than ``min_age`` seconds: an import whose
    rows were rolled back by an outer transaction, or a killed process.  Returns the number deleted."""
    folder = packs_dir()
    if not folder.is_dir():
        return 0
    now = now if now is not None else time.time()
    known = set(Photo.objects.exclude(pack="").values_list("pack", flat=True).distinct())
    removed = 0
    for path in folder.iterdir():
        if path.name in known or not path.name.endswith(".pack"):
            continue
        try:
            if now - path.stat().st_mtime < min_age:
                continue  # an import may still be writing it
            path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
    return removed


def photo_spec_problems(photo: Photo) -> list[str]:
    """How a 学历照片 departs from 图像采集's specification (480×640 px, JPEG, ≤ 40 KB, blue background)."""
    problems = []
    spec = GRADUATION_SPEC
    if (photo.width, photo.height) != (spec["width"], spec["height"]):
        problems.append(_("尺寸应为 480×640 像素，实为 %(w)s×%(h)s") % {"w": photo.width, "h": photo.height})
    if photo.size > spec["max_bytes"]:
        problems.append(_("文件应不超过 40 KB，实为 %(kb)s KB") % {"kb": round(photo.size / 1024)})
    if not _blue_background(photo_bytes(photo)):
        problems.append(_("背景看起来不是蓝色"))
    return problems


def _blue_background(data: bytes | None) -> bool:
    """A simple colour test: the top corners of the photo are mostly blue."""
    if data is None:
        return False
    from PIL import Image, UnidentifiedImageError  # here only: importing Pillow slowed every command's start-up

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (120, 160))
            small = image.convert("RGB").resize((12, 16))
    except (OSError, UnidentifiedImageError):
        return False
    corners = [small.getpixel((x, y)) for x in (0, 1, 10, 11) for y in (0, 1)]
    blue = [1 for r, g, b in corners if b > 120 and b > r + 40 and b > g + 10]
    return len(blue) >= len(corners) * 3 // 4


def photos_missing(*, kind: str, students):
    """Students of ``students`` with no photo of ``kind`` (for the collection list)."""
    return students.exclude(photos__kind=kind)
