"""URLs of the HTTP bench (bench/pages.py): the portal's own, plus one bench-only signed-in page.

``/bench/signed-in/`` is the simplest page a signed-in user can get: no
template, no query of its own, one short body.  Served by the portal's settings
(``bench_site``) it costs what the portal's middleware stack costs; served by
``bench_bare`` (Django's session and auth middleware only) it is the bare
Django floor the issue's goal divides by.
"""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.urls import path

from registrar_portal.urls import urlpatterns as portal_urlpatterns


@login_required
def signed_in(request):
    return HttpResponse(f"<!doctype html><title>ok</title><p>{request.user.pk}</p>")


urlpatterns = [path("bench/signed-in/", signed_in, name="bench_signed_in"), *portal_urlpatterns]
