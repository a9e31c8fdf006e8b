from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from django.views.generic import RedirectView

from registrar_portal.health import health
from registrar_portal.views import home
from verification import urls as verification_urls
from verification.api import api
from verification.views import workspace as workspace_views


class FaviconView(RedirectView):
    permanent = True

    def get_redirect_url(self, *args, **kwargs):
        # Resolved per request: the hashed static name exists only after collectstatic.
        return static("favicon.svg")


# The admin speaks as the portal does, not as "Django 管理" (it is linked under 系统 for superusers).
admin.site.site_header = _("学籍核对 · 管理后台")
admin.site.site_title = _("学籍核对管理后台")
admin.site.index_title = _("数据管理")

urlpatterns = [
    path("", home, name="home"),
    path("favicon.ico", FaviconView.as_view()),
    path("health/", health, name="health"),
    path("accounts/", include("students.accounts.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("students/", include("students.urls")),
    path("exports/", include((verification_urls.export_patterns, "exports"))),
    path("notices/", include("notices.urls")),
    path("", include((verification_urls.student_patterns, "verification"))),
    path("workspace/", include((verification_urls.workspace_patterns, "workspace"))),
    path("p/<str:token>/", workspace_views.progress_public, name="class_progress_public"),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
]
