"""What an export is: an ``Exporter`` describes itself, and the registry collects them.

An exporter names its identifier (stored in ``Export.kind``), its Chinese
label, the capability a user needs (``students.permissions.has_capability``),
its parameter form and its columns; ``rows(user, params)`` yields the data.
The parameter form is the same filter form the matching list page uses, so
the file holds exactly what the screen showed.  Exports with several sheets
override ``sheets``.  Everything else (logging, building inside the request
or in a task, storing encrypted, downloading) is shared and lives in
``services``, ``writer`` and ``storage``.
"""

import datetime
import itertools
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.db import connections, models
from django.db.models.functions import Cast
from django.utils import timezone

from students import crypto
from students import fields as roll_fields
from students.filters import FilterForm


class ColumnType:
    # Text is written as a text cell with the Text number format, so that 学号 and
    # ID numbers never become numbers and typed "=…" never becomes a formula.
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"  # a date cell (yyyy-mm-dd)
    DATETIME = "datetime"  # a date cell with the time (yyyy-mm-dd hh:mm), in the school's time zone
    TIMESTAMP = "timestamp"  # the same with seconds (logs)


@dataclass(frozen=True)
class Column:
    title: str
    type: str = ColumnType.TEXT
    width: float = 12  # in characters of the default font (a Chinese character counts about 2)


def text(title, width=12) -> Column:
    return Column(title, ColumnType.TEXT, width)


def number(title, width=8) -> Column:
    return Column(title, ColumnType.NUMBER, width)


def date(title, width=12) -> Column:
    return Column(title, ColumnType.DATE, width)


def datetime_(title, width=17) -> Column:
    return Column(title, ColumnType.DATETIME, width)


def timestamp(title, width=19) -> Column:
    return Column(title, ColumnType.TIMESTAMP, width)


@dataclass
class Sheet:
    title: str
    columns: list[Column]
    rows: Iterable[list]
    # Lines under the table after a blank row (e.g. the signature line of a sheet that is signed).
    footer: list[str] = field(default_factory=list)
    landscape: bool = False
    # A taller row leaves room for a handwritten signature.
    row_height: float | None = None


# A parameter form is a filter form (students.filters): bound to the user, its choices limited to their
# scope, so that a choice outside it fails as ``invalid_choice`` (the service answers 404).
ExportForm = FilterForm


class Exporter:
    """One kind of export.  Subclasses set the class attributes and ``rows`` (or ``sheets``)."""

    key = ""  # stored in Export.kind; never rename one that has been used
    label = ""  # what the export is, in Chinese (lazy)
    capability = ""  # the capability the user needs (students.permissions.CAPABILITIES)
    form_class: type[ExportForm] = ExportForm
    columns: list[Column] = []
    sheet_title = ""
    # Always built inside the request (a class is a few dozen rows).
    inline = False
    landscape = False

    # --- describing one export -------------------------------------------------------------------------

    def title(self, user, params) -> str:
        """The heading in A1 of every sheet."""
        return str(self.label)

    def scope_label(self, user, params) -> str:
        """What was exported, in words, for the export log."""
        return str(self.label)

    def filename_parts(self, user, params) -> list[str]:
        """The file name's parts before the date: what the file holds, in Chinese."""
        return [str(self.label)]

    def filename(self, user, params, *, now=None) -> str:
        stamp = f"{timezone.localtime(now):%Y%m%d}"
        name = "-".join(part for part in [*self.filename_parts(user, params), stamp] if part)
        return _safe_filename(name)[:190] + ".xlsx"

    def estimate(self, user, params) -> int:
        """How many data rows the export will have (one COUNT query): decides inline or task."""
        raise NotImplementedError

    # --- the data -------------------------------------------------------------------------------------

    def rows(self, user, params) -> Iterator[list]:
        raise NotImplementedError

    def sheets(self, user, params) -> Iterator[Sheet]:
        yield Sheet(
            str(self.sheet_title or self.label), self.columns, self.rows(user, params), landscape=self.landscape
        )

    # --- parameters -----------------------------------------------------------------------------------

    def form(self, data, *, user, **kwargs) -> ExportForm:
        return self.form_class(data, user=user, **kwargs)

    @staticmethod
    def stored_params(cleaned: dict) -> dict:
        """The cleaned parameters as JSON for the export log (and to rebuild them in the task)."""
        return {
            key: value for key, value in ((k, _jsonable(v)) for k, v in cleaned.items()) if value not in (None, "", [])
        }


def _jsonable(value):
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, (models.QuerySet, list, tuple)):
        return sorted(_jsonable(item) for item in value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):  # a TextChoices member
        return value.value
    return value


_FILENAME_FORBIDDEN = str.maketrans({c: "_" for c in '\\/:*?"<>|\r\n\t'})


def _safe_filename(name: str) -> str:
    return name.translate(_FILENAME_FORBIDDEN).strip(" .") or "export"


# --- helpers the exporters share -------------------------------------------------------------------------


def field_label(code: str) -> str:
    field = roll_fields.BY_CODE.get(code)
    return str(field.label) if field else code


def field_labels() -> dict[str, str]:
    """Every field's label by code, translated once: for exports that name the field on each of many rows."""
    return {field.code: str(field.label) for field in roll_fields.ROLL_FIELDS}


def masked(code: str, value: str) -> str:
    """A field's value as lists outside the registrar's CHSI correction list show it: the field decides."""
    field = roll_fields.BY_CODE.get(code)
    return field.display(value, masked=True) if field else value


def value_masker():
    """``masked`` for the decrypted (text) values of many rows: only a sensitive field's value changes, so the
    others skip the field's ``display`` (most of the cost of masking 50,000 rows)."""
    sensitive = {field.code: field for field in roll_fields.ROLL_FIELDS if field.sensitive}

    def masked_value(code: str, value: str) -> str:
        field = sensitive.get(code)
        return value if field is None else field.display(value, masked=True)

    return masked_value


def ciphertext(path: str) -> Cast:
    """An encrypted column as stored, for ``values_list``: ``decrypted_chunks`` decrypts it in bulk."""
    return Cast(path, output_field=models.TextField())


def decrypted_chunks(rows, positions: tuple[int, ...], *, chunk_size: int = 2000) -> Iterator[tuple[list, list]]:
    """The tuples of a ``values_list`` (or of several in turn, or chunks already fetched: see ``fetched_chunks``
    and ``fetched_streams``) a chunk at a time, with
    the columns at ``positions`` (each a ``ciphertext``) decrypted: (the chunk's tuples as fetched, one list of
    plain values per position).

    Decrypting one value at a time as the model field does costs more than
    writing the whole row; a chunk at a time, it is a few µs a value
    (``students.crypto.decrypt_many``).
    """
    chunks = rows if isinstance(rows, Iterator) else fetched_chunks(rows, chunk_size=chunk_size)
    for chunk in chunks:
        yield chunk, [crypto.decrypt_many([row[p] for row in chunk]) for p in positions]


def fetched_rows(rows, *, chunk_size: int = 2000) -> Iterator:
    """The rows of ``fetched_chunks`` one by one."""
    for chunk in fetched_chunks(rows, chunk_size=chunk_size):
        yield from chunk


def by_department(rows, path: str, departments) -> list:
    """``rows`` (ordered by the department's name first) as one queryset per department of ``departments``, in
    the same order: pieces for ``fetched_chunks``, so that the server sorts one department while the rows of
    the one before are written."""
    return [rows.filter(**{path: pk}) for pk in departments.order_by("name").values_list("pk", flat=True)]


def fetched_streams(pieces: list, *, chunk_size: int = 2000) -> list[Iterator[list]]:
    """One iterator of chunks per queryset of ``pieces`` (the sheets of an export), all fetched by one thread
    (``fetched_chunks``), the first query started now: consumed in order, each piece's query runs while the
    rows of the one before are written."""
    stream = _fetched(pieces, chunk_size=chunk_size)
    pending = [next(stream, None)]  # the next (piece, chunk) not yet consumed

    def chunks_of(index):
        while pending[0] is not None and pending[0][0] <= index:
            if pending[0][0] == index:
                yield pending[0][1]
            pending[0] = next(stream, None)

    return [chunks_of(index) for index in range(len(pieces))]


def fetched_chunks(rows, *, chunk_size: int = 2000) -> Iterator[list]:
    """The rows of a queryset, or of a list of querysets one after the other, ``chunk_size`` at a time.

    On PostgreSQL a thread runs the queries (server-side cursors, as ``iterator`` does) on this thread's own
    connection and transaction, up to ``ahead`` chunks ahead of the consumer: the server's work and the wait
    for each chunk (psycopg2 lets go of the GIL meanwhile) overlap with writing the rows already here.  A
    sorted query returns nothing until it has sorted everything, hence the pieces: the next one is sorted
    while the one before is written (docs/performance.md §4).  Elsewhere (SQLite, in-process) there is
    nothing to overlap and the rows are fetched in turn.
    """
    for _index, chunk in _fetched(list(rows) if isinstance(rows, (list, tuple)) else [rows], chunk_size=chunk_size):
        yield chunk


def _fetched(pieces: list, *, chunk_size: int, ahead: int = 4) -> Iterator[tuple[int, list]]:
    """(index of the piece, chunk) of every piece in turn: ``fetched_chunks``."""
    if not pieces:
        return
    alias = pieces[0].db
    connection = connections[alias]

    def chunks_of(piece):
        iterator = piece.iterator(chunk_size=chunk_size)
        try:
            while chunk := list(itertools.islice(iterator, chunk_size)):
                yield chunk
        finally:
            iterator.close()  # the server-side cursor, on the thread that holds the connection

    if connection.vendor != "postgresql":
        for index, piece in enumerate(pieces):
            for chunk in chunks_of(piece):
                yield index, chunk
        return
    chunks: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()
    done = object()

    def fetch():
        # The consumer's connection (Django's are per thread): same transaction, same snapshot.
        connections[alias] = connection
        try:
            for index, piece in enumerate(pieces):
                for chunk in chunks_of(piece):
                    if not _put(chunks, (index, chunk), stop):
                        return
        except BaseException as error:  # handed to the consumer, raised there
            _put(chunks, error, stop)
        finally:
            _put(chunks, done, stop)

    connection.inc_thread_sharing()
    thread = threading.Thread(target=fetch, name="export-fetch", daemon=True)
    thread.start()
    try:
        while (item := chunks.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        # Also when the writer gives up half-way: the thread must be off the connection before this one uses
        # it again.
        stop.set()
        while thread.is_alive():
            try:
                chunks.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()
        connection.dec_thread_sharing()


def _put(chunks: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            chunks.put(item, timeout=0.05)
            return True
        except queue.Full:
            pass
    return False


def choice_labels(choices) -> dict[str, str]:
    # Choice labels are lazy; the writer wants plain strings.
    return {value: str(label) for value, label in choices}
