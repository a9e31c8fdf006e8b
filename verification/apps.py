from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VerificationConfig(AppConfig):
    name = "verification"
    verbose_name = _("学籍核对")

    def ready(self):
        from auditlog.registry import auditlog
        from django.db.models.signals import post_save

        from students import signals
        from students.models import Student

        from . import (
            checks,  # noqa: F401  (registers the review-chain check)
            receivers,
            retention,  # noqa: F401  (evidence files follow their rows)
        )
        from .models import Flag

        # verification reacts to the roster import; students never imports verification.
        signals.roster_imported.connect(receivers.roster_imported, dispatch_uid="verification.roster_imported")
        # Checklists carry their student's department and class (the dashboards' counts).
        post_save.connect(receivers.student_saved, sender=Student, dispatch_uid="verification.student_saved")
        signals.photos_imported.connect(receivers.photos_imported, dispatch_uid="verification.photos_imported")
        signals.keys_rotated.connect(receivers.keys_rotated, dispatch_uid="verification.keys_rotated")

        # A flag's values are sensitive when its field is (证件号码), which a mask callable
        # cannot tell: the diff masks anything shaped like an identifier and any ID number
        # quoted in free text, and Flag.get_additional_data() records the values as the
        # flag's field displays them masked.
        auditlog.register(
            Flag,
            exclude_fields=["updated_at", "record_version"],
            mask_fields=["recorded_value", "claimed_value", "explanation", "return_reason"],
            mask_callable="students.idnumbers.mask_value",
        )
