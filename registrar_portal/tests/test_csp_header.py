"""The Content-Security-Policy header, built once per process (registrar_portal.middleware.CSPMiddleware), is
the one django-csp builds on every response, and a view's own policy still wins."""

import pytest
from csp.constants import NONE, SELF
from csp.exceptions import CSPNonceError
from csp.middleware import CSPMiddleware as DjangoCSPMiddleware
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from registrar_portal.middleware import CSPMiddleware


def _headers(middleware_class, response=None, path="/"):
    request = RequestFactory().get(path)
    middleware = middleware_class(lambda request: response or HttpResponse("ok"))
    middleware.process_request(request)
    answer = middleware.process_response(request, response or HttpResponse("ok"))
    return {name: answer.get(name) for name in ("Content-Security-Policy", "Content-Security-Policy-Report-Only")}


def test_the_header_is_django_csps():
    ours = _headers(CSPMiddleware)
    assert ours["Content-Security-Policy"]
    assert ours == _headers(DjangoCSPMiddleware)


def test_a_changed_setting_changes_the_header():
    before = _headers(CSPMiddleware)["Content-Security-Policy"]
    policy = {"DIRECTIVES": {"default-src": [NONE], "img-src": [SELF]}}
    with override_settings(CONTENT_SECURITY_POLICY=policy, CONTENT_SECURITY_POLICY_REPORT_ONLY=policy):
        changed = _headers(CSPMiddleware)
        assert changed == _headers(DjangoCSPMiddleware)
        assert changed["Content-Security-Policy"] != before
        assert changed["Content-Security-Policy-Report-Only"] == changed["Content-Security-Policy"]
    assert _headers(CSPMiddleware)["Content-Security-Policy"] == before


def test_a_views_own_policy_wins():
    updated = HttpResponse("ok")
    updated._csp_update = {"img-src": ["https://photos.example.edu"]}
    header = _headers(CSPMiddleware, updated)["Content-Security-Policy"]
    assert "https://photos.example.edu" in header
    exempt = HttpResponse("ok")
    exempt._csp_exempt = True
    assert _headers(CSPMiddleware, exempt)["Content-Security-Policy"] is None
    preset = HttpResponse("ok")
    preset["Content-Security-Policy"] = "default-src 'none'; sandbox"
    assert _headers(CSPMiddleware, preset)["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_a_nonce_asked_for_after_the_response_is_an_error():
    request = RequestFactory().get("/")
    middleware = CSPMiddleware(lambda request: HttpResponse("ok"))
    middleware.process_request(request)
    middleware.process_response(request, HttpResponse("ok"))
    with pytest.raises(CSPNonceError):
        str(request.csp_nonce)
