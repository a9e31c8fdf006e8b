#!/usr/bin/env python
"""Benchmark signed-in pages over HTTP: requests per second from gunicorn, against a bare Django in the same run.

    .venv/bin/python bench/pages.py [--students 50000] [--database-url URL] [--json]

Builds a school on a fresh PostgreSQL database through the real roster import
and one campaign over every cohort (``verification.services.campaign_save``),
states spread as ``bench/dashboards.py`` spreads them; signs in one student
and one registrar (with a confirmed TOTP device, the session verified) by
logging them in with Django's own ``login()`` and sending the session cookie.

Two gunicorns on free loopback ports, each as production runs it (2 sync
workers, access log on, ``DEBUG=0`` with the production variables, behind a
pretend nginx: ``X-Forwarded-Proto: https`` and ``X-Forwarded-For``):

- ours, the portal's settings with one bench-only page (``bench/bench_site.py``,
  ``bench/bench_urls.py``);
- the reference, the same view behind only Django's session and auth middleware
  (``bench/bench_bare.py``).

A small load generator (threads, ``http.client``, loopback only, bounded by
count and time) then measures, interleaved over ``ROUNDS`` rounds, the median
requests per second of: the bare view; the same view behind the portal's stack
(the simplest signed-in page); the student's checklist; the school dashboard.

Rows (higher is better; ratio = ours / reference):
``page_signed_in`` (goal ≥ 0.5× the bare view), ``page_checklist`` (goal ≥ 0.6×
the simplest signed-in page), ``page_school_dashboard`` (goal ≥ 150 req/s).
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from import_roster import OUT, PYTHON, ROOT, drop_database, fresh_database, row, run  # noqa: E402

ROUNDS = 3
SECONDS, MAX_REQUESTS, WARM_UP_SECONDS = 4.0, 5000, 0.5
CONCURRENCY = 4  # two per worker: one request queued while the other is served
WORKERS = 2
HOST = "localhost"
SIGNED_IN = "/bench/signed-in/"
GOALS = {"page_signed_in": 0.5, "page_checklist": 0.6, "page_school_dashboard": 150}


def production_env(database_url: str, static_root, private_root) -> dict:
    """DEBUG off with every variable production requires (deploy/env.example), behind one nginx."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "registrar_portal.settings",
        "DEBUG": "0",
        "SECRET_KEY": "benchmark-only-not-a-secret-" + "x" * 30,
        "ID_NUMBER_KEYS": base64.urlsafe_b64encode(hashlib.sha256(b"benchmark-only").digest()).decode(),
        "ID_NUMBER_HASH_KEY": hashlib.sha256(b"benchmark-only-hash").hexdigest(),
        "ALLOWED_HOSTS": HOST,
        "HTTPS": "1",
        "TRUSTED_PROXY_COUNT": "1",
        "PORTAL_URL": f"https://{HOST}",
        "DATABASE_URL": database_url,
        "CONN_MAX_AGE": "600",
        "REDIS_URL": "",
        "LOG_LEVEL": "WARNING",
        "STATIC_ROOT": str(static_root),
        "PRIVATE_ROOT": str(private_root),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH), str(ROOT), os.environ.get("PYTHONPATH")])),
    }


# ---------------------------------------------------------------------------
# Child step: the campaign and the two signed-in sessions (django.setup() in its own process)
# ---------------------------------------------------------------------------


def child_setup():
    import datetime

    from dashboards import SPREAD_SQL
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.utils import timezone
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from students.models import Cohort, Student, User
    from verification import services
    from verification.models import Campaign

    now = timezone.now()
    opens = now - datetime.timedelta(days=14)
    campaign = services.campaign_save(
        campaign=Campaign(name="2025级新生学籍核对", opens_at=opens, closes_at=now + datetime.timedelta(days=7)),
        cohorts=list(Cohort.objects.all()),
    )
    with connection.cursor() as cursor:
        cursor.execute(SPREAD_SQL, {"opens": opens, "campaign": campaign.pk})
        # Every table, as autovacuum would have after the import: with the students table unanalysed the
        # checklist's query planned a scan of the whole campaign.
        cursor.execute("VACUUM ANALYZE")
    # A student still to check: the page shows every field with its 正确 / 有误 buttons.
    student = Student.objects.filter(checklists__campaign=campaign, checklists__state="not_started").first()
    student.user = User.objects.create_user("bench-student", first_name=student.name, role=User.Role.STUDENT)
    student.save(update_fields=["user"])
    registrar = User.objects.create_user("bench-registrar", first_name="学籍科", role=User.Role.REGISTRAR)
    device = TOTPDevice.objects.create(user=registrar, name="bench", confirmed=True)

    backend = "django.contrib.auth.backends.ModelBackend"
    sessions = {}
    for name, user in (("student", student.user), ("registrar", registrar)):
        client = Client()
        client.force_login(user, backend=backend)  # Django's login(): the portal's sign-in receivers run
        sessions[name] = client.cookies[settings.SESSION_COOKIE_NAME].value
        if name == "registrar":  # the second factor verified, as after otp_verify
            session = client.session
            session[DEVICE_ID_SESSION_KEY] = device.persistent_id
            session.save()
    print(json.dumps({"campaign": campaign.pk, "cookie": settings.SESSION_COOKIE_NAME, **sessions}))


# ---------------------------------------------------------------------------
# gunicorn and the load generator
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """gunicorn as deploy/rollcheck-web.service runs it (no worker recycling), on a free loopback port."""

    def __init__(self, settings_module: str, env: dict, log_dir: Path):
        self.port = free_port()
        self.log = log_dir / f"gunicorn-{settings_module}.log"
        command = [
            PYTHON, "-m", "gunicorn", "registrar_portal.wsgi", "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(WORKERS), "--timeout", "120", "--access-logfile", "-",
            "--forwarded-allow-ips", "127.0.0.1",
        ]  # fmt: skip
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": settings_module},
                stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + 90
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn ({settings_module}) exited:\n{self.log.read_text()[-3000:]}")
            try:
                status, _body = self.get(SIGNED_IN, cookie=None)
                if status:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"gunicorn ({settings_module}) did not answer in 90 s") from None
                time.sleep(0.2)

    def get(self, path: str, cookie) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", path, headers=headers(cookie))
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def worker_peak_mb(self) -> int:
        """The largest peak RSS (VmHWM) of this server's workers."""
        peaks = []
        for pid in children(self.process.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            peaks += [int(line.split()[1]) // 1024 for line in status.splitlines() if line.startswith("VmHWM:")]
        return max(peaks, default=0)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(p) for p in task.read_text().split()]
    return found


def headers(cookie) -> dict:
    sent = {"Host": HOST, "X-Forwarded-Proto": "https", "X-Forwarded-For": "127.0.0.1", "User-Agent": "roll-bench"}
    if cookie:
        sent["Cookie"] = cookie
    return sent


def load(port: int, path: str, cookie: str, *, seconds: float, max_requests: int) -> dict:
    """Requests per second from CONCURRENCY threads, each on its own connection, until either bound is hit."""
    sent = headers(cookie)
    lock = threading.Lock()
    counts = {"issued": 0, "ok": 0, "bytes": 0}
    errors = []
    deadline = time.perf_counter() + seconds

    def worker():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            while time.perf_counter() < deadline:
                with lock:
                    if counts["issued"] >= max_requests:
                        return
                    counts["issued"] += 1
                # gunicorn's sync workers close every connection; http.client reopens it on the next request.
                connection.request("GET", path, headers=sent)
                response = connection.getresponse()
                body = response.read()
                with lock:
                    if response.status == 200:
                        counts["ok"] += 1
                        counts["bytes"] += len(body)
                    elif len(errors) < 5:
                        errors.append((response.status, response.getheader("Location")))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"GET {path} answered {errors} (a signed-in 200 expected)")
    return {"req_s": counts["ok"] / elapsed, "requests": counts["ok"], "bytes": counts["bytes"] // max(counts["ok"], 1)}


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


def measure(students: int, database_url: str) -> list[dict]:
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    env = production_env(database_url, work / "static", work / "private")
    servers = []
    fresh_database(database_url)
    try:
        run([PYTHON, "manage.py", "migrate", "-v", "0"], env)
        # Production serves hashed static names from the collected manifest.
        run([PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"], env)
        roster = work / f"roster-{students}.xlsx"
        run([PYTHON, "-c", f"from students.demo import generate_roster as g, write_roster_xlsx as w; w(g({students}), {str(roster)!r})"], env)  # fmt: skip
        _s, _mb, out = run([PYTHON, "manage.py", "import_roster", roster, "--format", "json"], env)
        assert json.loads(out)["created"] == students, out[:500]
        built = json.loads(run([PYTHON, __file__, "--child", "setup"], env)[2].strip().splitlines()[-1])

        ours = Server("bench_site", env, work)
        servers.append(ours)
        bare = Server("bench_bare", env, work)
        servers.append(bare)
        student = f"{built['cookie']}={built['student']}"
        registrar = f"{built['cookie']}={built['registrar']}"
        targets = {
            "bare": (bare, SIGNED_IN, student),
            "signed_in": (ours, SIGNED_IN, student),
            "checklist": (ours, f"/check/{built['campaign']}/", student),
            "school_dashboard": (ours, f"/workspace/school/?campaign={built['campaign']}", registrar),
        }
        # Each page once, checked: a redirect to sign-in or to the second factor would measure the wrong page.
        for name, (server, path, cookie) in targets.items():
            status, body = server.get(path, cookie)
            assert status == 200, f"{name}: GET {path} → {status}"
        results = {name: [] for name in targets}
        for _round in range(ROUNDS):
            for name, (server, path, cookie) in targets.items():
                load(server.port, path, cookie, seconds=WARM_UP_SECONDS, max_requests=MAX_REQUESTS)
                results[name].append(load(server.port, path, cookie, seconds=SECONDS, max_requests=MAX_REQUESTS))
        peak_mb = ours.worker_peak_mb()
        bare_peak_mb = bare.worker_peak_mb()
    finally:
        for server in servers:
            server.stop()
        drop_database(database_url)
        shutil.rmtree(work, ignore_errors=True)

    def median(name):
        return statistics.median(r["req_s"] for r in results[name])

    def extra(name):
        return {
            "rounds": [round(r["req_s"], 1) for r in results[name]],
            "response_bytes": results[name][-1]["bytes"],
            "higher_is_better": True,
        }

    signed_in = median("signed_in")
    return [
        row("page_signed_in", students, signed_in, "bare-django", median("bare"), "req/s", peak_mb,
            reference_peak_mb=bare_peak_mb, goal=GOALS["page_signed_in"], **extra("signed_in")),
        row("page_checklist", students, median("checklist"), "signed-in-page", signed_in, "req/s", peak_mb,
            goal=GOALS["page_checklist"], **extra("checklist")),
        row("page_school_dashboard", students, median("school_dashboard"), "signed-in-page", signed_in, "req/s",
            peak_mb, goal_req_s=GOALS["page_school_dashboard"], **extra("school_dashboard")),
    ]  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=50_000)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_PAGES_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rollcheck_bench_pages"),
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        return child_setup()
    results = measure(args.students, args.database_url)
    (OUT / f"pages-{args.students}.json").write_text(json.dumps(results, indent=2))
    for result in results:
        if args.json:
            print(json.dumps(result))
        else:
            print(
                f"{result['name']:22} ours {result['ours']:7.1f} req/s  {result['reference']:14} "
                f"{result['reference_value']:7.1f} req/s  ratio {result['ratio']:5.2f}×  "
                f"({result['response_bytes']} bytes, peak worker {result['peak_mb']} MB, load {result['load_average']})"
            )
    if not args.json:
        print(
            "higher is better; goals: signed-in page ≥ 0.5× the bare view, checklist ≥ 0.6× the signed-in page, "
            "school dashboard ≥ 150 req/s"
        )


if __name__ == "__main__":
    main()
