"""gunicorn settings for the readers' app: its logs without reader tokens.

    gunicorn -c python:digest.web.gunicorn_conf -w 1 --threads 8 -b 127.0.0.1:8080 \\
        --access-logfile - 'digest.web.wsgi:app'

Options on the command line still apply; this file only sets the logger class, which
puts a RedactingFilter (logs.py) on gunicorn's error and access logs, so neither
`GET /preferences/TOKEN` nor an "Error handling request /unsubscribe/TOKEN" is written.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from digest.web.logs import redact_logger


class RedactingLogger(Logger):  # type: ignore[misc]  # gunicorn has no type hints
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        redact_logger(self.error_log)
        redact_logger(self.access_log)


logger_class = RedactingLogger
