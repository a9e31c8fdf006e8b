"""Sign-in URLs (no namespace: Django's auth views expect ``login``/``logout``)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from . import cas, otp_views, views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("claim/", views.claim, name="claim"),
    path("cas/login/", cas.LoginView.as_view(), name="cas_ng_login"),
    path("cas/logout/", cas.LogoutView.as_view(), name="cas_ng_logout"),
    path("claim/password/", views.claim_password, name="claim_password"),
    path("password/forgot/", views.password_reset, name="password_reset"),
    path("password/forgot/new/", views.password_reset_new, name="password_reset_new"),
    path("2fa/setup/", otp_views.otp_setup, name="otp_setup"),
    path("2fa/verify/", otp_views.otp_verify, name="otp_verify"),
    path("2fa/disable/", otp_views.otp_disable, name="otp_disable"),
]
