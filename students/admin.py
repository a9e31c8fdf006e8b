from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from . import fields as roll_fields
from .audit import access_log
from .models import (
    AccessEvent,
    ApiClient,
    ClassGroup,
    Cohort,
    Department,
    ImportFinding,
    Major,
    Photo,
    RosterImport,
    RosterPreset,
    RosterSource,
    SourceRecord,
    SourceResolution,
    Student,
    User,
    UserSession,
)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "first_name", "role", "is_active", "last_login")
    list_filter = ("role", "is_active", "departments")
    search_fields = ("username", "first_name", "last_name", "email")
    filter_horizontal = ("departments", "classes", "groups", "user_permissions")
    # 负责院系 for secretaries, 负责班级 for counsellors (辅导员/班主任).
    fieldsets = BaseUserAdmin.fieldsets + ((_("学籍核对"), {"fields": ("role", "departments", "classes")}),)
    add_fieldsets = BaseUserAdmin.add_fieldsets + ((_("学籍核对"), {"fields": ("role",)}),)


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ("name", "code")
    search_fields = ("name", "code")


@admin.register(Major)
class MajorAdmin(admin.ModelAdmin):
    list_display = ("code", "name")
    search_fields = ("code", "name")


@admin.register(Cohort)
class CohortAdmin(admin.ModelAdmin):
    list_display = ("__str__", "admission_year", "level")
    list_filter = ("level",)


@admin.register(ClassGroup)
class ClassGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "department", "major", "cohort")
    list_filter = ("department", "cohort")
    search_fields = ("name",)
    list_select_related = ("department", "major", "cohort")
    # 班长/学习委员: students of the class who see its progress after signing in (searched by 学号:
    # a list of every student account would not fit a page).
    autocomplete_fields = ("monitors",)


class FindingInline(admin.TabularInline):
    model = ImportFinding
    extra = 0
    can_delete = False
    fields = ("field_code", "kind", "message")
    readonly_fields = fields


SENSITIVE_KEYS = tuple(roll_fields.sensitive_keys())


class StudentAdminForm(forms.ModelForm):
    """The record without its sensitive values: they can be replaced, never read back here."""

    new_id_number = forms.CharField(
        label=_("更换证件号码"),
        required=False,
        max_length=32,
        help_text=_("留空则不修改。完整号码不在此显示：请在学籍记录页填写理由后查看（会记入访问日志）。"),
    )

    class Meta:
        model = Student
        fields = [
            f.name
            for f in Student._meta.concrete_fields
            if f.editable and not f.primary_key and f.name not in (*SENSITIVE_KEYS, "id_number_hash")
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A new record needs its number; an existing one keeps it unless replaced.
        self.fields["new_id_number"].required = self.instance.pk is None

    def clean_new_id_number(self):
        raw = self.cleaned_data["new_id_number"]
        if not raw:
            return ""
        try:
            return roll_fields.BY_KEY["id_number"].normalise(raw)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def save(self, commit=True):
        if self.cleaned_data.get("new_id_number"):
            self.instance.id_number = self.cleaned_data["new_id_number"]
        return super().save(commit=commit)


@admin.register(Student)
class StudentAdmin(admin.ModelAdmin):
    """Sensitive values are masked here as on every staff page; each view of a record is logged."""

    form = StudentAdminForm
    list_display = ("student_number", "name", "masked_id", "department", "class_group", "roll_status")
    list_filter = ("department", "cohort", "roll_status")
    search_fields = ("student_number", "name")
    list_select_related = ("department", "class_group")
    raw_id_fields = ("user", "class_group", "major", "cohort")
    readonly_fields = ("masked_id", "version", "created_at", "updated_at")
    inlines = [FindingInline]

    @admin.display(description=_("证件号码"))
    def masked_id(self, obj):
        if obj is None or obj.pk is None:
            return ""
        # Revealing goes through the registrar's record page: a reason, and the access log.
        return format_html(
            '<span class="mono">{}</span> <a href="{}">{}</a>',
            obj.masked_id_number,
            reverse("students:student_detail", args=[obj.pk]),
            _("填写理由后显示完整号码"),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and response.status_code == 200:
            student = self.get_object(request, object_id)
            if student is not None:
                access_log(request, AccessEvent.Action.RECORD_VIEW, student=student, target=student.student_number)
        return response


@admin.register(RosterImport)
class RosterImportAdmin(admin.ModelAdmin):
    list_display = (
        "file_name",
        "started_at",
        "imported_by",
        "status",
        "created",
        "updated",
        "unchanged",
        "error_count",
    )
    list_filter = ("status",)
    search_fields = ("file_name",)
    readonly_fields = [f.name for f in RosterImport._meta.fields]


@admin.register(ImportFinding)
class ImportFindingAdmin(admin.ModelAdmin):
    list_display = ("student", "field_code", "kind", "message")
    list_filter = ("kind", "field_code")
    search_fields = ("student__student_number", "student__name")
    list_select_related = ("student",)
    raw_id_fields = ("student", "roster_import")


@admin.register(AccessEvent)
class AccessEventAdmin(admin.ModelAdmin):
    """Read-only: the access log is append-only."""

    list_display = ("at", "user", "action", "student", "target", "rows", "ip_address")
    list_filter = ("action",)
    search_fields = ("user__username", "student__student_number", "student__name", "target")
    list_select_related = ("user", "student")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UserSession)
class UserSessionAdmin(admin.ModelAdmin):
    list_display = ("user", "created_at")
    search_fields = ("user__username",)
    raw_id_fields = ("user",)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the portal's own pages and commands write; the admin only looks."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RosterSource)
class RosterSourceAdmin(ReadOnlyAdmin):
    list_display = ("name", "file_name", "rows", "imported_at", "imported_by")


@admin.register(SourceRecord)
class SourceRecordAdmin(ReadOnlyAdmin):
    # The ID number stays out: only its masked form is shown.
    list_display = ("source", "row", "student_number", "masked_id_number")
    fields = ("source", "row", "student_number", "masked_id_number")
    readonly_fields = fields
    list_filter = ("source",)
    search_fields = ("student_number",)

    @admin.display(description=_("证件号码"))
    def masked_id_number(self, obj):
        return roll_fields.BY_KEY["id_number"].display(obj.id_number, masked=True)


@admin.register(SourceResolution)
class SourceResolutionAdmin(ReadOnlyAdmin):
    list_display = ("source", "student_number", "field_code", "decision", "decided_by", "decided_at")
    exclude = ("values_hash",)
    list_filter = ("source", "decision")


@admin.register(RosterPreset)
class RosterPresetAdmin(admin.ModelAdmin):
    list_display = ("name", "updated_by", "updated_at")


@admin.register(ApiClient)
class ApiClientAdmin(ReadOnlyAdmin):
    list_display = ("name", "token_prefix", "can_write", "can_reveal", "last_used_at", "revoked_at")
    exclude = ("token_hash",)


@admin.register(Photo)
class PhotoAdmin(ReadOnlyAdmin):
    list_display = ("student", "kind", "width", "height", "size", "imported_at")
    list_filter = ("kind",)
    raw_id_fields = ("student",)
    exclude = ("storage_name",)
