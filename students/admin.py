from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from .models import (
    AccessEvent,
    ClassGroup,
    Cohort,
    Department,
    ImportFinding,
    Major,
    RosterImport,
    Student,
    User,
    UserSession,
)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "first_name", "role", "is_active", "last_login")
    list_filter = ("role", "is_active", "departments")
    search_fields = ("username", "first_name", "last_name", "email")
    filter_horizontal = ("departments", "groups", "user_permissions")
    fieldsets = BaseUserAdmin.fieldsets + ((_("学籍核对"), {"fields": ("role", "departments")}),)
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


class FindingInline(admin.TabularInline):
    model = ImportFinding
    extra = 0
    can_delete = False
    fields = ("field_code", "kind", "message")
    readonly_fields = fields


@admin.register(Student)
class StudentAdmin(admin.ModelAdmin):
    list_display = ("student_number", "name", "masked_id", "department", "class_group", "roll_status")
    list_filter = ("department", "cohort", "roll_status")
    search_fields = ("student_number", "name")
    list_select_related = ("department", "class_group")
    raw_id_fields = ("user", "class_group", "major", "cohort")
    readonly_fields = ("version", "created_at", "updated_at")
    inlines = [FindingInline]

    @admin.display(description=_("证件号码"))
    def masked_id(self, obj):
        return obj.masked_id_number


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
