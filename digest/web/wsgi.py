"""The WSGI entry for gunicorn: `gunicorn 'digest.web.wsgi:app'`.

The configuration is `$DIGEST_CONFIG`, else `digest.toml` in the working directory;
the secret comes from `DIGEST_SECRET_KEY` (or `web.secret_key`), as for `digest web`.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

from digest.config import find_config, load_settings
from digest.web import create_app


def app_from_environment() -> Flask:
    given = os.environ.get("DIGEST_CONFIG")
    return create_app(load_settings(find_config(Path(given) if given else None, Path.cwd())))


app = app_from_environment()
