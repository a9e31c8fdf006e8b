from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from .models import Campaign, Checklist, Evidence, FieldCheck, Flag, FlagEvent, SupportRequest


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "opens_at", "closes_at", "closed_at")
    list_filter = ("kind",)
    search_fields = ("name",)
    filter_horizontal = ("cohorts",)


@admin.register(Checklist)
class ChecklistAdmin(admin.ModelAdmin):
    list_display = ("student", "campaign", "state", "finished_at", "last_activity_at")
    list_filter = ("campaign", "state")
    search_fields = ("student__student_number", "student__name")
    list_select_related = ("student", "campaign")
    raw_id_fields = ("student",)


@admin.register(FieldCheck)
class FieldCheckAdmin(admin.ModelAdmin):
    list_display = ("checklist", "field_code", "status", "answered_at", "is_proxy")
    list_filter = ("status", "field_code")
    search_fields = ("checklist__student__student_number", "checklist__student__name")
    raw_id_fields = ("checklist", "answered_by")


class FlagEventInline(admin.TabularInline):
    model = FlagEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "action", "from_status", "to_status", "actor", "note")
    readonly_fields = fields


@admin.register(Flag)
class FlagAdmin(admin.ModelAdmin):
    """A flag's values are shown as its field displays them to staff (证件号码 masked), never edited here."""

    list_display = ("checklist", "field_code", "status", "created_at")
    list_filter = ("status", "field_code")
    search_fields = ("checklist__student__student_number", "checklist__student__name")
    raw_id_fields = ("checklist", "created_by")
    exclude = ("recorded_value", "claimed_value")
    readonly_fields = ("recorded", "claimed")
    inlines = [FlagEventInline]

    def has_add_permission(self, request):
        return False  # flags come from students (or a proxy) through the verification services

    @admin.display(description=_("学信网记录值"))
    def recorded(self, obj):
        return obj.field.display(obj.recorded_value, masked=True) if obj and obj.pk else ""

    @admin.display(description=_("正确值"))
    def claimed(self, obj):
        return obj.field.display(obj.claimed_value, masked=True) if obj and obj.pk else ""


@admin.register(Evidence)
class EvidenceAdmin(admin.ModelAdmin):
    list_display = ("original_name", "flag", "content_type", "size", "uploaded_at")
    search_fields = ("flag__checklist__student__student_number",)
    raw_id_fields = ("flag", "uploaded_by")
    readonly_fields = ("storage_name", "sha256", "size", "content_type")


@admin.register(SupportRequest)
class SupportRequestAdmin(admin.ModelAdmin):
    list_display = ("checklist", "kind", "status", "created_at")
    list_filter = ("kind", "status")
    search_fields = ("checklist__student__student_number", "checklist__student__name")
    raw_id_fields = ("checklist",)
