"""Registrar staff manage the webhook endpoints of campus systems (notices/webhooks.py)."""

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from students.permissions import capability_required

from .models import WebhookDelivery, WebhookEndpoint
from .webhooks import webhook_endpoint_create


class WebhookEndpointForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("名称"), max_length=100)
    url = forms.URLField(
        label=gettext_lazy("地址"), assume_scheme="https", help_text=gettext_lazy("以 https:// 开头的接收地址")
    )
    events = forms.MultipleChoiceField(
        label=gettext_lazy("事件"), choices=WebhookEndpoint.Event.choices, widget=forms.CheckboxSelectMultiple
    )


def _masked(url: str) -> str:
    scheme, _sep, rest = url.partition("://")
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}/…"


@capability_required("api.manage_clients")
def webhook_list(request):
    secret = None
    form = WebhookEndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        _endpoint, secret = webhook_endpoint_create(**form.cleaned_data, by=request.user)
        messages.success(request, _("已添加：签名密钥只显示这一次，请交给接收方保存。"))
        form = WebhookEndpointForm()
    endpoints = [
        (endpoint, _masked(endpoint.url), WebhookDelivery.objects.filter(endpoint=endpoint).order_by("-id")[:5])
        for endpoint in WebhookEndpoint.objects.all()
    ]
    return render(request, "notices/webhooks.html", {"form": form, "secret": secret, "endpoints": endpoints})


@require_POST
@capability_required("api.manage_clients")
def webhook_deactivate(request, endpoint_id: int):
    endpoint = get_object_or_404(WebhookEndpoint, pk=endpoint_id, is_active=True)
    endpoint.is_active = False
    endpoint.save(update_fields=["is_active"])
    messages.success(request, _("已停用“%(name)s”") % {"name": endpoint.name})
    return redirect("notices:webhook_list")
