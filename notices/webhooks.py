"""Signed webhooks: events posted to campus systems, through the outbox (exactly once, retried).

Each delivery is a JSON POST with the headers

    X-RollCheck-Event: flag.status_changed
    X-RollCheck-Delivery: <delivery id>
    X-RollCheck-Timestamp: <unix seconds>
    X-RollCheck-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the endpoint's secret>

A receiver recomputes the signature with its copy of the secret, compares in
constant time and rejects old timestamps.  A 2xx answer is success; 408, 429,
5xx and network errors are retried under the outbox's policy; any other answer
is final.  Payloads name students by 学号 only: no ID numbers, no values.
"""

import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request

from django.utils.translation import gettext_lazy

from . import outbox
from .models import WebhookDelivery, WebhookEndpoint

TIMEOUT = 10
RETRY_STATUSES = {408, 425, 429}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def webhook_endpoint_create(*, name: str, url: str, events: list[str], by=None) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (shown once to the registrar, then only used)."""
    secret = secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint.objects.create(name=name, url=url, secret=secret, events=events, created_by=by)
    return endpoint, secret


def webhook_event(event: str, *, key: str, payload: dict) -> int:
    """Write one delivery per active endpoint subscribed to ``event``; they are sent once the transaction commits.

    ``key`` names the event: writing it twice (a retried request) posts it once.
    """
    endpoints = [e for e in WebhookEndpoint.objects.filter(is_active=True) if event in e.events]
    if not endpoints:
        return 0
    for endpoint in endpoints:
        WebhookDelivery.objects.get_or_create(
            endpoint=endpoint, key=key, defaults={"event": event, "payload": payload, "channel": WebhookChannel.name}
        )
    outbox.enqueue_pending_on_commit("webhook", event=event, key=key)
    return len(endpoints)


class WebhookStream(outbox.Stream):
    name = "webhook"
    model = WebhookDelivery
    task = "notices.tasks.webhook_deliveries_send"

    def load(self, row_id: int) -> WebhookDelivery:
        return WebhookDelivery.objects.select_related("endpoint").get(pk=row_id)

    def compose(self, row: WebhookDelivery, channel: outbox.Channel) -> outbox.OutgoingMessage:
        if not row.endpoint.is_active:
            raise outbox.Skip(gettext_lazy("地址已停用"))
        body = json.dumps({"event": row.event, "delivery": row.pk, **row.payload}, ensure_ascii=False)
        return outbox.OutgoingMessage(
            to=row.endpoint.url,
            subject=row.event,
            body=body,
            options={"secret": row.endpoint.secret, "delivery": row.pk, "event": row.event},
        )


@outbox.register
class WebhookChannel(outbox.Channel):
    name = "webhook"
    label = gettext_lazy("Webhook")

    def address(self, recipient) -> str:
        return recipient if isinstance(recipient, str) else getattr(recipient, "url", "")

    def send(self, message: outbox.OutgoingMessage) -> None:
        body = message.body.encode()
        timestamp = str(int(time.time()))
        request = urllib.request.Request(
            message.to,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "RollCheck-Webhook/1",
                "X-RollCheck-Event": message.options["event"],
                "X-RollCheck-Delivery": str(message.options["delivery"]),
                "X-RollCheck-Timestamp": timestamp,
                "X-RollCheck-Signature": signature(message.options["secret"], timestamp, body),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT):
                return
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code}"
            if exc.code >= 500 or exc.code in RETRY_STATUSES:
                raise outbox.RetryLater(reason) from None
            raise outbox.PermanentFailure(reason) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise outbox.RetryLater(f"{type(exc).__name__}: {exc}") from None
