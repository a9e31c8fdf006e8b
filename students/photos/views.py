"""Serving a student's photo: permission-checked, private to the browser, and logged for staff."""

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.views.decorators.http import require_GET

from ..audit import access_log
from ..models import AccessEvent, Photo
from ..permissions import get_student_for
from .services import path_of

# The browser may keep a photo for a while but never share it (no proxy, no public URL); the
# pages add the photo's hash to the address (?v=…), so a re-imported photo is fetched afresh.
PHOTO_CACHE = "private, max-age=600"


@require_GET
@login_required
def photo(request, student_id: int, kind: str):
    if kind not in Photo.Kind.values:
        raise Http404
    student = get_student_for(request.user, pk=student_id)
    item = Photo.objects.filter(student=student, kind=kind).first()
    if item is None or not path_of(item.storage_name).is_file():
        raise Http404
    if student.user_id != request.user.pk:
        access_log(request, AccessEvent.Action.PHOTO_VIEW, student=student, target=kind)
    response = FileResponse(path_of(item.storage_name).open("rb"), content_type="image/jpeg")
    response["Cache-Control"] = PHOTO_CACHE
    response.private_cache_ok = True
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Disposition"] = "inline"
    response["ETag"] = f'"{item.sha256[:32]}"'
    return response
