from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from ..models import Export
from . import registry


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, user):
        name = user.get_full_name()
        return _("%(name)s（%(username)s）") % {"name": name, "username": user.username} if name else user.username


class ExportLogFilterForm(forms.Form):
    user = UserChoiceField(
        label=_("导出人"), required=False, queryset=get_user_model().objects.none(), empty_label=_("全部")
    )
    kind = forms.ChoiceField(label=_("类型"), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only people who have exported something: a short list even in a large school.
        self.fields["user"].queryset = (
            get_user_model().objects.filter(pk__in=Export.objects.values("requested_by")).order_by("username")
        )
        self.fields["kind"].choices = [("", _("全部"))] + registry.choices()
