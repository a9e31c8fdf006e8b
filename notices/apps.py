from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NoticesConfig(AppConfig):
    name = "notices"
    verbose_name = _("通知")

    def ready(self):
        # notices reacts to verification's signals; verification never imports notices (docs/architecture.md).
        from students import signals as student_signals
        from verification import signals

        from . import receivers

        signals.flag_moved.connect(receivers.flag_moved, dispatch_uid="notices.flag_moved")
        signals.campaign_saved.connect(receivers.campaign_saved, dispatch_uid="notices.campaign_saved")
        signals.department_signed_off.connect(
            receivers.department_signed_off, dispatch_uid="notices.department_signed_off"
        )
        signals.sign_off_withdrawn.connect(receivers.sign_off_withdrawn, dispatch_uid="notices.sign_off_withdrawn")
        signals.support_replied.connect(receivers.support_replied, dispatch_uid="notices.support_replied")
        signals.student_home.connect(receivers.student_home, dispatch_uid="notices.student_home")
        student_signals.keys_rotated.connect(receivers.keys_rotated, dispatch_uid="notices.keys_rotated")
