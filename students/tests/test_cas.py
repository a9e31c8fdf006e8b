"""Campus SSO against a small CAS server that the test serves on localhost."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from students.models import User
from students.tests.factories import StudentFactory, UserFactory

pytestmark = pytest.mark.django_db

SUCCESS = """<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">
<cas:authenticationSuccess><cas:user>{user}</cas:user></cas:authenticationSuccess></cas:serviceResponse>"""
FAILURE = """<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">
<cas:authenticationFailure code="INVALID_TICKET">Ticket not recognized</cas:authenticationFailure></cas:serviceResponse>"""


class CASHandler(BaseHTTPRequestHandler):
    tickets: dict = {}
    validations: list = []

    def do_GET(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/cas/login":
            self.send_response(302)
            self.send_header("Location", query["service"][0] + "&ticket=ST-redirected")
            self.end_headers()
            return
        if url.path in ("/cas/p3/serviceValidate", "/cas/serviceValidate"):
            ticket = query.get("ticket", [""])[0]
            self.validations.append((ticket, query.get("service", [""])[0]))
            # A CAS ticket is single use.
            user = self.tickets.pop(ticket, None)
            body = SUCCESS.format(user=user) if user else FAILURE
            self.send_response(200)
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.end_headers()
            self.wfile.write(body.encode())
            return
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def cas_server(settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), CASHandler)
    # shutdown() waits up to one poll interval: the default 0.5 s cost every test that much.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    CASHandler.tickets, CASHandler.validations = {}, []
    settings.CAS_SERVER_URL = f"http://127.0.0.1:{server.server_port}/cas/"
    yield CASHandler
    server.shutdown()
    server.server_close()


def test_login_page_offers_sso_only_when_configured(client, settings, cas_server):
    assert "统一身份认证登录" in client.get("/accounts/login/").content.decode()
    settings.CAS_SERVER_URL = ""
    assert "统一身份认证登录" not in client.get("/accounts/login/").content.decode()
    assert client.get("/accounts/cas/login/").status_code == 404


def test_without_ticket_the_browser_is_sent_to_the_cas_server(client, cas_server, settings):
    response = client.get("/accounts/cas/login/")
    assert response.status_code == 302
    assert response["Location"].startswith(settings.CAS_SERVER_URL + "login?service=")


def test_imported_student_signs_in_with_a_valid_ticket(client, cas_server):
    student = StudentFactory(student_number="2025123456")
    cas_server.tickets["ST-1"] = "2025123456"
    response = client.get("/accounts/cas/login/?ticket=ST-1")
    assert response.status_code == 302
    student.refresh_from_db()
    assert student.user is not None and student.user.username == "2025123456"
    assert client.session["_auth_user_id"] == str(student.user_id)
    # The ticket was really validated by the CAS server for this portal's service URL.
    assert cas_server.validations[0][0] == "ST-1"
    assert "/accounts/cas/login/" in cas_server.validations[0][1]
    assert client.get("/").status_code == 302


def test_staff_account_maps_by_username(client, cas_server):
    staff = UserFactory(username="t2001", role="registrar")
    cas_server.tickets["ST-2"] = "t2001"
    client.get("/accounts/cas/login/?ticket=ST-2")
    assert client.session["_auth_user_id"] == str(staff.pk)


def test_unknown_cas_user_is_refused_and_no_user_is_created(client, cas_server):
    cas_server.tickets["ST-3"] = "stranger"
    before = User.objects.count()
    response = client.get("/accounts/cas/login/?ticket=ST-3")
    assert response.status_code == 403
    assert User.objects.count() == before
    assert "_auth_user_id" not in client.session


def test_forged_or_replayed_ticket_is_refused(client, cas_server):
    StudentFactory(student_number="2025000777")
    cas_server.tickets["ST-4"] = "2025000777"
    assert client.get("/accounts/cas/login/?ticket=ST-4").status_code == 302
    client.logout()
    # Same ticket again: the CAS server no longer knows it.
    assert client.get("/accounts/cas/login/?ticket=ST-4").status_code == 403
    assert client.get("/accounts/cas/login/?ticket=ST-made-up").status_code == 403


def test_inactive_account_cannot_sign_in_through_cas(client, cas_server):
    UserFactory(username="t3001", role="secretary", is_active=False)
    cas_server.tickets["ST-5"] = "t3001"
    assert client.get("/accounts/cas/login/?ticket=ST-5").status_code == 403
