"""One way to hand a private stored file (evidence, export, digest, attachment) to a browser.

Every private download goes through private_file_response so that all of them carry the same headers:
always an attachment (never rendered inline, so an uploaded HTML/SVG/PDF cannot run in our origin), the
Chinese file name in RFC 5987 ``filename*`` with an ASCII fallback, no caching anywhere (personal data),
no content sniffing and a sandboxing CSP in case a browser renders it anyway.
"""

import io
from pathlib import Path
from urllib.parse import quote

from django.http import FileResponse, Http404

DEFAULT_CONTENT_TYPE = "application/octet-stream"


def content_disposition(filename: str) -> str:
    """``attachment; filename="<ascii fallback>"; filename*=UTF-8''<percent-encoded>`` (RFC 6266 / 5987)."""
    filename = (filename or "download").replace("\r", "").replace("\n", "").replace("/", "_").replace("\\", "_")
    fallback = filename.encode("ascii", "replace").decode("ascii").replace("?", "_").replace('"', "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def private_file_response(source, *, filename: str, content_type: str | None = None) -> FileResponse:
    """A private file as a download.

    ``source`` is the stored file's path (404 if it is gone: deleted by retention or withdrawal) or the file's
    bytes (e.g. decrypted in memory).
    """
    if isinstance(source, (bytes, bytearray)):
        stream = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        if not path.is_file():
            raise Http404
        stream = open(path, "rb")
    response = FileResponse(stream, content_type=content_type or DEFAULT_CONTENT_TYPE)
    response["Content-Disposition"] = content_disposition(filename)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
