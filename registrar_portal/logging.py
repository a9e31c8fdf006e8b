"""Logging helpers: ID numbers masked in every record, and one JSON line per event.

``MaskIdNumbersFilter`` rewrites any 18-digit (or old 15-digit) ID number in a
log record's message and arguments to its masked form, whatever logger wrote
it (Django's request logging includes POST data and URLs of failing requests).
``JsonFormatter`` writes one JSON object per line for the production log pipeline.
"""

import json
import logging
import re

# An ID number standing alone: 17 digits and a digit or X, or 15 digits.
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{14})(\d{3}[0-9Xx]|\d)(?![0-9A-Za-z])")


def mask_text(text: str) -> str:
    def masked(match):
        whole = match.group(0)
        if len(whole) not in (15, 18):
            return whole
        return "*" * (len(whole) - 4) + whole[-4:]

    return ID_NUMBER.sub(masked, text)


class MaskIdNumbersFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the caller's bug; log it unchanged
            return True
        masked = mask_text(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse a cached exc_text: render the traceback now so that the cached text is masked.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    FIELDS = ("name", "levelname", "module", "process")

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("status_code", "request_id", "task_id"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


_mask = MaskIdNumbersFilter()


def install_record_factory():
    """Mask ID numbers when a record is created, so every handler (and test capture) sees the masked text."""
    base = logging.getLogRecordFactory()
    if getattr(base, "masks_id_numbers", False):
        return

    def factory(*args, **kwargs):
        record = base(*args, **kwargs)
        _mask.filter(record)
        return record

    factory.masks_id_numbers = True
    logging.setLogRecordFactory(factory)
