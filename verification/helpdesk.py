"""The registrar office's help desk: students' requests for help (``SupportRequest``) as tickets.

A student files a request from their checklist (``services.support_request_create``);
it is a ticket at once, in the queue of registrar staff (``ticket.manage``), who
assign it, move it new → in progress → resolved / not a problem, and reply.  A
reply reaches the student as an in-portal message and on their checklist page.
The student's department sees its students' tickets read-only (``ticket.view``).

While a "not found on CHSI" ticket is open the student is waiting for the
registrar: the campaign's close does not mark them 逾期未核对
(``services.campaign_close`` excludes ``checklists_waiting_for_registrar()``),
and closing such a ticket after the campaign's close does.
"""

import dataclasses

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from students.errors import NotFound, ServiceError
from students.permissions import is_registrar, require_capability, students_for

from . import signals
from .models import Checklist, SupportEvent, SupportRequest

T = SupportRequest.Status
# (from, to) a ticket may move; a closed ticket may be reopened.
TRANSITIONS = {
    (T.NEW, T.IN_PROGRESS),
    (T.NEW, T.RESOLVED),
    (T.NEW, T.NOT_A_PROBLEM),
    (T.IN_PROGRESS, T.RESOLVED),
    (T.IN_PROGRESS, T.NOT_A_PROBLEM),
    (T.RESOLVED, T.IN_PROGRESS),
    (T.NOT_A_PROBLEM, T.IN_PROGRESS),
}
MAX_REPLY = 2000


class HelpdeskError(ServiceError):
    """A refused help desk action; the message is meant for the staff member who tried it."""


# ---------------------------------------------------------------------------
# Selectors
# ---------------------------------------------------------------------------


def tickets_for(user) -> QuerySet[SupportRequest]:
    """Every ticket the user may see: the school's for registrar staff, their departments' for a secretary."""
    return SupportRequest.objects.filter(checklist__student__in=students_for(user))


def ticket_for(user, ticket_id: int) -> SupportRequest:
    """One ticket within the user's scope, with its student; ``NotFound`` (404) otherwise."""
    ticket = (
        tickets_for(user)
        .select_related("checklist__campaign", "checklist__student__department", "assignee")
        .filter(pk=ticket_id)
        .first()
    )
    if ticket is None:
        raise NotFound
    require_capability(user, "ticket.view", ticket.checklist)
    return ticket


@dataclasses.dataclass
class QueueFilter:
    status: str = "open"  # "open" (new and in progress), "" (all) or one status
    kind: str = ""
    department: int | None = None
    assignee: str = ""  # "" (anyone), "none" (unassigned) or a user id


def ticket_queue(user, query: QueueFilter) -> QuerySet[SupportRequest]:
    """The queue, oldest first: the longest-waiting student is answered first."""
    tickets = tickets_for(user).select_related(
        "checklist__campaign", "checklist__student__department", "checklist__student__class_group", "assignee"
    )
    if query.status == "open":
        tickets = tickets.filter(status__in=SupportRequest.OPEN)
    elif query.status:
        tickets = tickets.filter(status=query.status)
    if query.kind:
        tickets = tickets.filter(kind=query.kind)
    if query.department:
        tickets = tickets.filter(checklist__student__department_id=query.department)
    if query.assignee == "none":
        tickets = tickets.filter(assignee__isnull=True)
    elif query.assignee:
        tickets = tickets.filter(assignee_id=query.assignee)
    return tickets.order_by("created_at", "id")


def status_counts(user) -> dict[str, int]:
    """Tickets per status within the user's scope, and ``open`` = new + in progress."""
    counts = dict.fromkeys(T.values, 0)
    for row in tickets_for(user).values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    counts["open"] = sum(counts[s] for s in SupportRequest.OPEN)
    return counts


def assignees() -> QuerySet:
    """Who a ticket may be assigned to: active registrar staff."""
    User = get_user_model()
    return User.objects.filter(
        Q(is_superuser=True) | Q(role__in=[User.Role.REGISTRAR, User.Role.ADMIN]), is_active=True
    ).order_by("username")


def checklists_waiting_for_registrar() -> QuerySet:
    """Ids of checklists with an open "not found on CHSI" ticket (a subquery)."""
    return SupportRequest.objects.filter(kind=SupportRequest.Kind.NOT_FOUND, status__in=SupportRequest.OPEN).values(
        "checklist_id"
    )


def waiting_ids(checklists) -> set[int]:
    """Which of these checklists wait for the registrar (one query, for a list of students)."""
    ids = [c.pk for c in checklists]
    return set(checklists_waiting_for_registrar().filter(checklist_id__in=ids).values_list("checklist_id", flat=True))


def tickets_of_checklist(checklist) -> list[SupportRequest]:
    """A student's own tickets with the replies they are shown."""
    tickets = list(checklist.support_requests.order_by("-created_at"))
    replies = SupportEvent.objects.filter(request__in=tickets, action=SupportEvent.Action.REPLY).order_by(
        "created_at", "id"
    )
    by_ticket: dict[int, list] = {}
    for reply in replies:
        by_ticket.setdefault(reply.request_id, []).append(reply)
    for ticket in tickets:
        ticket.replies = by_ticket.get(ticket.pk, [])
    return tickets


# ---------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------


def _lock(ticket_id: int, by) -> SupportRequest:
    ticket = SupportRequest.objects.select_for_update().select_related("checklist").filter(pk=ticket_id).first()
    if ticket is None:
        raise NotFound
    require_capability(by, "ticket.manage", ticket.checklist)
    return ticket


def _log(ticket, action, *, by, now, **fields) -> SupportEvent:
    return SupportEvent.objects.create(request=ticket, action=action, actor=by, created_at=now, **fields)


def _move(ticket: SupportRequest, to: str, *, by, now) -> None:
    if to not in T.values:
        raise HelpdeskError(_("未知的状态"))
    if ticket.status == to:
        return
    if (ticket.status, to) not in TRANSITIONS:
        raise HelpdeskError(
            _("该求助不能从“%(from)s”改为“%(to)s”") % {"from": T(ticket.status).label, "to": T(to).label}
        )
    before = ticket.status
    ticket.status = to
    ticket.resolved_at = now if to in SupportRequest.CLOSED else None
    try:
        with transaction.atomic():
            ticket.save(update_fields=["status", "resolved_at"])
    except IntegrityError:
        # Reopening while the student has filed a new request of the same kind.
        raise HelpdeskError(_("该学生已有一条同类的待处理求助，请在那条求助中继续处理")) from None
    _log(ticket, SupportEvent.Action.STATUS, by=by, now=now, from_status=before, to_status=to)
    if to in SupportRequest.CLOSED:
        _overdue_after_close(ticket)


def _overdue_after_close(ticket: SupportRequest) -> None:
    """A closed campaign's student who waited for this ticket, and never answered, is now overdue."""
    if ticket.kind != SupportRequest.Kind.NOT_FOUND:
        return
    Checklist.objects.filter(
        pk=ticket.checklist_id, state=Checklist.State.NOT_STARTED, campaign__closed_at__isnull=False
    ).exclude(pk__in=checklists_waiting_for_registrar()).update(state=Checklist.State.OVERDUE)


def ticket_assign(*, ticket_id: int, assignee, by, now=None) -> SupportRequest:
    """Give a ticket to a registrar staff member (or to nobody); a new ticket is then in progress."""
    now = now or timezone.now()
    if assignee is not None and not is_registrar(assignee):
        raise HelpdeskError(_("只能指定学籍科工作人员处理"))
    with transaction.atomic():
        ticket = _lock(ticket_id, by)
        if ticket.assignee_id == (assignee.pk if assignee else None):
            return ticket
        ticket.assignee = assignee
        ticket.save(update_fields=["assignee"])
        _log(ticket, SupportEvent.Action.ASSIGNED, by=by, now=now, assignee=assignee)
        if assignee is not None and ticket.status == T.NEW:
            _move(ticket, T.IN_PROGRESS, by=by, now=now)
        return ticket


def ticket_set_status(*, ticket_id: int, to: str, by, now=None) -> SupportRequest:
    now = now or timezone.now()
    with transaction.atomic():
        ticket = _lock(ticket_id, by)
        _move(ticket, to, by=by, now=now)
        return ticket


def ticket_reply(*, ticket_id: int, text: str, by, to: str = "", now=None) -> SupportEvent:
    """Answer the student: logged, shown on their checklist and sent as an in-portal message.

    ``to`` optionally moves the ticket at the same time ("reply and mark resolved");
    a reply to a new ticket puts it in progress.
    """
    now = now or timezone.now()
    text = (text or "").strip()
    if not text:
        raise HelpdeskError(_("回复不能为空"))
    if len(text) > MAX_REPLY:
        raise HelpdeskError(_("回复不能超过 %(n)d 字") % {"n": MAX_REPLY})
    with transaction.atomic():
        ticket = _lock(ticket_id, by)
        reply = _log(ticket, SupportEvent.Action.REPLY, by=by, now=now, text=text)
        target = to or (T.IN_PROGRESS if ticket.status == T.NEW else "")
        if target:
            _move(ticket, target, by=by, now=now)
        # The student's in-portal message (notices), written with the reply: a rolled-back reply sends nothing.
        signals.support_replied.send(sender=SupportRequest, ticket=ticket, reply=reply)
        return reply
