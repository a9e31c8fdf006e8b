"""The access log page for registrar staff: search who looked at what."""

from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from .filters import AccessLogFilter
from .models import AccessEvent
from .permissions import capability_required


@never_cache
@capability_required("export.access_log")
def access_log_list(request):
    # The same filter form as the export, so the file holds exactly the rows the page lists.
    form = AccessLogFilter(request.GET, user=request.user)
    events = form.events() if form.is_valid() else AccessEvent.objects.none()
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    return render(request, "students/access_log.html", {"form": form, "page": page})
