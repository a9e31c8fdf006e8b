"""Posting to WeCom (企业微信) and DingTalk (钉钉) group robots.

Both take a JSON POST to the webhook URL and answer ``{"errcode": 0}`` on
success.  DingTalk robots with 加签 need ``timestamp`` and ``sign`` (HMAC-SHA256
of "timestamp\\nsecret", base64) in the query string.  Each robot accepts at
most 20 messages a minute.
"""

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
import urllib.request

from students.crypto import keyed_hash

TIMEOUT = 10
PER_MINUTE = 20  # what both WeCom and DingTalk robots accept


class RobotError(Exception):
    pass


def recipient_key(url: str) -> str:
    """What the outbox records as a robot's recipient: a keyed hash, never the URL (it holds the token)."""
    return "robot:" + keyed_hash(url)


def url_masked(url: str) -> str:
    """The robot's address without its token, for pages: ``https://host/path?access_token=abc•••••••``."""
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    query = "&".join(
        f"{name}={value[:3]}{'•' * 8}" for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")) + (f"?{query}" if query else "")


def signed_url(url: str, secret: str, *, now_ms: int | None = None) -> str:
    if not secret:
        return url
    timestamp = str(now_ms if now_ms is not None else int(time.time() * 1000))
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest))
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}timestamp={timestamp}&sign={sign}"


def payload(kind: str, title: str, text: str) -> dict:
    if kind == "dingtalk":
        return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    return {"msgtype": "markdown", "markdown": {"content": text}}


def post(kind: str, url: str, secret: str, title: str, text: str) -> None:
    target = signed_url(url, secret) if kind == "dingtalk" else url
    request = urllib.request.Request(
        target,
        data=json.dumps(payload(kind, title, text), ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            body = response.read()
    except OSError as exc:
        raise RobotError(f"{type(exc).__name__}: {exc}") from exc
    try:
        answer = json.loads(body or b"{}")
    except ValueError:
        raise RobotError(f"unreadable answer: {body[:200]!r}") from None
    if not isinstance(answer, dict):  # a proxy's page or a bare value: not the robot answering
        raise RobotError(f"unreadable answer: {body[:200]!r}")
    if answer.get("errcode", 0) != 0:
        raise RobotError(f"errcode {answer.get('errcode')}: {answer.get('errmsg', '')}")
