"""The readers' pages in the site's language: Jinja2's i18n extension for the templates,
`_()` for the few strings the views write themselves (errors, labels, the subject)."""

from __future__ import annotations

from flask import Flask, current_app

from digest.i18n import Language

EXTENSION = "digest.language"


def install(app: Flask, language: Language) -> None:
    app.extensions[EXTENSION] = language
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.jinja_env.install_gettext_translations(  # type: ignore[attr-defined]
        language.translations, newstyle=True)
    app.context_processor(lambda: {"language": language.tag,
                                   "direction": language.direction})


def _(message: str, **values: object) -> str:
    """`message` in the site's language, `%(name)s` filled from `values`."""
    language: Language = current_app.extensions[EXTENSION]
    return language.gettext(message, **values)
