"""Evidence PDFs rewritten without active content (docs/privacy.md "How it is protected").

qpdf (through pikepdf) parses the upload, repairing what it can; every key that makes a PDF act by itself is
removed wherever it occurs, and qpdf writes only the objects still referenced, so scripts and embedded files
do not survive even as unreferenced objects.  Password-protected and unreadable PDFs are refused.
"""

import io

import pikepdf
from django.utils.translation import gettext as _

from .evidence import EvidenceError

# A scanned document has a few objects per page; a PDF with far more is not a scan (and slow to walk).
MAX_PDF_OBJECTS = 20_000

# Keys that make a PDF do something by itself: scripts, actions run on open/close/hover, embedded or
# attached files, XFA forms, rich media.  Removed wherever they occur.
_ACTIVE_KEYS = frozenset(
    {"/JS", "/JavaScript", "/AA", "/OpenAction", "/EmbeddedFiles", "/EF", "/XFA", "/RichMediaContent"}
)
# The only action a link may keep: moving to another page of the same document.
_SAFE_ACTIONS = frozenset({"/GoTo"})
_ACTIVE_ANNOTATIONS = frozenset({"/FileAttachment", "/RichMedia", "/Screen", "/Movie", "/Sound", "/3D"})


def _is_unsafe_action(value) -> bool:
    if isinstance(value, pikepdf.Array):
        return any(_is_unsafe_action(item) for item in value)
    return isinstance(value, pikepdf.Dictionary) and str(value.get("/S", "")) not in _SAFE_ACTIONS


def _defuse(pdf: pikepdf.Pdf) -> None:
    """Remove every active part, in place.  qpdf writes only what is still referenced."""
    seen = set()
    pending = [pdf.trailer]
    while pending:
        obj = pending.pop()
        if not isinstance(obj, (pikepdf.Dictionary, pikepdf.Array, pikepdf.Stream)):
            continue  # names, strings, numbers (pikepdf hands numbers back as Python ints)
        if obj.is_indirect:
            if obj.objgen in seen:
                continue
            seen.add(obj.objgen)
        if isinstance(obj, pikepdf.Stream):
            obj = obj.stream_dict
        if isinstance(obj, pikepdf.Dictionary):
            for key in list(obj.keys()):
                if key in _ACTIVE_KEYS or (key in ("/A", "/Next") and _is_unsafe_action(obj[key])):
                    del obj[key]
            annotations = obj.get("/Annots")
            if isinstance(annotations, pikepdf.Array):
                kept = [a for a in annotations if str(a.get("/Subtype", "")) not in _ACTIVE_ANNOTATIONS]
                if len(kept) != len(annotations):
                    obj["/Annots"] = pikepdf.Array(kept)
            pending.extend(obj[key] for key in obj.keys())
        elif isinstance(obj, pikepdf.Array):
            pending.extend(obj)


def sanitised_pdf(data: bytes) -> bytes:
    try:
        with pikepdf.open(io.BytesIO(data)) as pdf:
            if len(pdf.objects) > MAX_PDF_OBJECTS:
                raise EvidenceError(_("PDF 文件过于复杂，请上传扫描件或照片"))
            if len(pdf.pages) == 0:
                raise EvidenceError(_("PDF 文件没有内容"))
            _defuse(pdf)
            # Who made the file, with what, when: not needed as evidence.
            if "/Info" in pdf.trailer:
                del pdf.trailer["/Info"]
            if "/Metadata" in pdf.Root:
                del pdf.Root["/Metadata"]
            out = io.BytesIO()
            # Plain objects (no object streams), so what is stored can be read and checked as it is.
            pdf.save(out, encryption=False, object_stream_mode=pikepdf.ObjectStreamMode.disable)
            return out.getvalue()
    except pikepdf.PasswordError:
        raise EvidenceError(_("PDF 文件设有密码，请上传未加密的文件")) from None
    except (pikepdf.PdfError, RecursionError, ValueError, KeyError, TypeError):
        raise EvidenceError(_("PDF 文件已损坏，无法读取")) from None
