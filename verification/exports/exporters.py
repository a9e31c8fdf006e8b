"""Deprecated: the exporter API before the registry, kept only until notices.digests moves to ``storage``.

New code uses ``registry.get(key)`` and ``storage.write_export`` / ``storage.read_export``
(encrypted at rest).  Delete this module once nothing imports it.
"""

from . import registry, writer


class UnverifiedStudents:
    def __init__(self, *, campaign, departments):
        self.params = {"campaign": campaign, "departments": list(departments)}


def write_xlsx(exporter: UnverifiedStudents, target, *, exported_by) -> int:
    return writer.write_xlsx(registry.get("unverified"), None, exporter.params, target, exported_by=exported_by)
