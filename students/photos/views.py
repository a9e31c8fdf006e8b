"""Serving a student's photo: permission-checked, private to the browser, and logged for staff."""

import io

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.views.decorators.http import require_GET

from ..audit import access_log
from ..models import AccessEvent, Photo
from ..permissions import get_student_for
from .services import photo_bytes

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
    data = photo_bytes(item) if item is not None else None
    if data is None:
        raise Http404
    if student.user_id != request.user.pk:
        access_log(request, AccessEvent.Action.PHOTO_VIEW, student=student, target=kind)
    # A photo is at most 2 MB, read in one call from its pack (or its own file, if imported before packs).
    response = FileResponse(io.BytesIO(data), content_type="image/jpeg")
    response["Cache-Control"] = PHOTO_CACHE
    response.private_cache_ok = True
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Disposition"] = "inline"
    response["ETag"] = f'"{item.sha256[:32]}"'
    return response
