"""The class monitor's page (班长/学习委员): their class's progress after signing in."""

from django.shortcuts import render
from django.views.decorators.cache import never_cache

from students.permissions import capability_required

from .. import selectors


@never_cache
@capability_required("class.monitor")
def class_progress(request):
    """Counts and the names of classmates not done, per class the student monitors; nothing more."""
    return render(
        request, "verification/class_progress.html", {"rows": selectors.monitored_class_progress(user=request.user)}
    )
