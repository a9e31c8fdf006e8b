"""The portal's project package.

Celery's app (``registrar_portal.celery``) is imported on first use rather than here: every task
module imports it (through ``enqueue``), ``celery -A registrar_portal`` finds it by itself, and
importing Celery cost every management command and web worker about 0.2 s of start-up.
"""

__all__ = ("celery_app",)


def __getattr__(name):
    if name == "celery_app":
        from .celery import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
