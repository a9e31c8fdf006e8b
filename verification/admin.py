from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from .models import (
    Campaign,
    CampaignEvent,
    Checklist,
    ChecklistCount,
    ClassProgressLink,
    DepartmentSignOff,
    Evidence,
    Export,
    FieldCheck,
    FinishCount,
    Flag,
    FlagEvent,
    SupportEvent,
    SupportRequest,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """A record the portal's services keep (a log, a sign-off with its counts): viewable, never edited here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    """Name and instructions only: the calendar, the fields and the cohorts change through the portal's campaign
    page (services.campaign_save logs each move, reopens what it closed and creates the checklists)."""

    list_display = ("name", "kind", "opens_at", "closes_at", "departments_close_at", "registrar_close_at", "closed_at")
    list_filter = ("kind",)
    search_fields = ("name",)
    readonly_fields = (
        "kind",
        "cohorts",
        "opens_at",
        "closes_at",
        "departments_close_at",
        "registrar_close_at",
        "closed_at",
        "field_codes",
        "created_by",
        "created_at",
    )

    def has_add_permission(self, request):
        return False


@admin.register(Checklist)
class ChecklistAdmin(ReadOnlyAdmin):
    """State, extension and membership move through the services (checklist_extend, checklist_exclude …),
    which log them and keep the state consistent with the answers."""

    list_display = ("student", "campaign", "state", "finished_at", "last_activity_at")
    list_filter = ("campaign", "state")
    search_fields = ("student__student_number", "student__name")
    list_select_related = ("student", "campaign")


# The dashboards' counts, kept by database triggers (verification/migrations/0012): shown to check them,
# never edited (``manage.py rebuild_dashboard_counts`` recomputes them).
@admin.register(ChecklistCount)
class ChecklistCountAdmin(ReadOnlyAdmin):
    list_display = ("campaign_id", "department_id", "class_group_id", "cohort_id", "state", "finished", "n")
    list_filter = ("state", "finished")


@admin.register(FinishCount)
class FinishCountAdmin(ReadOnlyAdmin):
    list_display = ("campaign_id", "quarter", "n")


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
    fields = ("created_at", "level", "action", "from_status", "to_status", "actor", "note")
    readonly_fields = fields


@admin.register(Flag)
class FlagAdmin(admin.ModelAdmin):
    """A flag's values are shown as its field displays them to staff (证件号码 masked), never edited here."""

    list_display = ("checklist", "field_code", "status", "review_level", "created_at")
    list_filter = ("status", "review_level", "field_code")
    search_fields = ("checklist__student__student_number", "checklist__student__name")
    raw_id_fields = ("checklist", "created_by")
    exclude = ("recorded_value", "claimed_value")
    readonly_fields = ("recorded", "claimed")
    inlines = [FlagEventInline]

    def has_add_permission(self, request):
        return False  # flags come from students (or a proxy) through the verification services

    def has_change_permission(self, request, obj=None):
        return False  # a move is flag_transition's: checked, logged, the student told

    def has_delete_permission(self, request, obj=None):
        return False

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


class SupportEventInline(admin.TabularInline):
    model = SupportEvent
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


SupportRequestAdmin.inlines = [SupportEventInline]


@admin.register(FlagEvent)
class FlagEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "flag", "action", "from_status", "to_status", "actor")
    list_filter = ("action",)
    search_fields = ("flag__checklist__student__student_number",)
    list_select_related = ("flag", "actor")


@admin.register(SupportEvent)
class SupportEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "request", "action", "to_status", "actor")
    list_filter = ("action",)
    list_select_related = ("request", "actor")


@admin.register(CampaignEvent)
class CampaignEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "campaign", "action", "department", "student", "actor", "note")
    list_filter = ("campaign", "action")
    search_fields = ("student__student_number", "student__name", "note")
    list_select_related = ("campaign", "department", "student", "actor")


@admin.register(DepartmentSignOff)
class DepartmentSignOffAdmin(ReadOnlyAdmin):
    """Signed off by the secretary, withdrawn by registrar staff, both on the portal's pages (logged)."""

    list_display = (
        "campaign",
        "department",
        "signed_at",
        "signed_by",
        "total",
        "finished",
        "flagged",
        "overdue",
        "excluded",
        "withdrawn_at",
    )
    list_filter = ("campaign", "department")
    list_select_related = ("campaign", "department", "signed_by")


@admin.register(ClassProgressLink)
class ClassProgressLinkAdmin(ReadOnlyAdmin):
    # The token opens the page without signing in: not shown.
    list_display = ("class_group", "campaign", "created_by", "created_at", "expires_at", "revoked_at")
    list_filter = ("campaign",)
    exclude = ("token",)
    list_select_related = ("class_group", "campaign", "created_by")


@admin.register(Export)
class ExportAdmin(ReadOnlyAdmin):
    list_display = ("requested_at", "kind", "requested_by", "status", "row_count", "ip_address")
    list_filter = ("kind", "status")
    exclude = ("storage_name",)
    list_select_related = ("requested_by",)
