"""JSON logs, one object a line, with the ``extra`` fields of each call: on stderr, or in a rotated file.

With ``CAREBED_LOG_DIR`` (as `carebed up` runs the services) each process logs to a file of its
own, ``{service}.log``, rotated at ``log_max_bytes`` with ``log_backups`` old files kept, so a
flood of warnings cannot fill the disk.
What floods (a device's rejected messages) is also sampled where it is logged (gateway/service.py).

Personal data (names, phone numbers) is never passed to info-level log calls; callers log
ids instead.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler

from carebed.settings import Settings

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(service: str, settings: Settings) -> None:
    handler: logging.Handler
    if settings.log_dir is not None:
        # One file per process: two processes rotating one file would rename it under each other.
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(
            settings.log_dir / f"{service}.log",
            maxBytes=settings.log_max_bytes,
            backupCount=settings.log_backups,
            encoding="utf-8",
        )
    else:
        handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("twilio").setLevel(logging.WARNING)
