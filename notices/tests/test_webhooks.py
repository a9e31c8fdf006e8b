"""Signed webhooks through the outbox: a local receiver checks the signature the way a campus system would."""

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from notices import outbox
from notices.models import WebhookDelivery, WebhookEndpoint
from notices.webhooks import webhook_endpoint_create, webhook_event
from verification import services
from verification.models import Checklist, Flag
from verification.tests.factories import CampaignFactory, student_with_account

pytestmark = pytest.mark.django_db


class Receiver:
    """Answers with the status it is told; records each request and whether its signature holds."""

    def __init__(self, secret_of):
        self.received, self.status, self.secret_of = [], 200, secret_of
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp = self.headers["X-RollCheck-Timestamp"]
                expected = (
                    "sha256="
                    + hmac.new(
                        receiver.secret_of().encode(), timestamp.encode() + b"." + body, hashlib.sha256
                    ).hexdigest()
                )
                receiver.received.append(
                    {
                        "event": self.headers["X-RollCheck-Event"],
                        "valid": hmac.compare_digest(expected, self.headers["X-RollCheck-Signature"]),
                        "body": json.loads(body),
                    }
                )
                self.send_response(receiver.status)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/rollcheck?token=abc123"
        # shutdown() waits up to one poll interval: the default 0.5 s cost every test that much.
        threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    secret = {}
    server = Receiver(lambda: secret["value"])
    endpoint, secret["value"] = webhook_endpoint_create(
        name="教务系统", url=server.url, events=[WebhookEndpoint.Event.FLAG_STATUS_CHANGED]
    )
    server.endpoint = endpoint
    yield server
    server.close()


@pytest.fixture
def flag(department, secretary):
    student = student_with_account(department=department)
    campaign = CampaignFactory(cohorts=[student.cohort])
    checklist = Checklist.objects.get(campaign=campaign, student=student)
    made = services.field_flag(
        checklist_id=checklist.pk, field_code="MZ", claimed_value="回族" if student.ethnicity != "回族" else "汉族",
        record_version=student.version, by=student.user,
    )  # fmt: skip
    return made


def forward(flag, secretary, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.flag_transition(flag_id=flag.pk, to=Flag.Status.FORWARDED, by=secretary)


def test_a_status_change_is_posted_signed_once(receiver, flag, secretary, django_capture_on_commit_callbacks):
    forward(flag, secretary, django_capture_on_commit_callbacks)
    (received,) = receiver.received
    assert received["valid"]
    assert received["event"] == "flag.status_changed"
    assert received["body"]["to"] == "forwarded" and received["body"]["student_number"]
    assert "id_number" not in json.dumps(received["body"])
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "sent"
    # A double dispatch sends nothing twice.
    outbox.send("webhook", [delivery.pk])
    assert len(receiver.received) == 1


def test_a_server_error_is_retried_and_a_gone_endpoint_fails(
    receiver, flag, secretary, django_capture_on_commit_callbacks
):
    receiver.status = 503
    forward(flag, secretary, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.next_attempt_at is not None
    receiver.status = 410
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
    outbox.send("webhook", [delivery.pk])
    delivery.refresh_from_db()
    assert delivery.status == "failed" and "410" in delivery.last_error


def test_a_department_sign_off_and_its_withdrawal_are_posted(
    department, secretary, registrar, django_capture_on_commit_callbacks
):
    secret = {}
    server = Receiver(lambda: secret["value"])
    try:
        _endpoint, secret["value"] = webhook_endpoint_create(
            name="学工系统",
            url=server.url,
            events=[WebhookEndpoint.Event.DEPARTMENT_SIGNED_OFF, WebhookEndpoint.Event.SIGN_OFF_WITHDRAWN],
        )
        student = student_with_account(department=department)
        campaign = CampaignFactory(cohorts=[student.cohort])
        with django_capture_on_commit_callbacks(execute=True):
            sign_off = services.department_sign_off(
                campaign=campaign, department=department, remark="张三休学", by=secretary
            )
        (signed,) = server.received
        assert signed["valid"] and signed["event"] == "department.signed_off"
        body = signed["body"]
        assert (body["sign_off"], body["campaign"], body["department_name"]) == (sign_off.pk, campaign.pk, "计算机学院")
        assert (body["total"], body["finished"]) == (1, 0)
        assert "张三" not in json.dumps(body, ensure_ascii=False)  # the remark is free text: not posted
        with django_capture_on_commit_callbacks(execute=True):
            services.sign_off_withdraw(sign_off_id=sign_off.pk, reason="报错尚未处理", by=registrar)
            # Withdrawing again changes nothing and posts nothing.
            services.sign_off_withdraw(sign_off_id=sign_off.pk, reason="报错尚未处理", by=registrar)
        assert [r["event"] for r in server.received] == ["department.signed_off", "department.sign_off_withdrawn"]
        assert server.received[1]["valid"] and server.received[1]["body"]["sign_off"] == sign_off.pk
    finally:
        server.close()


def test_an_endpoint_gets_only_the_events_it_chose(receiver, department, secretary, django_capture_on_commit_callbacks):
    student = student_with_account(department=department)
    campaign = CampaignFactory(cohorts=[student.cohort])
    with django_capture_on_commit_callbacks(execute=True):
        services.department_sign_off(campaign=campaign, department=department, by=secretary)
    assert receiver.received == [] and not WebhookDelivery.objects.exists()


def test_the_same_event_written_twice_is_one_delivery(receiver):
    assert webhook_event("flag.status_changed", key="flag-1-x", payload={}) == 1
    webhook_event("flag.status_changed", key="flag-1-x", payload={})
    assert WebhookDelivery.objects.count() == 1


def test_the_url_and_the_secret_are_encrypted_at_rest(receiver):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT url, secret FROM notices_webhookendpoint")
        url, secret = cursor.fetchone()
    assert "abc123" not in url and "127.0.0.1" not in url
    assert secret != receiver.endpoint.secret


def test_the_registrar_adds_an_endpoint_and_sees_the_secret_once(client, registrar, secretary):
    from django.urls import reverse

    client.force_login(secretary)
    assert client.get(reverse("notices:webhook_list")).status_code == 404
    client.force_login(registrar)
    page = client.post(
        reverse("notices:webhook_list"),
        {"name": "学工系统", "url": "https://xg.example.edu.cn/hook?token=s3cret", "events": ["flag.status_changed"]},
    )
    secret = page.context["secret"]
    assert secret and secret in page.content.decode()
    listing = client.get(reverse("notices:webhook_list")).content.decode()
    assert secret not in listing and "s3cret" not in listing
    endpoint = WebhookEndpoint.objects.get()
    client.post(reverse("notices:webhook_deactivate", args=[endpoint.pk]))
    endpoint.refresh_from_db()
    assert not endpoint.is_active
