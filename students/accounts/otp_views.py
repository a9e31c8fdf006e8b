"""The second factor for staff accounts: TOTP enrolment, verification and removal (django-otp).

Secretaries may enrol a device; registrar staff must when ``REQUIRE_2FA_FOR_REGISTRAR``
is on.  Which pages wait for a token is decided in one place,
``registrar_portal.security.SecondFactorMiddleware``; these views only enrol,
verify and remove.  Students get 404 here and never see any of it.

A device counts only once it is confirmed with a current token.  Wrong tokens
use django-otp's throttling (a growing delay per device); at verification they
also count as failed sign-ins for django-axes, which locks the account from that
address like wrong passwords do.
"""

import base64
import re
from base64 import b32encode
from urllib.parse import urlencode

import django_otp
import qrcode
import qrcode.image.svg
from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from django_otp.plugins.otp_totp.models import TOTPDevice

from registrar_portal.security import rotate_session, second_factor_required

from ..permissions import capability_required

DEVICE_NAME = "TOTP"


class TokenForm(forms.Form):
    token = forms.CharField(
        label=gettext_lazy("动态验证码"),
        max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )

    def clean_token(self):
        token = "".join(self.cleaned_data["token"].split())  # people copy codes as "123 456"
        if not re.fullmatch(r"\d{6}", token):
            raise forms.ValidationError(_("请输入验证器应用显示的 6 位数字。"))
        return token


def _next_url(request) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def _with_next(name: str, request) -> HttpResponseRedirect:
    response = redirect(name)
    candidate = request.POST.get("next") or request.GET.get("next")
    if candidate and url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()}):
        response["Location"] += "?" + urlencode({"next": candidate})
    return response


def confirmed_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).order_by("pk").first()


def _throttled(device) -> bool:
    allowed, _data = device.verify_is_allowed()
    return not allowed


def _qr_data_uri(device: TOTPDevice) -> str:
    """The otpauth:// URL as an SVG QR code, made on the server (no script, no PIL)."""
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    return "data:image/svg+xml;base64," + base64.b64encode(image.to_string()).decode("ascii")


def _secret_text(device: TOTPDevice) -> str:
    secret = b32encode(device.bin_key).decode("ascii").rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


@never_cache
@sensitive_post_parameters("token")
@capability_required("workspace.use")
def otp_setup(request):
    """Show the QR code and secret of a new device; the device counts once a current token confirms it."""
    user = request.user
    if confirmed_device(user) is not None:
        return render(
            request,
            "registration/otp_status.html",
            {"form": TokenForm(), "required": second_factor_required(user), "next": _next_url(request)},
        )
    with transaction.atomic():
        # One pending device per account, so the QR code stays the same between scanning and confirming.
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).order_by("pk").first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if _throttled(device):
            form.add_error("token", _("错误次数过多，请稍候再试。"))
        elif device.verify_token(form.cleaned_data["token"]):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user=user, confirmed=False).delete()
            django_otp.login(request, device)
            rotate_session(request)
            messages.success(request, _("两步验证已开启。以后登录时需要输入验证器应用显示的动态验证码。"))
            return redirect(_next_url(request))
        else:
            form.add_error("token", _("验证码不正确，请核对手机时间后重试。"))
    return render(
        request,
        "registration/otp_setup.html",
        {
            "form": form,
            "qr_code": _qr_data_uri(device),
            "secret": _secret_text(device),
            "issuer": settings.OTP_TOTP_ISSUER,
            "required": second_factor_required(user),
            "next": _next_url(request),
        },
    )


def _locked_response(request):
    return render(request, "registration/lockout.html", status=429)


@never_cache
@sensitive_post_parameters("token")
@capability_required("workspace.use")
def otp_verify(request):
    """After the password (or campus SSO): a current token from the account's device."""
    user = request.user
    device = confirmed_device(user)
    if device is None:
        return _with_next("otp_setup", request)
    if user.is_verified():
        return redirect(_next_url(request))
    form = TokenForm(request.POST or None)
    if request.method == "POST":
        verified = None
        if form.is_valid():
            if _throttled(device):
                form.add_error("token", _("错误次数过多，请稍候再试。"))
            else:
                verified = django_otp.verify_token(user, device.persistent_id, form.cleaned_data["token"])
                if verified is None:
                    form.add_error("token", _("验证码不正确，请重试。"))
        if verified is not None:
            django_otp.login(request, verified)
            rotate_session(request)
            return redirect(_next_url(request))
        # A wrong token is a failed sign-in: axes locks the account from this address after too many.
        credentials = {"username": user.get_username()}
        user_login_failed.send(sender=__name__, credentials=credentials, request=request)
        if AxesProxyHandler.is_locked(request, credentials):
            logout(request)
            return _locked_response(request)
    return render(request, "registration/otp_verify.html", {"form": form, "next": _next_url(request)})


@never_cache
@sensitive_post_parameters("token")
@require_POST
@capability_required("workspace.use")
def otp_disable(request):
    """Remove the account's device; a current token proves the device is at hand."""
    user = request.user
    device = confirmed_device(user)
    if device is None:
        return redirect("otp_setup")
    if second_factor_required(user):
        messages.error(request, _("学籍科账号必须使用两步验证；更换手机请联系系统管理员。"))
        return redirect("otp_setup")
    form = TokenForm(request.POST)
    if form.is_valid() and not _throttled(device):
        if django_otp.verify_token(user, device.persistent_id, form.cleaned_data["token"]) is not None:
            TOTPDevice.objects.filter(user=user).delete()
            messages.success(request, _("两步验证已关闭。"))
            return redirect("otp_setup")
    messages.error(request, _("验证码不正确，两步验证未关闭。"))
    return redirect("otp_setup")
