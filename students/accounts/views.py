"""First sign-in (claim) views for students."""

import time

from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.contrib import messages
from django.contrib.auth import login, password_validation
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from .. import normalize
from . import services as accounts

CLAIM_SESSION_KEY = "claim_student"
CLAIM_SECONDS = 15 * 60


class ClaimForm(forms.Form):
    student_number = forms.CharField(label=gettext_lazy("学号"), max_length=32)
    name = forms.CharField(label=gettext_lazy("姓名"), max_length=100)
    id_suffix = forms.CharField(
        label=gettext_lazy("证件号码后六位"),
        min_length=6,
        max_length=6,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )


class ChoosePasswordForm(forms.Form):
    password1 = forms.CharField(
        label=gettext_lazy("设置密码"), strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label=gettext_lazy("再次输入密码"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        cleaned = super().clean()
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", _("两次输入的密码不一致"))
        elif first:
            try:
                password_validation.validate_password(first)
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return cleaned


def _locked_response(request):
    return render(request, "registration/lockout.html", status=429)


@never_cache
@sensitive_post_parameters("id_suffix")
def claim(request):
    form = ClaimForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        number = normalize.normalise_identifier(form.cleaned_data["student_number"])
        credentials = {"username": number}
        if AxesProxyHandler.is_locked(request, credentials):
            return _locked_response(request)
        student = accounts.student_claim_match(
            student_number=number, name=form.cleaned_data["name"], id_suffix=form.cleaned_data["id_suffix"]
        )
        if student is None:
            accounts.claim_failed(request=request, student_number=number)
            if AxesProxyHandler.is_locked(request, credentials):
                return _locked_response(request)
            form.add_error(None, accounts.CLAIM_FAILED)
        elif accounts.account_is_claimed(student):
            messages.info(request, _("该学号的账号已激活，请直接登录；忘记密码请联系学籍科。"))
            return redirect("login")
        else:
            request.session[CLAIM_SESSION_KEY] = {"id": student.pk, "at": time.time()}
            return redirect("claim_password")
    return render(request, "registration/claim.html", {"form": form})


@never_cache
@sensitive_post_parameters("password1", "password2")
def claim_password(request):
    pending = request.session.get(CLAIM_SESSION_KEY)
    if not pending or time.time() - pending["at"] > CLAIM_SECONDS:
        request.session.pop(CLAIM_SESSION_KEY, None)
        messages.error(request, _("请先验证身份。"))
        return redirect("claim")
    form = ChoosePasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = accounts.student_account_activate(student_id=pending["id"], password=form.cleaned_data["password1"])
        except accounts.ClaimError as exc:
            request.session.pop(CLAIM_SESSION_KEY, None)
            messages.error(request, str(exc))
            return redirect("login")
        request.session.pop(CLAIM_SESSION_KEY, None)
        # login() rotates the session key, so the claim session cannot be replayed.
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, _("账号已激活。以后请用学号和这个密码登录。"))
        return redirect("home")
    return render(request, "registration/claim_password.html", {"form": form})
