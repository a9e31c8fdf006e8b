"""Reads for the verification pages, always scoped to the viewer."""

from functools import cache

from django.db import connection
from django.db.models import Prefetch, Q, prefetch_related_objects
from django.db.models.expressions import RawSQL
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import get_language

from students import fields as roll_fields
from students.permissions import REVIEW_RANK, flag_fields_for, review_level_of, students_for

from .models import Campaign, Checklist, Evidence, FieldCheck, Flag


def checklists_of_user(*, user):
    """The signed-in student's checklists in campaigns that have opened."""
    return (
        Checklist.objects.filter(
            student__user=user, student__in=students_for(user), campaign__opens_at__lte=timezone.now()
        )
        .select_related("campaign")
        .order_by("-campaign__opens_at")
    )


def checklist_of_user(*, user, campaign_id: int) -> Checklist:
    return get_object_or_404(
        checklists_of_user(user=user).select_related("student", "student__department"), campaign_id=campaign_id
    )


@cache
def _holds_sql() -> str:
    """One integer, a bit for each of what the page would otherwise query to find nothing (built once)."""
    from students.models import ImportFinding, Photo

    from .models import SupportRequest

    checklist = Checklist._meta.db_table
    parts = [
        (FieldCheck, "checklist_id", "id"),
        (Flag, "checklist_id", "id"),
        (SupportRequest, "checklist_id", "id"),
        (Photo, "student_id", "student_id"),
        (ImportFinding, "student_id", "student_id"),
    ]
    return " + ".join(
        f"(CASE WHEN EXISTS (SELECT 1 FROM {model._meta.db_table} AS h WHERE h.{column} = {checklist}.{outer}) "
        f"THEN {1 << bit} ELSE 0 END)"
        for bit, (model, column, outer) in enumerate(parts)
    )


HOLDS = ("answers", "flags", "tickets", "photos", "findings")


def checklist_page_of_user(*, user, campaign_id: int) -> Checklist:
    """``checklist_of_user`` for the student's page (and its in-place answers), which also learns in the
    same query whether the checklist has answers, flags and tickets and the student photos and findings
    (``checklist.holds``): the page skips the queries that would find nothing, which for a student opening
    the page the first time is all of them.  Plain SQL, because compiling five ``Exists()`` costs more CPU
    than running them."""
    if _sees_only_own_record(user):
        checklist = _own_checklist_page(user, campaign_id)
    else:
        checklist = get_object_or_404(
            checklists_of_user(user=user).select_related("student").annotate(holds_mask=RawSQL(_holds_sql(), ())),
            campaign_id=campaign_id,
        )
    checklist.holds = {key for bit, key in enumerate(HOLDS) if checklist.holds_mask & (1 << bit)}
    return checklist


def _sees_only_own_record(user) -> bool:
    # Where students_for(user) is Student.objects.filter(user=user): an active student without staff roles.
    return user.is_authenticated and user.is_active and not user.is_superuser and user.role == user.Role.STUDENT


class ModelReader:
    """A model's columns in a SELECT built by hand, and how the ORM would make an instance of them (its
    converters: the encrypted ID number, JSON).  For the student's own pages, whose queries are built once per
    process: compiling them through the ORM was a quarter of the page's CPU (docs/performance.md §7)."""

    def __init__(self, model):
        self.model, self.table = model, model._meta.db_table
        fields = model._meta.concrete_fields
        self.attnames = [f.attname for f in fields]
        quote = connection.ops.quote_name
        self.columns = ", ".join(f"{quote(self.table)}.{quote(f.column)}" for f in fields)
        self.converters = [
            (index, converter, f)
            for index, f in enumerate(fields)
            for converter in f.get_db_converters(connection) + connection.ops.get_db_converters(f.get_col(self.table))
        ]

    def read(self, values, connection):
        """The instance of one row's values (``len(self.attnames)`` of them)."""
        values = list(values)
        for index, converter, f in self.converters:
            values[index] = converter(values[index], f, connection)
        return self.model.from_db(connection.alias, self.attnames, values)


@cache
def _own_checklist_page_sql():
    """``checklists_of_user`` for a student (``student__in=students_for(user)`` is then ``student.user = user``)
    with its campaign and student and the holds mask, as SQL built once per process (``ModelReader``)."""
    from django.apps import apps

    from students.models import ClassGroup, Student

    readers = [ModelReader(model) for model in (Checklist, Campaign, Student)]
    checklist, campaign, student = (f'"{reader.table}"' for reader in readers)
    # The top bar's two questions (registrar_portal/navigation.py), which were a query of their own.  The
    # messages are notices' (an app built on this one): named through the registry, not imported.
    monitors = ClassGroup.monitors.through._meta.db_table
    messages = apps.get_model("notices", "Message")._meta.db_table
    navigation = (
        f'EXISTS (SELECT 1 FROM "{monitors}" WHERE "user_id" = %(user)s), '
        f'(SELECT COUNT(*) FROM "{messages}" WHERE "user_id" = %(user)s AND "read_at" IS NULL)'
    )
    sql = (
        f"SELECT {', '.join(reader.columns for reader in readers)}, {_holds_sql()}, {navigation} FROM {checklist} "
        f'INNER JOIN {campaign} ON {checklist}."campaign_id" = {campaign}."id" '
        f'INNER JOIN {student} ON {checklist}."student_id" = {student}."id" '
        f'WHERE {student}."user_id" = %(user)s AND {campaign}."opens_at" <= %(now)s '
        f'AND {checklist}."campaign_id" = %(campaign)s'
    )
    return sql, readers


def _own_checklist_page(user, campaign_id) -> Checklist:
    sql, readers = _own_checklist_page_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, {"user": user.pk, "now": timezone.now(), "campaign": campaign_id})
        row = cursor.fetchone()
    if row is None:
        raise Http404("No Checklist matches the given query.")
    instances, start = [], 0
    for reader in readers:
        instances.append(reader.read(row[start : start + len(reader.attnames)], connection))
        start += len(reader.attnames)
    checklist, campaign, student = instances
    Checklist._meta.get_field("campaign").set_cached_value(checklist, campaign)
    Checklist._meta.get_field("student").set_cached_value(checklist, student)
    checklist.holds_mask = row[start]
    # For the top bar: whether the student monitors a class, and the unread-message count.
    checklist.navigation_answers = (bool(row[start + 1]), row[start + 2])
    return checklist


def flag_of_user(*, user, flag_id: int) -> Flag:
    """A flag of the signed-in student's own, or 404."""
    return get_object_or_404(
        Flag.objects.filter(checklist__student__user=user, checklist__student__in=students_for(user)).select_related(
            "checklist__campaign", "checklist__student"
        ),
        pk=flag_id,
    )


def evidence_for_viewer(*, user, evidence_id: int) -> Evidence:
    """Evidence of a student the viewer may see (own, department or school), or 404."""
    return get_object_or_404(
        Evidence.objects.filter(flag__checklist__student__in=students_for(user)).select_related(
            "flag__checklist__student"
        ),
        pk=evidence_id,
    )


def checklist_rows(checklist: Checklist, *, own: bool = True) -> list[dict]:
    """One row per checked field, in CHSI card order, with everything the page shows."""
    student = checklist.student
    prefetch_related_objects([student], "photos")
    answers = {a.field_code: a for a in checklist.field_checks.all()}
    flags = {}
    for flag in checklist.flags.prefetch_related(Prefetch("evidence", queryset=Evidence.objects.all())).order_by(
        "created_at"
    ):
        if flag.is_open or flag.field_code not in flags:
            flags[flag.field_code] = flag
    hints = {}
    for finding in student.findings.all():
        hints.setdefault(finding.field_code, []).append(finding.message)
    rows = []
    for field in checklist.checked_fields():
        value = getattr(student, field.key)
        shown = field.display(value, masked=not own)
        answer = answers.get(field.code)
        rows.append(
            {
                "field": field,
                "value": shown,
                "answer": answer,
                "reopened": answer is not None and answer.status == FieldCheck.Status.REOPENED,
                "flag": flags.get(field.code),
                "hints": hints.get(field.code, []),
                "authority": field.authority,
                "photo": photo_box(value) if field.photo else None,
            }
        )
    return rows


@cache
def _no_photos():
    """An evaluated empty queryset of photos (a prefetch's result), made once per process: only iterated."""
    from students.models import Photo

    photos = Photo.objects.none()
    photos._result_cache, photos._prefetch_done = [], True
    return photos


@cache
def _own_photos_sql():
    """``student.photos.all()`` as SQL built once per process (``ModelReader``): compiling the prefetch's query
    cost most of what a photo adds to the student's card."""
    from students.models import Photo

    reader = ModelReader(Photo)
    return f'SELECT {reader.columns} FROM "{reader.table}" WHERE "{reader.table}"."student_id" = %s', reader


def _prefetch_own_photos(student):
    """What ``prefetch_related_objects([student], "photos")`` leaves: the student's photos as a result cache."""
    from students.models import Photo

    sql, reader = _own_photos_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, [student.pk])
        rows = cursor.fetchall()
    photos, to_student = [reader.read(row, connection) for row in rows], Photo._meta.get_field("student")
    for photo in photos:
        to_student.set_cached_value(photo, student)  # as the prefetch leaves it: photo.student is no query
    queryset = student.photos.all()
    queryset._result_cache, queryset._prefetch_done = photos, True
    _photos_known(student, queryset)


def _photos_known(student, photos):
    student._prefetched_objects_cache = {**getattr(student, "_prefetched_objects_cache", {}), "photos": photos}


def own_checklist_rows(checklist: Checklist) -> list[dict]:
    """The student's own checklist page: ``checklist_rows`` as plain values, one dict per row.

    The page is the one every student opens, often several times: each row is ready to print (labels
    translated, state and badge decided, answers and flags read as a few columns, no evidence), so
    that the template is one flat loop without look-ups into models (docs/performance.md §4).
    """
    student = checklist.student
    # From checklist_page_of_user: what is not there is not queried (any other checklist: everything is).
    holds = getattr(checklist, "holds", HOLDS)
    if "photos" in holds:
        _prefetch_own_photos(student)
    else:
        # Known empty, as a prefetch leaves it (a result cache): iterating a bare none() still compiles SQL,
        # and checked_fields and missing_photos both iterate it.
        _photos_known(student, _no_photos())
    answers = {}
    if "answers" in holds:
        answers = {
            code: (status, previous)
            for code, status, previous in checklist.field_checks.values_list("field_code", "status", "previous_value")
        }
    flags = {}
    for flag in checklist.flags.order_by("created_at") if "flags" in holds else ():
        if flag.is_open or flag.field_code not in flags:
            flags[flag.field_code] = flag
    hints = {}
    for code, message in student.findings.values_list("field_code", "message") if "findings" in holds else ():
        hints.setdefault(code, []).append(message)
    texts = _row_texts(get_language())
    statuses = texts["statuses"]
    rows = []
    for field in checklist.checked_fields():
        value = getattr(student, field.key)
        status, previous = answers.get(field.code, ("", ""))
        reopened = status == FieldCheck.Status.REOPENED
        flag = flags.get(field.code)
        label, help_text = texts[field.code]
        rows.append(
            {
                "code": field.code,
                "label": label,
                "help_text": help_text,
                "value": field.display(value, masked=False),
                "photo": photo_box(value) if field.photo else None,
                "is_photo": bool(field.photo),
                "status": status,
                # The badge shows a standing answer; a reopened one asks again instead.
                "badge": statuses.get(status, status) if status and not reopened else "",
                "confirmed": status == FieldCheck.Status.CONFIRMED,
                "reopened": reopened,
                "previous_value": previous,
                "flag": flag,
                "flagged": bool((flag and flag.is_open) or status == FieldCheck.Status.FLAGGED),
                "hints": hints.get(field.code, []),
            }
        )
    return rows


@cache
def _row_texts(language: str) -> dict:
    """Each field's label and help text and the answers' names, translated once per language (they are
    code, not data): about 40 gettext calls a page otherwise."""
    texts = {
        field.code: (str(field.label), str(field.help_text))
        for field in (*roll_fields.PHOTO_FIELDS, *roll_fields.ROLL_FIELDS)
    }
    texts["statuses"] = {value: str(label) for value, label in FieldCheck.Status.choices}
    return texts


# The card shows a photo 120 px wide; width and height are given so that the page does not jump.
PHOTO_BOX_WIDTH = 120


def photo_box(photo) -> dict | None:
    """A photo as an <img> shows it: the Photo, its kind, and its box scaled to the card's width."""
    if photo is None:
        return None
    height = round(PHOTO_BOX_WIDTH * photo.height / photo.width) if photo.width else PHOTO_BOX_WIDTH * 4 // 3
    return {"photo": photo, "kind": photo.kind, "width": PHOTO_BOX_WIDTH, "height": height}


def missing_photos(checklist: Checklist) -> list[str]:
    """The photo kinds the campaign checks that the school does not hold for this student."""
    codes = set(checklist.campaign.field_codes)
    held = {photo.kind for photo in checklist.student.photos.all()}
    return [f.photo for f in roll_fields.PHOTO_FIELDS if f.code in codes and f.photo not in held]


def student_photos(student, *, with_problems: bool = False) -> list[dict]:
    """A student's photos side by side for staff (录取照片, then 学历照片), with the 学历照片's spec problems."""
    from students.photos.services import photo_spec_problems

    boxes = []
    for field in roll_fields.PHOTO_FIELDS:
        box = photo_box(getattr(student, field.key))
        if box is None:
            continue
        box["label"] = field.label
        box["problems"] = photo_spec_problems(box["photo"]) if with_problems and box["kind"] == "graduation" else []
        boxes.append(box)
    return boxes


def info_rows(checklist: Checklist) -> list[dict]:
    student = checklist.student
    return [
        {"field": field, "value": field.display(getattr(student, field.key))}
        for field in checklist.campaign.info_fields()
    ]


def campaign_list():
    return Campaign.objects.prefetch_related("cohorts").order_by("-opens_at")


# ---------------------------------------------------------------------------
# Workspaces (secretaries and registrar staff)
# ---------------------------------------------------------------------------


@cache
def _campaigns_sql():
    reader = ModelReader(Campaign)
    return f'SELECT {reader.columns} FROM "{reader.table}" ORDER BY "{reader.table}"."opens_at" DESC', reader


def workspace_campaigns(campaign_id=None) -> tuple[Campaign | None, list[Campaign]]:
    """The campaign a dashboard shows (the one asked for, else the latest open one that has opened, else the
    latest that has opened, else the latest) and every campaign for the picker, newest first: one query by
    SQL built once per process (a school has a few campaigns a year)."""
    sql, reader = _campaigns_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql)
        campaigns = [reader.read(row, connection) for row in cursor.fetchall()]
    if campaign_id:
        return next((c for c in campaigns if c.pk == campaign_id), None), campaigns
    now = timezone.now()
    opened = [c for c in campaigns if c.opens_at <= now]
    chosen = next((c for c in opened if c.closed_at is None), None) or next(iter(opened), None)
    return chosen or next(iter(campaigns), None), campaigns


def campaign_for_workspace(campaign_id=None) -> Campaign | None:
    """The campaign a dashboard shows (``workspace_campaigns``)."""
    return workspace_campaigns(campaign_id)[0]


def class_checklists(*, campaign: Campaign, class_group, only_not_done: bool = False):
    """A class's students with their checklist, in 学号 order: one query."""
    if only_not_done:
        # The same list as the class's export of unverified students.
        return checklists_not_done(campaign=campaign, class_group=class_group)
    return (
        Checklist.objects.filter(campaign=campaign, student__class_group=class_group)
        .select_related("student")
        .order_by("student__student_number")
    )


def monitored_class_progress(*, user) -> list[dict]:
    """A monitor's classes, each with its latest opened campaign, the counts and the names of those not
    done (nothing else: no 学号, no states), as the shared progress link shows them."""
    from students.models import ClassGroup

    from .dashboards import counts_of

    now = timezone.now()
    rows = []
    for class_group in ClassGroup.objects.filter(monitors=user).select_related("department").order_by("name"):
        campaign = (
            Campaign.objects.filter(checklists__student__class_group=class_group, opens_at__lte=now)
            .distinct()
            .order_by("-opens_at")
            .first()
        )
        row = {"class_group": class_group, "campaign": campaign}
        if campaign:
            checklists = Checklist.objects.filter(campaign=campaign, student__class_group=class_group)
            pending = checklists_not_done(campaign=campaign, class_group=class_group).order_by(
                "student__student_number"
            )
            row.update(counts=counts_of(checklists), names=names_with_extensions(pending, campaign=campaign))
        rows.append(row)
    return rows


def names_with_extensions(pending, *, campaign: Campaign) -> list[tuple[str, object]]:
    """(name, individual deadline or None) of checklists not done, as a class page shows them.

    A student with an individual extension (sick, abroad) is still chased, but the class sees until when.
    """
    return [
        (name, deadline if deadline and deadline > campaign.closes_at else None)
        for name, deadline in pending.values_list("student__name", "deadline")
    ]


def checklists_not_done(*, campaign: Campaign, departments=None, class_group=None):
    """Checklists of students who have not finished, by department, class and 学号 (page and export)."""
    # Excluded students (休学, 参军入伍 …) are not expected to check: the export lists them apart.
    checklists = Checklist.objects.filter(campaign=campaign).exclude(
        state__in=(*Checklist.FINISHED, Checklist.State.EXCLUDED)
    )
    if class_group is not None:
        checklists = checklists.filter(student__class_group=class_group)
    if departments is not None:
        checklists = checklists.filter(student__department__in=departments)
    return checklists.select_related("student__department").order_by(
        "student__department__name", "student__class_name", "student__student_number"
    )


def flags_for_staff(user):
    """The flags a staff member may see: of students in their scope, on the fields they handle."""
    flags = Flag.objects.filter(checklist__student__in=students_for(user))
    fields = flag_fields_for(user)
    return flags if fields is None else flags.filter(field_code__in=fields)


def review_queue(*, user, statuses, department_id=None, field_code=None):
    """Flags of the students the user may see, oldest first; a submitted flag only while it waits at
    the user's step of the chain or a lower one (a counsellor's queue drops what the department holds)."""
    rank = REVIEW_RANK.get(review_level_of(user), -1)
    levels = [level for level, level_rank in REVIEW_RANK.items() if level_rank <= rank]
    flags = (
        flags_for_staff(user)
        .filter(status__in=statuses)
        .filter(~Q(status=Flag.Status.SUBMITTED) | Q(review_level__in=levels))
        .select_related("checklist__student__department", "checklist__student__class_group", "checklist__campaign")
        .prefetch_related("evidence")
        .order_by("created_at", "id")
    )
    if department_id:
        flags = flags.filter(checklist__student__department_id=department_id)
    if field_code:
        flags = flags.filter(field_code=field_code)
    return flags


def findings_for_students(student_ids) -> dict[int, list]:
    from students.models import ImportFinding

    result: dict[int, list] = {}
    for finding in ImportFinding.objects.filter(student_id__in=student_ids).order_by("field_code"):
        result.setdefault(finding.student_id, []).append(finding)
    return result


def flag_for_staff(*, user, flag_id: int) -> Flag:
    return get_object_or_404(
        flags_for_staff(user).select_related("checklist__student__department", "checklist__campaign"),
        pk=flag_id,
    )


def correction_queue(*, user, statuses, campaign=None):
    """Flags with the registrar, in 学号 and field order: the correction queue and the CHSI correction list."""
    flags = (
        flags_for_staff(user)
        .filter(status__in=statuses)
        .select_related("checklist__student__department", "checklist__student__class_group", "checklist__campaign")
        .prefetch_related("evidence")
        .order_by("checklist__student__student_number", "field_code", "id")
    )
    if campaign is not None:
        flags = flags.filter(checklist__campaign=campaign)
    return flags


def findings_list(*, departments, kind: str = ""):
    """Import findings of students in ``departments``: the data-quality page and its export."""
    from students.models import ImportFinding

    findings = ImportFinding.objects.filter(student__department__in=departments).select_related(
        "student__department", "student__class_group"
    )
    if kind:
        findings = findings.filter(kind=kind)
    return findings.order_by("student__department__name", "student__student_number", "field_code", "id")


def checklists_not_in_roster(*, limit: int = 500):
    """Students missing from a newer full roster who still count in a campaign not yet reported:
    registrar staff confirm each exclusion (the import never deletes)."""
    return (
        Checklist.objects.filter(student__not_in_roster__isnull=False)
        .exclude(state=Checklist.State.EXCLUDED)
        .filter(Q(campaign__registrar_close_at__isnull=True) | Q(campaign__registrar_close_at__gt=timezone.now()))
        .select_related("student__department", "student__not_in_roster", "campaign")
        .order_by("student__department__name", "student__student_number")[:limit]
    )
