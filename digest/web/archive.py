"""The web archive's files (`digest archive`, archive.dir) at `/archive/`, for publishers
without a static host. Only what is in the folder is served; anything else, an unknown
issue included, is the app's 404 page. The app's security headers apply, with a
Content-Security-Policy that lets an email's inline styles and remote images show."""

from __future__ import annotations

import os

from flask import Blueprint, redirect, send_from_directory, url_for
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join
from werkzeug.wrappers import Response

from digest.web.state import web_state

blueprint = Blueprint("archive", __name__)

ARCHIVE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
               "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")


@blueprint.get("/archive/", defaults={"path": ""})
@blueprint.get("/archive/<path:path>")
def archive_file(path: str) -> Response:
    folder = web_state().settings.archive_dir
    if folder is None or path.startswith(".") or "/." in path:
        raise NotFound()
    found = safe_join(str(folder), path)
    if path and not path.endswith("/") and found and os.path.isdir(found):
        return redirect(url_for(".archive_file", path=f"{path}/"), 308)
    if path == "" or path.endswith("/"):
        path += "index.html"
    response = send_from_directory(folder, path, max_age=0)
    response.headers["Content-Security-Policy"] = ARCHIVE_CSP
    return response
