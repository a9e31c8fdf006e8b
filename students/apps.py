from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class StudentsConfig(AppConfig):
    name = "students"
    verbose_name = _("学籍")

    def ready(self):
        from auditlog.registry import auditlog

        from registrar_portal import logging as portal_logging
        from registrar_portal import security  # noqa: F401  (connects the session signals)

        portal_logging.install_record_factory()
        from . import fields as roll_fields
        from .models import Student
        from .photos import services as photo_services  # noqa: F401  (a deleted photo's bytes go with it)

        # The registry names the sensitive fields; the phone number is masked the same way.
        auditlog.register(
            Student,
            exclude_fields=["id_number_hash", "version", "created_at", "updated_at"],
            mask_fields=[*roll_fields.sensitive_keys(), "phone"],
            mask_callable="students.idnumbers.mask",
        )
