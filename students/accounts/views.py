"""First sign-in (claim) views for students."""

import time

from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.contrib import messages
from django.contrib.auth import login, password_validation
from django.shortcuts import redirect, render
from django.utils.functional import lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from .. import normalize, permissions
from ..audit import access_log
from ..models import AccessEvent
from ..permissions import capability_required, require_capability
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
        label=gettext_lazy("设置密码"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        # The rules, under the input, before anyone trips over them.
        help_text=lazy(lambda: " ".join(password_validation.password_validators_help_texts()), str)(),
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
            messages.info(request, _("该学号的账号已激活，请直接登录；忘记密码可通过“忘记密码”重新设置。"))
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


# --- Forgotten password: the claim check again, then a new password -------------------------------------

RESET_SESSION_KEY = "password_reset_student"


@never_cache
@sensitive_post_parameters("id_suffix")
def password_reset(request):
    """The same three answers and the same lockout as the claim: a guesser gains nothing by coming here."""
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
        else:
            request.session[RESET_SESSION_KEY] = {"id": student.pk, "at": time.time()}
            return redirect("password_reset_new")
    return render(request, "registration/password_reset.html", {"form": form})


@never_cache
@sensitive_post_parameters("password1", "password2")
def password_reset_new(request):
    pending = request.session.get(RESET_SESSION_KEY)
    if not pending or time.time() - pending["at"] > CLAIM_SECONDS:
        request.session.pop(RESET_SESSION_KEY, None)
        messages.error(request, _("请先验证身份。"))
        return redirect("password_reset")
    form = ChoosePasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        request.session.pop(RESET_SESSION_KEY, None)
        try:
            user = accounts.student_password_reset(student_id=pending["id"], password=form.cleaned_data["password1"])
        except accounts.ClaimError as exc:
            messages.error(request, str(exc))
            return redirect("login")
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, _("密码已重新设置，其他设备上的登录已退出。以后请用学号和新密码登录。"))
        return redirect("home")
    return render(request, "registration/password_reset_new.html", {"form": form})


# --- Registrar staff, from the student's page ----------------------------------------------------------


def _student_in_scope(request, pk):
    student = permissions.get_student_for(request.user, pk=pk)
    require_capability(request.user, "account.unlock", student)
    return student


@require_POST
@capability_required("account.unlock")
def student_signin_unlock(request, pk):
    """Lift the lockout of the student's 学号 (a student who mistyped too often and called the office)."""
    student = _student_in_scope(request, pk)
    username = student.user.username if student.user_id else student.student_number
    removed = accounts.signin_unlock(username=username)
    access_log(
        request,
        AccessEvent.Action.ACCOUNT_UNLOCK,
        student=student,
        target=student.student_number,
        detail=_("清除了 %(count)s 条登录失败记录") % {"count": removed},
    )
    messages.success(request, _("已解除该学生的登录锁定。"))
    return redirect("students:student_detail", pk=student.pk)


@require_POST
@capability_required("account.unlock")
def student_signin_reset(request, pk):
    """The student's password stops working and every session ends; the student claims the account again."""
    student = _student_in_scope(request, pk)
    if not accounts.signin_reset(student=student):
        messages.info(request, _("该学生还没有登录账号，无需重置。"))
        return redirect("students:student_detail", pk=student.pk)
    access_log(
        request,
        AccessEvent.Action.SIGNIN_RESET,
        student=student,
        target=student.student_number,
        detail=_("密码已作废并退出所有登录；学生需用学号、姓名和证件号码后六位重新激活"),
    )
    messages.success(request, _("已重置该学生的登录：原密码不能再用，学生需用学号、姓名和证件号码后六位重新激活账号。"))
    return redirect("students:student_detail", pk=student.pk)
