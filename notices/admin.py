"""The notices models in the Django admin.

Notices and help articles are edited here as in the portal.  Everything else is a record of what was
sent or read, shown read-only: the portal's services write it.  A group robot's webhook address and
signing secret are credentials and appear masked only.
"""

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from verification.admin import ReadOnlyAdmin

from . import robots, selectors
from .models import (
    ChannelConfig,
    Delivery,
    DepartmentChannel,
    Digest,
    DigestDelivery,
    HelpArticle,
    Message,
    Notice,
    NoticeAttachment,
    NoticeRead,
    Notification,
    ReminderStage,
    StaffReminder,
    WebhookDelivery,
    WebhookEndpoint,
)


class AttachmentInline(admin.TabularInline):
    model = NoticeAttachment
    extra = 0
    can_delete = False
    fields = ("original_name", "content_type", "size", "uploaded_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False  # uploaded on the notice's page in the portal, which checks the file


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin):
    list_display = ("title", "campaign", "published_at", "deadline", "created_at")
    list_filter = ("campaign",)
    search_fields = ("title",)
    filter_horizontal = ("cohorts", "departments")
    readonly_fields = ("created_by", "created_at", "updated_at")
    inlines = [AttachmentInline]


@admin.register(NoticeAttachment)
class NoticeAttachmentAdmin(ReadOnlyAdmin):
    list_display = ("original_name", "notice", "content_type", "size", "uploaded_at")
    search_fields = ("original_name", "notice__title")
    exclude = ("storage_name",)


@admin.register(NoticeRead)
class NoticeReadAdmin(ReadOnlyAdmin):
    list_display = ("notice", "user", "read_at")
    list_filter = ("notice",)
    search_fields = ("user__username",)
    list_select_related = ("notice", "user")


@admin.register(HelpArticle)
class HelpArticleAdmin(admin.ModelAdmin):
    list_display = ("title", "slug", "position", "updated_at")
    search_fields = ("title", "keywords", "body")
    readonly_fields = ("updated_by", "updated_at")


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ("user", "text", "created_at", "read_at")
    search_fields = ("user__username",)
    list_select_related = ("user",)


@admin.register(ReminderStage)
class ReminderStageAdmin(ReadOnlyAdmin):
    """The plan is changed on the campaign's reminder page, which keeps sent rounds and the schedule consistent."""

    list_display = ("campaign", "kind", "days_before", "send_at", "dispatched_at")
    list_filter = ("campaign", "kind")
    list_select_related = ("campaign",)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ("student", "stage", "channel", "status", "attempts", "sent_at")
    list_filter = ("status", "channel", "stage__campaign")
    search_fields = ("student__student_number", "student__name")
    list_select_related = ("student", "stage__campaign")


@admin.register(DepartmentChannel)
class DepartmentChannelAdmin(ReadOnlyAdmin):
    """Set on the portal's 群机器人 page; here the credentials are masked."""

    list_display = ("department", "robot", "webhook")
    fields = ("department", "robot", "webhook", "secret")
    readonly_fields = fields
    list_select_related = ("department",)

    @admin.display(description=_("Webhook 地址"))
    def webhook(self, obj):
        return robots.url_masked(obj.webhook_url)

    @admin.display(description=_("加签密钥"))
    def secret(self, obj):
        return selectors.secret_masked(obj.signing_secret)


class DigestDeliveryInline(admin.TabularInline):
    model = DigestDelivery
    extra = 0
    can_delete = False
    fields = ("channel", "status", "attempts", "sent_at", "last_error")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(DigestDelivery)
class DigestDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("digest", "channel", "status", "attempts", "sent_at")
    list_filter = ("status", "channel")
    fields = ("digest", "channel", "status", "attempts", "sent_at", "last_error")
    list_select_related = ("digest__department",)


@admin.register(Digest)
class DigestAdmin(ReadOnlyAdmin):
    list_display = ("department", "campaign", "day", "row_count", "total")
    list_filter = ("department", "campaign")
    exclude = ("storage_name",)
    inlines = [DigestDeliveryInline]
    list_select_related = ("department", "campaign")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    # The address may carry a token and the secret signs deliveries: neither is shown.
    list_display = ("name", "masked_url", "events", "is_active", "created_at")
    fields = ("name", "masked_url", "events", "is_active", "created_by", "created_at")
    readonly_fields = fields

    @admin.display(description=_("地址"))
    def masked_url(self, obj):
        scheme, _sep, rest = obj.url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}/…"


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("endpoint", "event", "status", "attempts", "sent_at", "created_at")
    list_filter = ("status", "event")
    exclude = ("payload",)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("student", "key", "channel", "status", "attempts", "sent_at", "created_at")
    list_filter = ("status", "channel")
    search_fields = ("student__student_number", "key")
    list_select_related = ("student",)


@admin.register(StaffReminder)
class StaffReminderAdmin(ReadOnlyAdmin):
    list_display = ("user", "campaign", "stage", "channel", "status", "attempts", "sent_at", "created_at")
    list_filter = ("status", "stage")
    search_fields = ("user__username",)
    list_select_related = ("user", "campaign")


class ChannelConfigForm(forms.ModelForm):
    # The secret is never put back into the page: an empty field keeps the saved one.
    secret = forms.CharField(
        label=_("密钥"), required=False, widget=forms.PasswordInput(render_value=False), help_text=_("留空则不修改")
    )

    class Meta:
        model = ChannelConfig
        fields = ["name", "enabled", "position", "provider", "options", "secret", "night_sms_allowed"]

    def clean_secret(self):
        return self.cleaned_data["secret"] or (self.instance.secret if self.instance.pk else "")


@admin.register(ChannelConfig)
class ChannelConfigAdmin(admin.ModelAdmin):
    """Reminder channels; registrar staff set them on 提醒渠道 (notices:reminder_channels, docs/reminders.md)."""

    form = ChannelConfigForm
    list_display = ["name", "enabled", "position", "provider", "night_sms_allowed", "secret_masked"]
    ordering = ["position", "id"]

    @admin.display(description=_("密钥"))
    def secret_masked(self, config):
        return selectors.secret_masked(config.secret)
