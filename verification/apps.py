from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VerificationConfig(AppConfig):
    name = "verification"
    verbose_name = _("学籍核对")

    def ready(self):
        from auditlog.registry import auditlog

        from . import retention  # noqa: F401  (evidence files follow their rows)
        from .models import Flag

        # A flag on 证件号码 carries ID numbers in its values: mask any that appear.
        auditlog.register(
            Flag,
            exclude_fields=["updated_at", "record_version"],
            mask_fields=["recorded_value", "claimed_value"],
            mask_callable="registrar_portal.logging.mask_text",
        )
