"""The audit log names who changed a record and from where (registrar_portal.middleware.AuditlogMiddleware).

The middleware connects its receiver once per process instead of once per request; these tests hold it to
what django-auditlog's own middleware recorded.
"""

import pytest
from auditlog.context import set_actor
from auditlog.models import LogEntry
from django.test import RequestFactory

from registrar_portal.middleware import AuditlogMiddleware
from students.tests.factories import StudentFactory, UserFactory

pytestmark = pytest.mark.django_db


def _latest(student):
    return LogEntry.objects.get_for_object(student).latest("timestamp")


def _request(user, address="10.1.2.3"):
    request = RequestFactory().get("/", REMOTE_ADDR=address)
    request.user = user
    return request


def test_a_change_made_in_a_request_names_the_user_and_the_address():
    student, user = StudentFactory(), UserFactory()

    def view(request):
        student.name = "改名"
        student.save()
        return "response"

    assert AuditlogMiddleware(view)(_request(user)) == "response"
    entry = _latest(student)
    assert entry.actor == user
    assert entry.remote_addr == "10.1.2.3"


def test_a_change_after_the_request_names_nobody():
    student, user = StudentFactory(), UserFactory()
    AuditlogMiddleware(lambda request: None)(_request(user))

    student.name = "请求之外"
    student.save()
    entry = _latest(student)
    assert entry.actor is None
    assert entry.remote_addr is None


def test_each_request_names_its_own_user():
    student, first, second = StudentFactory(), UserFactory(), UserFactory()

    def view(request):
        student.name = f"改名{request.user.pk}"
        student.save()

    middleware = AuditlogMiddleware(view)
    middleware(_request(first, "10.0.0.1"))
    assert (_latest(student).actor, _latest(student).remote_addr) == (first, "10.0.0.1")
    middleware(_request(second, "10.0.0.2"))
    assert (_latest(student).actor, _latest(student).remote_addr) == (second, "10.0.0.2")


def test_set_actor_inside_a_request_takes_over():
    student, user, other = StudentFactory(), UserFactory(), UserFactory()

    def view(request):
        with set_actor(other):
            student.name = "代办"
            student.save()

    AuditlogMiddleware(view)(_request(user))
    assert _latest(student).actor == other
