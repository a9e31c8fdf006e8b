from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from registrar_portal.health import health
from students import account_views, cas, otp_views
from students.views import home
from verification import workspace_views


class FaviconView(RedirectView):
    permanent = True

    def get_redirect_url(self, *args, **kwargs):
        # Resolved per request: the hashed static name exists only after collectstatic.
        return static("favicon.svg")


urlpatterns = [
    path("", home, name="home"),
    path("favicon.ico", FaviconView.as_view()),
    path("health/", health, name="health"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/claim/", account_views.claim, name="claim"),
    path("accounts/cas/login/", cas.LoginView.as_view(), name="cas_ng_login"),
    path("accounts/cas/logout/", cas.LogoutView.as_view(), name="cas_ng_logout"),
    path("accounts/claim/password/", account_views.claim_password, name="claim_password"),
    path("accounts/2fa/setup/", otp_views.otp_setup, name="otp_setup"),
    path("accounts/2fa/verify/", otp_views.otp_verify, name="otp_verify"),
    path("accounts/2fa/disable/", otp_views.otp_disable, name="otp_disable"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("students/", include("students.urls")),
    path("exports/", include("verification.export_urls")),
    path("notices/", include("notices.urls")),
    path("", include("verification.urls")),
    path("workspace/", include("verification.workspace_urls")),
    path("p/<str:token>/", workspace_views.progress_public, name="class_progress_public"),
    path("admin/", admin.site.urls),
]
