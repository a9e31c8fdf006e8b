from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from students.models import ImportFinding

from ..models import Export


class ExportRequestForm(forms.Form):
    """The shape of an export request; the service decides whether the scope is allowed."""

    kind = forms.ChoiceField(label=_("导出内容"), choices=Export.Kind.choices)
    campaign = forms.IntegerField(label=_("核对活动"), required=False, min_value=1)
    class_group = forms.IntegerField(label=_("班级"), required=False, min_value=1)
    department = forms.IntegerField(label=_("院系"), required=False, min_value=1)
    finding_kind = forms.ChoiceField(
        label=_("问题类型"), required=False, choices=[("", "")] + ImportFinding.Kind.choices
    )
    # Filters of the access-log export.
    action = forms.CharField(required=False, max_length=32)
    username = forms.CharField(required=False, max_length=64)
    student_number = forms.CharField(required=False, max_length=32)


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, user):
        name = user.get_full_name()
        return _("%(name)s（%(username)s）") % {"name": name, "username": user.username} if name else user.username


class ExportLogFilterForm(forms.Form):
    user = UserChoiceField(
        label=_("导出人"), required=False, queryset=get_user_model().objects.none(), empty_label=_("全部")
    )
    kind = forms.ChoiceField(label=_("类型"), required=False, choices=[("", _("全部"))] + Export.Kind.choices)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only people who have exported something: a short list even in a large school.
        self.fields["user"].queryset = (
            get_user_model().objects.filter(pk__in=Export.objects.values("requested_by")).order_by("username")
        )
