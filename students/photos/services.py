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

import hashlib
import os
import secrets
import zipfile
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from PIL import Image, UnidentifiedImageError

from .. import crypto, signals
from .. import fields as roll_fields
from ..idnumbers import check_digit
from ..models import Photo, Student

MAX_PHOTO_BYTES = 2 * 1024 * 1024
MIN_SIDE, MAX_SIDE = 100, 4000
MAX_MEMBERS = 300_000
MAX_RATIO = 50  # JPEGs barely compress: a member that inflates 50× is not a photo
WRITE_BATCH = 1000
# Hashing and writing run beside the reading (two cores); a bounded number of photos is held meanwhile.
WORKERS = 2
IN_FLIGHT = 32
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
        path = PurePosixPath(member.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or ":" in member.filename:
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


def _frame_size(data: bytes) -> tuple[int, int]:
    """Walk the marker segments to the frame header, as Pillow's JPEG reader does, without Pillow:
    opening each of 50,000 photos with Pillow cost more than reading the package."""
    at, end = 2, len(data)
    while at + 4 <= end:
        if data[at] != 0xFF:
            break
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if length < 2:
            break
        if marker in _SOF:
            if length < 8 or at + 9 > end:
                break
            return int.from_bytes(data[at + 7 : at + 9], "big"), int.from_bytes(data[at + 5 : at + 7], "big")
        if marker in (0xDA, 0xD9):  # a scan or the end before any frame header
            break
        at += 2 + length
    raise ValueError(_("照片无法读取"))


def _index(key: str) -> dict[str, list[int]]:
    """File stem → ids of the students it may name (two ids = ambiguous)."""
    index = defaultdict(list)
    if key == "xh":
        rows = Student.objects.values_list("student_number", "pk")
    elif key == "ksh":
        rows = Student.objects.exclude(exam_number="").values_list("exam_number", "pk")
    else:
        rows = Student.objects.values_list("id_number_hash", "pk")
    for value, pk in rows.iterator(chunk_size=5000):
        index[value.upper() if key != "sfzh" else value].append(pk)
    return index


def photos_import(*, path, kind: str, key: str | None = None, dry_run: bool = False) -> PhotoReport:
    """Import a photo package; see the module docstring for what stops it and what is only reported.

    The main thread reads and checks each member while worker threads hash and write the previous
    ones (hashlib and file writes release the GIL); at most ``IN_FLIGHT`` photos are held at once.
    """
    report = PhotoReport(dry_run=dry_run)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        report.errors.append({"file": None, "message": _("文件不是 zip 压缩包")})
        return report
    writer = _Writer()
    existing: dict[int, str] = {}
    batch: list[tuple] = []

    def store(student_id: int, data: bytes, width: int, height: int):
        sha = hashlib.sha256(data).hexdigest()
        if existing.get(student_id) == sha:
            return None  # the identical photo again
        storage_name = "" if dry_run else writer.write(data)
        return (student_id, storage_name, sha, width, height, len(data), student_id in existing)

    def collect(future):
        item = future.result()
        if item is None:
            report.unchanged += 1
            return
        if item[6]:
            report.replaced += 1
        else:
            report.matched += 1
        if not dry_run:
            batch.append(item)
            if len(batch) >= WRITE_BATCH:
                _save(kind, batch)
                writer.committed(batch)
                batch.clear()

    try:
        with archive, ThreadPoolExecutor(max_workers=WORKERS) as pool:
            members = _check_package(archive)
            indexes: dict[str, dict] = {}
            existing.update(
                Photo.objects.filter(kind=kind).values_list("student_id", "sha256").iterator(chunk_size=5000)
            )
            seen: dict[int, int] = {}  # student id → the position of their first photo in ``members``
            pending: deque = deque()
            for position, member in enumerate(members):
                name = member.filename
                stem = PurePosixPath(name.replace("\\", "/")).stem
                if PurePosixPath(name).name.startswith(".") or "__MACOSX" in name:
                    continue  # Finder's resource forks are not photos
                if member.file_size > MAX_PHOTO_BYTES:
                    report.skip(name, _("文件过大（超过 2 MB）"))
                    continue
                data = archive.read(member)
                try:
                    width, height = photo_check(data)
                except ValueError as exc:
                    report.skip(name, exc)
                    continue
                member_key = key or key_of(stem)
                if member_key not in indexes:
                    indexes[member_key] = _index(member_key)
                lookup = crypto.keyed_hash(stem.strip().upper()) if member_key == "sfzh" else stem.strip().upper()
                candidates = indexes[member_key].get(lookup, [])
                if not candidates:
                    report.skip(name, _("没有对应的学生"))
                    continue
                if len(candidates) > 1:
                    report.skip(name, _("对应 %(n)s 名学生，无法确定") % {"n": len(candidates)})
                    continue
                student_id = candidates[0]
                if student_id in seen:
                    other = members[seen[student_id]].filename
                    report.skip(name, _("与 %(other)s 是同一名学生的照片，已忽略") % {"other": other})
                    continue
                seen[student_id] = position
                pending.append(pool.submit(store, student_id, data, width, height))
                if len(pending) >= IN_FLIGHT:
                    collect(pending.popleft())
            while pending:
                collect(pending.popleft())
            if batch:
                _save(kind, batch)
                writer.committed(batch)
    except PhotoPackageError as exc:
        report.errors.append({"file": None, "message": str(exc)})
        report.matched = report.replaced = report.unchanged = 0
        report.unmatched = []
        writer.discard()
    except Exception:
        writer.discard()  # after the pool has finished: no worker writes behind it
        raise
    return report


class _Writer:
    """Writes each photo to its own private file (os-level calls: pathlib and buffered files cost more
    than the write itself at 50,000 photos), creating each of the 256 shard folders once."""

    def __init__(self):
        self.root = str(photo_dir())
        self.folders: set[str] = set()
        # Files not yet owned by a committed row: removed if the import fails (at most a batch and
        # the photos in flight, so memory stays flat however large the package).
        self.uncommitted: set[str] = set()

    def write(self, data: bytes) -> str:
        storage_name = secrets.token_hex(16) + ".jpg"
        folder = os.path.join(self.root, storage_name[:2])
        if folder not in self.folders:
            os.makedirs(folder, exist_ok=True)
            self.folders.add(folder)
        target = os.path.join(folder, storage_name)
        handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.uncommitted.add(storage_name)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view) :]
        finally:
            os.close(handle)
        return storage_name

    def committed(self, batch: list[tuple]):
        self.uncommitted.difference_update(item[1] for item in batch)

    def discard(self):
        _remove([path_of(name) for name in self.uncommitted])


_COLUMNS = ("student_id", "kind", "storage_name", "sha256", "width", "height", "size", "imported_at")


def _save(kind: str, batch: list[tuple]):
    """Upsert a batch in one statement; the replaced photos' files are deleted once the rows point at the new ones.

    Students whose photo changed get a new record version (a page showing the old photo cannot
    confirm the new one), and the apps built on the roll hear of it in the same transaction
    (verification reopens the answers on the old photo).
    """
    field = next(f for f in roll_fields.PHOTO_FIELDS if f.photo == kind)
    now = timezone.now()
    quote = connection.ops.quote_name
    columns = ", ".join(quote(Photo._meta.get_field(name.removesuffix("_id")).column) for name in _COLUMNS)
    updates = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in _COLUMNS[2:])
    row = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    params = [
        value
        for student_id, storage_name, sha, width, height, size, _replaced in batch
        for value in (student_id, kind, storage_name, sha, width, height, size, now)
    ]
    replaced = [item[0] for item in batch if item[6]]
    with transaction.atomic():
        old = {}
        if replaced:
            old = {
                photo.student_id: photo
                for photo in Photo.objects.filter(kind=kind, student_id__in=replaced).only(
                    "student_id", "storage_name", "sha256", "width", "height", "size"
                )
            }
        with connection.cursor() as cursor:
            # Portable (PostgreSQL and SQLite); a model instance per photo cost more than the statement.
            cursor.execute(
                f"INSERT INTO {quote(Photo._meta.db_table)} ({columns}) VALUES {', '.join([row] * len(batch))} "
                f"ON CONFLICT ({quote('student_id')}, {quote('kind')}) DO UPDATE SET {updates}",
                params,
            )
        changes = {}
        for student_id, _name, sha, width, height, size, _replaced in batch:
            if student_id in old:
                new = Photo(sha256=sha, width=width, height=height, size=size)
                changes[student_id] = {field.key: (field.display(old[student_id]), field.display(new))}
        if changes:
            Student.objects.filter(pk__in=list(changes)).update(version=F("version") + 1)
        added = [item[0] for item in batch if item[0] not in old]
        signals.photos_imported.send(sender=Photo, kind=kind, changes=changes, added=added)
        transaction.on_commit(lambda: _remove([path_of(photo.storage_name) for photo in old.values()]))


def _remove(paths):
    for path in paths:
        Path(path).unlink(missing_ok=True)


def photo_spec_problems(photo: Photo) -> list[str]:
    """How a 学历照片 departs from 图像采集's specification (480×640 px, JPEG, ≤ 40 KB, blue background)."""
    problems = []
    spec = GRADUATION_SPEC
    if (photo.width, photo.height) != (spec["width"], spec["height"]):
        problems.append(_("尺寸应为 480×640 像素，实为 %(w)s×%(h)s") % {"w": photo.width, "h": photo.height})
    if photo.size > spec["max_bytes"]:
        problems.append(_("文件应不超过 40 KB，实为 %(kb)s KB") % {"kb": round(photo.size / 1024)})
    if not _blue_background(path_of(photo.storage_name)):
        problems.append(_("背景看起来不是蓝色"))
    return problems


def _blue_background(path: Path) -> bool:
    """A simple colour test: the top corners of the photo are mostly blue."""
    try:
        with Image.open(path) as image:
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
