"""The registry of exports: every Exporter, by its identifier.

Buttons, the "my exports" form, the export log's filter, the Celery task and
the download view all read this registry; adding an export is one module in
this package listed in ``MODULES``.
"""

import importlib

from students.permissions import has_capability

from .base import Exporter

# One module per export, in the order the "my exports" page offers them.
MODULES = (
    "class_signoff",
    "department_errors",
    "class_errors",
    "chsi_corrections",
    "photo_corrections",
    "unverified",
    "findings",
    "access_log",
    "campaign_records",
    "source_differences",
)

_exporters: dict[str, Exporter] = {}
_loaded = False


def register(cls: type[Exporter]) -> type[Exporter]:
    """Class decorator: make ``cls`` available under its ``key``."""
    if cls.key in _exporters and type(_exporters[cls.key]) is not cls:
        raise ValueError(f"two exporters named {cls.key!r}")
    _exporters[cls.key] = cls()
    return cls


def _load():
    global _loaded
    if not _loaded:
        for name in MODULES:
            importlib.import_module(f"{__package__}.{name}")
        _loaded = True


def all_exporters() -> list[Exporter]:
    _load()
    return list(_exporters.values())


def get(key) -> Exporter | None:
    _load()
    return _exporters.get(key)


def choices() -> list[tuple[str, str]]:
    """(identifier, label) of every export: the choices of ``Export.kind``."""
    return [(exporter.key, exporter.label) for exporter in all_exporters()]


def label_of(key: str) -> str:
    exporter = get(key)
    return str(exporter.label) if exporter else key


def allowed(user, exporter: Exporter, params: dict | None = None) -> bool:
    """May ``user`` run ``exporter`` at all, and (given cleaned ``params``) for each department or class named?"""
    if not has_capability(user, exporter.capability):
        return False
    return all(has_capability(user, exporter.capability, obj) for obj in _scope_objects(params or {}))


def _scope_objects(params: dict) -> list:
    from students.models import ClassGroup, Department

    objects = []
    for value in params.values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, (ClassGroup, Department)):
                objects.append(item)
    return objects


def available_to(user) -> list[Exporter]:
    """The exports ``user`` may ask for at all (within their scope, the parameters decide)."""
    return [exporter for exporter in all_exporters() if allowed(user, exporter)]
