from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NoticesConfig(AppConfig):
    name = "notices"
    verbose_name = _("通知")

    def ready(self):
        # notices reacts to verification's signals; verification never imports notices (docs/architecture.md).
        from verification import signals

        from . import receivers

        signals.flag_moved.connect(receivers.flag_moved, dispatch_uid="notices.flag_moved")
        signals.campaign_saved.connect(receivers.campaign_saved, dispatch_uid="notices.campaign_saved")
