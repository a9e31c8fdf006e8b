"""The errors services raise, shared by every app (students ← verification ← notices).

A service is an API: a view, a Celery task or a management command may call
it.  It raises ``ServiceError`` (or a subclass) for anything the caller should
show to a person, and ``NotFound`` when the object does not exist *or* lies
outside the caller's scope: the two must look the same, so that nobody learns
that another department's record is there.

``NotFound`` is also an ``Http404``: a view that lets it through answers 404
the same way everywhere, with no try/except of its own.
"""

from django.http import Http404


class ServiceError(Exception):
    """A refusal whose message is meant for the user (already translated)."""


class NotFound(ServiceError, Http404):
    """Missing or out of the caller's scope; the same to every caller."""
