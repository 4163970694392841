"""The WSGI entry for gunicorn: `gunicorn 'digest.web.wsgi:app'` (or uvicorn's WSGI mode).

The configuration is `$DIGEST_CONFIG`, else `digest.toml` in the working directory;
the secret comes from `DIGEST_SECRET_KEY` (or `web.secret_key`), as for `digest web`.
A configuration problem is one line, `Error: …`, on stderr, then exit status 4: what
gunicorn takes for "the app failed to load", so it stops instead of restarting the
worker, with no traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flask import Flask

from digest.config import CONFIG_NAME, find_config, load_settings
from digest.errors import ConfigError, DigestError
from digest.web import create_app

APP_LOAD_ERROR = 4


NO_CONFIG = ("no digest.toml in {cwd} and DIGEST_CONFIG is not set: start the server in "
             "the newsletter's folder or set DIGEST_CONFIG=/path/to/digest.toml")


def app_from_environment() -> Flask:
    given = os.environ.get("DIGEST_CONFIG")
    if not given and not (Path.cwd() / CONFIG_NAME).is_file():
        raise ConfigError(NO_CONFIG.format(cwd=Path.cwd()))
    return create_app(load_settings(find_config(Path(given) if given else None, Path.cwd())))


try:
    app = app_from_environment()
except DigestError as exc:
    print(f"Error: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(APP_LOAD_ERROR) from None
