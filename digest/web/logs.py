"""Reader tokens kept out of every log line the readers' app and its servers write.

A link token in `/preferences/…`, `/unsubscribe/…` or `/confirm/…` is a credential that
never expires, so no access log, error log or traceback may hold one:

- `redact(text)` replaces those path segments, and anything else shaped like a token,
  with `…` (reading %-escapes first, so `/pr%65ferences/TOKEN` is caught too);
- `RedactingFilter` applies it to a log record's message and traceback; the app puts it
  on its own logger (Flask's "Exception on /preferences/TOKEN" included) and on
  Werkzeug's; `gunicorn_conf.py` on gunicorn's error and access logs;
  `uvicorn_log.json` on uvicorn's (`python -m digest.web.logs` prints its path).
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from urllib.parse import unquote

TOKEN_IN_PATH = re.compile(r"(?i)(/(?:confirm|preferences|unsubscribe)/+)[^\s?\"']+")
TOKEN_LIKE = re.compile(r"[A-Za-z0-9_-]{40,}")  # a token in any other path
UVICORN_LOG_CONFIG = Path(__file__).with_name("uvicorn_log.json")


def redact(text: str) -> str:
    """`text` with anything like a token replaced by …, read as servers log it (with
    %-escapes decoded, so `/pr%65ferences/TOKEN` is caught too)."""
    text = TOKEN_IN_PATH.sub(r"\1…", unquote(text, errors="replace"))
    return TOKEN_LIKE.sub("…", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and its traceback) without tokens; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def redact_logger(logger: logging.Logger) -> None:
    """Put a RedactingFilter on `logger` and its handlers (once)."""
    for target in (logger, *logger.handlers):
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(RedactingFilter())


if __name__ == "__main__":
    print(UVICORN_LOG_CONFIG if sys.argv[1:] in ([], ["uvicorn"]) else
          "usage: python -m digest.web.logs [uvicorn]")
