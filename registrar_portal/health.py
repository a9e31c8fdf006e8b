"""A health endpoint for the load balancer: the database and the broker answer."""

import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_broker() -> str:
    if not settings.REDIS_URL:
        return "in-process"  # the embedded default runs tasks without a broker
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


@never_cache
def health(request):
    checks, healthy = {}, True
    for name, check in (("database", _check_database), ("broker", _check_broker)):
        started = time.monotonic()
        try:
            outcome = check() or "ok"
        except Exception as exc:  # any failure means "not ready"; the type is enough for the balancer
            outcome, healthy = f"error: {type(exc).__name__}", False
        checks[name] = {"status": outcome, "ms": round((time.monotonic() - started) * 1000, 1)}
    return JsonResponse({"status": "ok" if healthy else "error", "checks": checks}, status=200 if healthy else 503)
