"""Logging set-up, with a filter that keeps tokens and passwords out of every log line."""

from __future__ import annotations

import logging
import re
from pathlib import Path

_SECRETS = re.compile(
    r"(kb_[A-Za-z0-9_-]{8})[A-Za-z0-9_-]+"
    r"|((?:password|passwd|pass|secret|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    return _SECRETS.sub(lambda m: (m.group(1) + "…") if m.group(1) else m.group(2) + "***", text)


class RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure(level: str = "info", file: Path | None = None) -> None:
    handler: logging.Handler = (
        logging.FileHandler(file, encoding="utf-8") if file else logging.StreamHandler()
    )
    handler.addFilter(RedactFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
