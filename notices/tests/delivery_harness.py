"""The outside world of the delivery tests, run locally, and a real Celery worker.

- ``SmtpRecorder``: an aiosmtpd server keeping every message it accepted.  It
  can refuse chosen recipients (451 unless told otherwise), or hold one RCPT until the test says so
  (to kill a worker before that message is accepted).
- ``RobotServer``: http.server standing in for WeCom and DingTalk group robots.
  It records every POST, checks DingTalk's timestamp + sign, and answers the
  errcode the test sets.
- ``CeleryWorker``: ``python -m celery -A registrar_portal worker`` on a queue
  of its own, against the test database, sending to the recorder.
- ``CeleryBeat``: ``python -m celery -A registrar_portal beat`` publishing the
  calendar's jobs to that queue every few seconds.
"""

import asyncio
import base64
import email
import email.policy
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate, *, timeout=20.0, interval=0.05, message="condition", log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    tail = f"\n--- worker log ---\n{log()}" if log else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {message}{tail}")


# ---------------------------------------------------------------------------
# SMTP
# ---------------------------------------------------------------------------


class SmtpRecorder:
    """aiosmtpd handler: ``messages`` holds (envelope recipients, parsed message) of every accepted mail."""

    def __init__(self):
        self.messages = []
        self.rcpt_count = 0
        self.attempts = {}  # address → RCPT commands seen
        # address → how many of its first RCPTs are refused (None: all of them).
        self.refuse = {}
        self.refusal = "451 4.3.0 Mailbox temporarily unavailable, try again later"  # what a refused RCPT hears
        self.hold_at = None  # the n-th RCPT of the session is held …
        self.holding = threading.Event()  # … this is set once it is …
        self.release = threading.Event()  # … until this is.
        self._lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self._lock:
            self.rcpt_count += 1
            number = self.rcpt_count
            self.attempts[address] = self.attempts.get(address, 0) + 1
            tries = self.attempts[address]
        if address in self.refuse and (self.refuse[address] is None or tries <= self.refuse[address]):
            return self.refusal
        if number == self.hold_at:
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.02)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def recipients(self) -> list[str]:
        with self._lock:
            return sorted(to for tos, _message in self.messages for to in tos)


class SmtpServer:
    def __init__(self):
        self.recorder = SmtpRecorder()
        self.port = free_port()
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.recorder.release.set()
        self.controller.stop()


# ---------------------------------------------------------------------------
# Group robots
# ---------------------------------------------------------------------------


def dingtalk_sign(timestamp: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class RobotServer:
    """Records each POST as a dict: path, query, body (JSON), at (time.time()), signed (DingTalk check)."""

    def __init__(self):
        self.posts = []
        self.errcode = 0
        self.secrets = {}  # path → DingTalk signing secret (its posts must be signed)
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.httpd.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def posts_to(self, path: str) -> list[dict]:
        with self._lock:
            return [post for post in self.posts if post["path"] == path]

    def _verdict(self, path: str, query: dict) -> bool | None:
        secret = self.secrets.get(path)
        if secret is None:
            return None
        timestamp, sign = query.get("timestamp", [""])[0], query.get("sign", [""])[0]
        if not timestamp.isdigit():
            return False
        # DingTalk refuses a timestamp more than an hour away from its own clock.
        fresh = abs(time.time() * 1000 - int(timestamp)) < 3600 * 1000
        return fresh and hmac.compare_digest(sign, dingtalk_sign(timestamp, secret))

    def _handler(self):
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                signed = robot._verdict(parts.path, query)
                with robot._lock:
                    robot.posts.append(
                        {"path": parts.path, "query": query, "body": body, "at": time.time(), "signed": signed}
                    )
                if signed is False:
                    answer = {"errcode": 310000, "errmsg": "sign not match"}
                elif robot.errcode:
                    answer = {"errcode": robot.errcode, "errmsg": "refused by the test"}
                else:
                    answer = {"errcode": 0, "errmsg": "ok"}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler

    def __enter__(self):
        # shutdown() waits up to one poll interval: the default 0.5 s cost every test that much.
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------------------
# Celery worker
# ---------------------------------------------------------------------------


def worker_database_url() -> str:
    """The database the test runs in (test_…), as a DATABASE_URL for another process."""
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    return f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{quote(db['NAME'], safe='')}"


class CeleryWorker:
    """One solo worker process: killing its pid kills the task it runs, nothing is left orphaned."""

    def __init__(self, *, queue: str, smtp_port: int, lease_seconds: int, log_path: Path):
        self.queue, self.log_path = queue, log_path
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "notices.tests.worker_settings",
            "ROLLCHECK_TEST_QUEUE": queue,
            "DEBUG": "1",
            # The same keys as this process: the worker reads the rows this test wrote.
            "SECRET_KEY": settings.SECRET_KEY,
            "DATABASE_URL": worker_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
            "REMINDER_LEASE_SECONDS": str(lease_seconds),
            "PRIVATE_ROOT": str(settings.PRIVATE_ROOT),
            "TIME_ZONE": settings.TIME_ZONE,
            "DIGEST_TIME": settings.DIGEST_TIME,
            "LOG_LEVEL": "INFO",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        if getattr(settings, "ID_NUMBER_KEYS", None):
            self.env["ID_NUMBER_KEYS"] = ",".join(settings.ID_NUMBER_KEYS)
            self.env["ID_NUMBER_HASH_KEY"] = settings.ID_NUMBER_HASH_KEY
        self.process = None
        self.starts = 0

    def start(self):
        self.starts += 1
        log = open(self.log_path, "a")  # the child writes to it until it ends
        log.write(f"=== worker start {self.starts}\n")
        log.flush()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "registrar_portal",
                "worker",
                "-P",
                "solo",
                "-c",
                "1",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-Q",
                self.queue,
                "-n",
                f"{self.queue}-{self.starts}@%h",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        marker = f"{self.queue}-{self.starts}@"
        wait_until(
            lambda: self.process.poll() is not None or self._ready(marker),
            timeout=60,
            message="the worker to be ready",
            log=self.log,
        )
        if self.process.poll() is not None:
            raise AssertionError(f"the worker exited with {self.process.returncode}\n{self.log()}")
        return self

    def _ready(self, marker: str) -> bool:
        return any(marker in line and " ready." in line for line in self.log().splitlines())

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except FileNotFoundError:
            return ""

    def kill(self):
        """SIGKILL: no shutdown, no ack, whatever it was doing stops there."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        # The test is over: a Celery shutdown (1–2 s) buys nothing.  The kernel closes
        # its sockets, so PostgreSQL ends its sessions before the tables are flushed, and
        # BrokerQueue.cleanup removes what it had taken from Redis.
        self.kill()


class CeleryBeat:
    """``celery beat`` with the worker's environment: it only publishes the scheduled tasks to the test's queue."""

    def __init__(self, worker: CeleryWorker, *, every: float, directory: Path):
        self.env = {**worker.env, "ROLLCHECK_BEAT_EVERY": str(every)}
        self.directory, self.log_path = directory, directory / "beat.log"
        self.process = None

    def start(self):
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "registrar_portal",
                "beat",
                "--schedule",
                str(self.directory / "beat-schedule"),
                "--pidfile",
                str(self.directory / "beat.pid"),
                "--max-interval",
                "1",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


class BrokerQueue:
    """The test's own queue on the real Redis: its length, whether it is drained, and cleanup."""

    def __init__(self, url: str, name: str):
        import redis

        self.client = redis.Redis.from_url(url)
        self.name = name

    def length(self) -> int:
        return self.client.llen(self.name)

    def _unacked_tags(self) -> list[bytes]:
        # kombu keeps each delivered, not yet acknowledged message in the "unacked" hash.
        tags = []
        for tag, raw in self.client.hgetall("unacked").items():
            try:
                routing_key = json.loads(raw)[2]
            except (ValueError, IndexError, TypeError):
                continue
            if routing_key == self.name:
                tags.append(tag)
        return tags

    def drained(self) -> bool:
        """Nothing waiting and nothing taken but unacknowledged (tasks ack late, after running)."""
        return self.length() == 0 and not self._unacked_tags()

    def wait_drained(self, *, timeout=20.0, log=None):
        # Twice, a little apart: between BRPOP and the unacked entry there is a moment of neither.
        for _ in range(2):
            wait_until(self.drained, timeout=timeout, message="the queue to drain", log=log)
            time.sleep(0.15)

    def cleanup(self):
        keys = list(self.client.scan_iter(match=f"{self.name}*"))
        # The exchange binding (kombu 5.7 names it "_kombu.binding_permanent.<queue>").
        keys += self.client.scan_iter(match=f"_kombu.binding*.{self.name}")
        self.client.delete(*keys)
        for tag in self._unacked_tags():
            self.client.hdel("unacked", tag)
            self.client.zrem("unacked_index", tag)
        self.client.close()
