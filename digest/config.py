"""Settings from `digest.toml`, with environment overrides; every bad key is named."""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import string
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from email.utils import parseaddr
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.errors import ConfigError
from digest.location import Location, LocationError, parse_location
from digest.sites import URL_FIELDS
from digest.theme import DEFAULTS as THEME_DEFAULTS
from digest.theme import Theme, theme_problems

CONFIG_NAME = "digest.toml"
T = TypeVar("T")

# key: (type, default). A default of None means the key is optional and has no value.
SPEC: dict[str, tuple[type, Any]] = {
    "site.name": (str, "Newsletter"),
    "site.base_url": (str, None),
    "site.language": (str, "en"),
    "site.timezone": (str, "UTC"),
    "content.dir": (str, "content"),
    "content.feeds": (object, []),  # URLs, files or tables: checked by feeds.feed_sources
    "content.url_pattern": (str, "{base_url}/posts/{slug}"),
    "content.category_url_pattern": (str, "{base_url}/category/{category}"),
    "content.static_dir": (str, ""),
    "content.section_url_patterns": (dict, {}),
    "content.lowercase_urls": (bool, False),
    "templates.dir": (str, "templates"),
    "selection.per_category": (int, 5),
    "selection.total": (int, 30),
    "selection.category_order": (list, []),
    "email.from": (str, ""),
    "email.reply_to": (str, ""),
    "email.postal_address": (str, ""),
    "email.size_budget_kb": (int, 90),
    "unsubscribe.url": (str, "{web_url}/unsubscribe/{token}"),
    "unsubscribe.mailto": (str, ""),
    "delivery.transport": (str, "sendgrid"),
    "delivery.files_dir": (str, "outbox"),
    "sendgrid.api_url": (str, "https://api.sendgrid.com"),
    "sendgrid.asm_group_id": (int, None),
    "sendgrid.timeout": (int, 30),
    "sendgrid.concurrency": (int, 4),
    "sendgrid.separate_process": (bool, True),
    "sendgrid.webhook_public_key": (str, ""),
    "sendgrid.webhook_max_mb": (int, 5),
    "sendgrid.webhook_grace": (int, 600),
    "store.path": (str, "digest.db"),
    "web.secret_key": (str, ""),
    "web.base_url": (str, ""),
    "web.proxies": (int, 0),
    **{key: (type(default), default) for key, default in THEME_DEFAULTS.items()},
    "archive.dir": (str, ""),
    "archive.url": (str, ""),
    "archive.signup_url": (str, ""),
    "archive.manage_url": (str, ""),
    "web.trusted_proxies": (list, ["127.0.0.1", "::1"]),
    "web.max_confirmations_per_hour": (int, 100),
    "web.captcha": (str, ""),
    "web.captcha_site_key": (str, ""),
    "web.captcha_secret": (str, ""),
    "web.captcha_verify_url": (str, ""),
}
ENV_OVERRIDES = {
    "SENDGRID_API_URL": "sendgrid.api_url",
    "DIGEST_DB": "store.path",
    "DIGEST_SECRET_KEY": "web.secret_key",
    "DIGEST_CAPTCHA_SECRET": "web.captcha_secret",
}
FORBIDDEN = {
    "sendgrid.api_key": "sendgrid.api_key is never read from a file: "
    "set the SENDGRID_API_KEY environment variable instead",
}
TRANSPORTS = ("sendgrid", "files")
# Upper bounds: past these a value is a typo, and some would hang or overflow.
MAXIMUMS = {"selection.per_category": 1000, "selection.total": 1000,
            "email.size_budget_kb": 1024, "sendgrid.timeout": 600,
            "sendgrid.concurrency": 16, "sendgrid.webhook_max_mb": 64,
            "sendgrid.webhook_grace": 86_400, "web.max_confirmations_per_hour": 100_000}
URL_KEYS = ("site.base_url", "web.base_url", "sendgrid.api_url", "archive.url",
            "archive.signup_url", "archive.manage_url", "web.captcha_verify_url")
CAPTCHAS = ("turnstile", "hcaptcha")
UNSUBSCRIBE_FIELDS = ("base_url", "web_url", "token")
CATEGORY_URL_FIELDS = ("base_url", "category")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # no one-line value (address, name) may hold one
NAMED_ADDRESS = re.compile(r"[^<>]*<\s*(?P<address>[^<>]*?)\s*>")


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline needs to know about one newsletter."""

    root: Path
    values: Mapping[str, Any] = field(repr=False)

    def __getitem__(self, key: str) -> Any:
        """An untyped value; the typed accessors below are what digest reads."""
        return self.values[key]

    def text(self, key: str) -> str:
        """A string setting (validated at load, checked again here)."""
        return checked(key, self.values[key], str)

    def integer(self, key: str) -> int:
        return checked(key, self.values[key], int)

    def flag(self, key: str) -> bool:
        return checked(key, self.values[key], bool)

    def optional_integer(self, key: str) -> int | None:
        """An integer setting whose default is None (e.g. sendgrid.asm_group_id)."""
        value = self.values[key]
        return None if value is None else checked(key, value, int)

    def names(self, key: str) -> tuple[str, ...]:
        """A list-of-strings setting, as a tuple."""
        return tuple(checked(key, item, str) for item in checked(key, self.values[key], list))

    def override(self, key: str, value: Any) -> Settings:
        """A copy with one value replaced (command-line options win over the file)."""
        return replace(self, values={**self.values, key: value})

    @property
    def site_name(self) -> str:
        return self.text("site.name")

    @functools.cached_property  # settings never change: read once, not once per reader
    def base_url(self) -> str:
        return self.text("site.base_url").rstrip("/")

    @property
    def language(self) -> str:
        """The BCP 47 tag of site.language: `de`, `de-AT` (`de_AT` is read as well)."""
        from digest.i18n import parse_locale, tag_of  # Babel: not in every process

        return tag_of(parse_locale(self.text("site.language")))

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.text("site.timezone"))

    @property
    def content_dir(self) -> Path:
        return self.root / self.text("content.dir")

    @property
    def static_dir(self) -> Path | None:
        """The site's own files (images) served under site.base_url; None when not set."""
        return self.root / self.values["content.static_dir"] \
            if self.values.get("content.static_dir") else None

    @property
    def theme(self) -> Theme:
        return Theme.from_values(self.values)

    @property
    def templates_dir(self) -> Path:
        return self.root / self.text("templates.dir")

    @property
    def store_path(self) -> Location:
        """The SQLite file, or the PostgreSQL server (a postgresql:// URL)."""
        try:
            return parse_location(self.values["store.path"], self.root)
        except LocationError as exc:
            raise ConfigError(f"store.path: {exc}") from None

    @property
    def files_dir(self) -> Path:
        return self.root / self.text("delivery.files_dir")

    @functools.cached_property
    def web_url(self) -> str:
        """Where the readers' web app is reached: web.base_url, else site.base_url."""
        return (self.values.get("web.base_url") or self.text("site.base_url")).rstrip("/")

    @property
    def archive_dir(self) -> Path | None:
        """Where the archive's pages are written (archive.dir), or None when not set."""
        folder = self.values.get("archive.dir", "")
        return self.root / folder if folder else None

    @property
    def archive_url(self) -> str:
        """The absolute URL the archive is published at, without a trailing slash; empty
        when there is no archive (no "View in browser" link then)."""
        return str(self.values.get("archive.url", "")).rstrip("/")

    @property
    def sender(self) -> tuple[str | None, str]:
        """(name, address) from `email.from`; the address is empty when it is not set."""
        name, address = parseaddr(self.text("email.from"))
        return name or None, address

    def preferences_url(self, token: str) -> str:
        """The reader's page for choosing topics and cadence (`digest web`)."""
        return f"{self.web_url}/preferences/{token}"

    def unsubscribe_url(self, token: str) -> str:
        """`unsubscribe.url` filled in; by default the readers' web app answers it."""
        return self.unsubscribe_pattern.format(base_url=self.base_url, web_url=self.web_url,
                                               token=token)

    @functools.cached_property
    def unsubscribe_pattern(self) -> str:
        return self.text("unsubscribe.url")


def checked(key: str, value: Any, kind: type[T]) -> T:
    """`value` as a `kind`; settings are validated at load, so a mismatch is a bug (or an
    `override` with the wrong type)."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{key} must be {type_name(kind)}, not {value!r}")
    return value


def find_config(path: Path | None, cwd: Path) -> Path:
    """The config file to use: the one given, else `digest.toml` in `cwd`."""
    if path is not None:
        if not path.is_file():
            problem = "is not a file" if path.exists() else "no such configuration file"
            raise ConfigError(f"{path}: {problem}")
        return path
    candidate = cwd / CONFIG_NAME
    if not candidate.is_file():
        raise ConfigError(
            f"no {CONFIG_NAME} in {cwd}: create one (see README) or pass --config FILE"
        )
    return candidate


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate `path`; environment variables named in ENV_OVERRIDES win."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    root = path.resolve().parent
    values = settings_values(flatten(data), str(path), root)
    values.update(env_values(os.environ if environ is None else environ))
    return Settings(root=root, values=values)


def env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """The ENV_OVERRIDES that are set, by key; checked like the file's, naming the variable."""
    values = {key: environ[env] for env, key in ENV_OVERRIDES.items() if environ.get(env)}
    if (url := values.get("sendgrid.api_url")) and (problem := http_url_problem(url)):
        raise ConfigError(f"SENDGRID_API_URL: {problem}")
    return values


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"site": {"name": "x"}}` → `{"site.name": "x"}` (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and SPEC.get(name, (None,))[0] is not dict:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def settings_values(flat: Mapping[str, Any], source: str, root: Path) -> dict[str, Any]:
    """Check every key and type, collect every problem, fill in the defaults."""
    problems = [f"{source}: {problem}" for problem in key_problems(flat, root)]
    if problems:
        raise ConfigError("\n".join(problems))
    values = {key: default for key, (_, default) in SPEC.items()}
    values.update(flat)
    return values


def key_problems(flat: Mapping[str, Any], root: Path) -> list[str]:
    problems = []
    for key, value in flat.items():
        if key in FORBIDDEN:
            problems.append(FORBIDDEN[key])
        elif key not in SPEC:
            problems.append(f"unknown key {key!r}")
        elif not type_ok(value, SPEC[key][0]):
            problems.append(f"{key} must be {type_name(SPEC[key][0])}, not {value!r}")
    if not problems:
        problems += value_problems({**{k: d for k, (_, d) in SPEC.items()}, **flat})
        problems += folder_problems(flat, root)
    return problems


def folder_problems(flat: Mapping[str, Any], root: Path) -> list[str]:
    """A templates.dir set in the file must exist; the default `templates` may be missing
    (the shipped templates are used then)."""
    if "templates.dir" in flat and not (folder := root / flat["templates.dir"]).is_dir():
        return [f"templates.dir: no such folder: {folder}"]
    return []


def type_ok(value: Any, expected: type) -> bool:
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is list:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if expected is bool:
        return isinstance(value, bool)
    if expected is dict:
        return isinstance(value, dict) and all(isinstance(item, str) for item in value.values())
    return isinstance(value, expected)


def type_name(expected: type) -> str:
    return {str: "a string", int: "an integer", list: "a list of strings",
            dict: "a table of strings", bool: "true or false"}[expected]


def value_problems(values: Mapping[str, Any]) -> list[str]:
    from digest.i18n import language_problem  # Babel: checked at load, not in a courier

    problems = url_problems(values)
    try:
        ZoneInfo(values["site.timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"site.timezone: unknown time zone {values['site.timezone']!r}")
    if problem := language_problem(values["site.language"]):
        problems.append(problem)
    problems += bound_problems(values)
    problems += pattern_problems("content.category_url_pattern",
                                 values["content.category_url_pattern"], CATEGORY_URL_FIELDS)
    problems += unsubscribe_url_problems(values["unsubscribe.url"])
    problems += source_problems(values)
    problems += address_problems(values)
    problems += theme_problems(values)
    for section, pattern in values["content.section_url_patterns"].items():
        problems += pattern_problems(f"content.section_url_patterns.{section}", pattern,
                                     URL_FIELDS)
    problems += archive_problems(values)
    if values["web.proxies"] < 0:
        problems.append(f"web.proxies must be 0 or more, not {values['web.proxies']}")
    problems += proxy_problems(values["web.trusted_proxies"])
    if values["web.captcha"] and values["web.captcha"] not in CAPTCHAS:
        problems.append(f"web.captcha must be one of {', '.join(CAPTCHAS)} (or empty), "
                        f"not {values['web.captcha']!r}")
    if values["delivery.transport"] not in TRANSPORTS:
        problems.append(
            f"delivery.transport must be one of {', '.join(TRANSPORTS)}, "
            f"not {values['delivery.transport']!r}"
        )
    return problems


def proxy_problems(trusted: list[str]) -> list[str]:
    """Each of web.trusted_proxies must be an IP address or network."""
    problems = []
    for entry in trusted:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            problems.append(f"web.trusted_proxies: {entry!r} is not an IP address or network")
    return problems


def url_problems(values: Mapping[str, Any]) -> list[str]:
    """site.base_url is required, web.base_url optional, and sendgrid.api_url not empty."""
    problems = [] if values["site.base_url"] else [
        "site.base_url is required (article links are built from it)"]
    checked = [key for key in URL_KEYS if values[key] or key == "sendgrid.api_url"]
    return problems + [f"{key} {problem}" for key in checked
                       if (problem := http_url_problem(values[key]))]


def archive_problems(values: Mapping[str, Any]) -> list[str]:
    """archive.dir and archive.url go together: the emails link to the pages digest writes."""
    if values["archive.dir"] and not values["archive.url"]:
        return ["archive.url is required when archive.dir is set (the absolute URL the "
                "archive's pages are published at, e.g. https://example.org/newsletter)"]
    if values["archive.url"] and not values["archive.dir"]:
        return ["archive.dir is required when archive.url is set (the folder digest writes "
                "the pages the emails link to)"]
    return []


def http_url_problem(value: str) -> str | None:
    """Why `value` is not an absolute http(s) URL with a host, or None."""
    problem = f"must be an absolute http(s) URL, not {value!r}"
    if not value.startswith(("https://", "http://")) or re.search(r"[\s\x00-\x1f\x7f]", value):
        return problem
    try:
        parts = urlsplit(value)
        has_host = bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number, or out of range
        return problem
    return None if has_host else problem


def bound_problems(values: Mapping[str, Any]) -> list[str]:
    problems = [f"{key} must be at least 1, not {values[key]}"
                for key in MAXIMUMS if values[key] < 1]
    return problems + [f"{key} must be at most {most}, not {values[key]}"
                       for key, most in MAXIMUMS.items() if values[key] > most]


def placeholders(pattern: str) -> set[str]:
    """The `{names}` in a str.format pattern; ValueError when it does not parse."""
    return {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}


def format_problem(pattern: str, fields: Collection[str]) -> str | None:
    """Why `pattern` fails to format with sample text for `fields` (`{token:d}`), or None."""
    try:
        pattern.format(**dict.fromkeys(fields, "x"))
    except KeyError as exc:  # a placeholder nested in a format spec: `{token:{width}}`
        return f"unknown placeholder {{{exc.args[0]}}}"
    except (ValueError, IndexError) as exc:
        return str(exc)
    return None


def pattern_problems(key: str, pattern: str, fields: Collection[str]) -> list[str]:
    """A URL pattern worded as content.check_url_pattern words `content.url_pattern`'s."""
    try:
        unknown = sorted(placeholders(pattern) - set(fields))
    except ValueError as exc:
        return [f"{key}: invalid pattern {pattern!r}: {exc}"]
    if unknown:
        return [f"{key}: unknown placeholder {{{unknown[0]}}} (known: {', '.join(fields)})"]
    if problem := format_problem(pattern, fields):
        return [f"{key}: invalid pattern {pattern!r}: {problem}"]
    return []


def source_problems(values: Mapping[str, Any]) -> list[str]:
    """content.feeds is well formed, and it or content.dir is set."""
    from digest.feeds import feed_sources  # the loader: checked at load, not in a courier

    try:
        sources = feed_sources(values["content.feeds"])
    except ConfigError as exc:
        return [str(exc)]
    if not sources and not values["content.dir"]:
        return ["content.dir and content.feeds are both empty: set a folder of articles, "
                "feeds, or both"]
    return []


def unsubscribe_url_problems(pattern: str) -> list[str]:
    try:
        names = placeholders(pattern)
    except ValueError as exc:
        return [f"unsubscribe.url: {exc}"]
    if unknown := names - set(UNSUBSCRIBE_FIELDS):
        return [f"unsubscribe.url: unknown placeholder {{{sorted(unknown)[0]}}} (use "
                "{web_url}, {base_url} and {token})"]
    if "token" not in names:
        return ["unsubscribe.url must contain {token}, the reader's own unguessable token"]
    if problem := format_problem(pattern, UNSUBSCRIBE_FIELDS):
        return [f"unsubscribe.url: {problem}"]
    return []


def address_problems(values: Mapping[str, Any]) -> list[str]:
    """email.from and email.reply_to take `a@b.org` or `Name <a@b.org>`; unsubscribe.mailto
    a bare address, optionally as a `mailto:` URL."""
    problems = [address_problem(key, values[key], named=key != "unsubscribe.mailto")
                for key in ("email.from", "email.reply_to", "unsubscribe.mailto")
                if values[key].strip()]
    return [problem for problem in problems if problem]


def address_problem(key: str, value: str, *, named: bool) -> str | None:
    """A control character (a line break would start a new mail header) or a bad address."""
    if bad := CONTROL.search(value):
        return f"{key} contains a control character ({bad.group()!r}): {value!r}"
    from email_validator import EmailNotValidError, validate_email  # at load: not in a courier

    address = one_address(value) if named else mailto_address(value)
    try:
        validate_email(address, check_deliverability=False, test_environment=True)  # .test
    except EmailNotValidError as exc:
        return f"{key}: bad address {value!r}: {exc}"
    if named and parseaddr(value)[1] != address:  # what Settings.sender would read
        return f"{key}: bad address {value!r}: put a name with punctuation in double quotes"
    return None


def one_address(value: str) -> str:
    """The address in `a@b.org` or `Name <a@b.org>`; the whole text when it is neither."""
    match = NAMED_ADDRESS.fullmatch(value.strip())
    return match["address"] if match else value.strip()


def mailto_address(value: str) -> str:
    """`a@b.org` from `a@b.org`, `mailto:a@b.org` or `mailto:a@b.org?subject=…`."""
    target = value.strip()
    target = target[len("mailto:"):] if target.lower().startswith("mailto:") else target
    return target.partition("?")[0]


def sender_problems(settings: Settings) -> list[str]:
    """What a real send needs from the configuration, checked before anything is planned."""
    problems = []
    if not settings.sender[1]:
        problems.append("email.from is not set in the configuration (the sender address)")
    if not settings.text("email.postal_address").strip():
        problems.append("email.postal_address is not set in the configuration: the footer "
                        "of every issue must give the sender's postal address (CAN-SPAM)")
    return problems
