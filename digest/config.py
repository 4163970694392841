"""Settings from `digest.toml`, with environment overrides; every bad key is named."""

from __future__ import annotations

import os
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.errors import ConfigError

CONFIG_NAME = "digest.toml"

# key: (type, default). A default of None means the key is optional and has no value.
SPEC: dict[str, tuple[type, Any]] = {
    "site.name": (str, "Newsletter"),
    "site.base_url": (str, None),
    "site.language": (str, "en"),
    "site.timezone": (str, "UTC"),
    "content.dir": (str, "content"),
    "content.url_pattern": (str, "{base_url}/posts/{slug}"),
    "content.category_url_pattern": (str, "{base_url}/category/{category}"),
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
    "sendgrid.webhook_public_key": (str, ""),
    "store.path": (str, "digest.db"),
    "web.secret_key": (str, ""),
    "web.base_url": (str, ""),
    "web.proxies": (int, 0),
}
ENV_OVERRIDES = {
    "SENDGRID_API_URL": "sendgrid.api_url",
    "DIGEST_DB": "store.path",
    "DIGEST_SECRET_KEY": "web.secret_key",
}
FORBIDDEN = {
    "sendgrid.api_key": "sendgrid.api_key is never read from a file: "
    "set the SENDGRID_API_KEY environment variable instead",
}
TRANSPORTS = ("sendgrid", "files")


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline needs to know about one newsletter."""

    root: Path
    values: Mapping[str, Any] = field(repr=False)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def override(self, key: str, value: Any) -> Settings:
        """A copy with one value replaced (command-line options win over the file)."""
        return replace(self, values={**self.values, key: value})

    @property
    def site_name(self) -> str:
        return self.values["site.name"]

    @property
    def base_url(self) -> str:
        return self.values["site.base_url"].rstrip("/")

    @property
    def language(self) -> str:
        return self.values["site.language"]

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.values["site.timezone"])

    @property
    def content_dir(self) -> Path:
        return self.root / self.values["content.dir"]

    @property
    def templates_dir(self) -> Path:
        return self.root / self.values["templates.dir"]

    @property
    def store_path(self) -> Path:
        return self.root / self.values["store.path"]

    @property
    def files_dir(self) -> Path:
        return self.root / self.values["delivery.files_dir"]

    @property
    def web_url(self) -> str:
        """Where the readers' web app is reached: web.base_url, else site.base_url."""
        return (self.values.get("web.base_url") or self.values["site.base_url"]).rstrip("/")

    @property
    def sender(self) -> tuple[str | None, str]:
        """(name, address) from `email.from`; the address is empty when it is not set."""
        name, address = parseaddr(self.values["email.from"])
        return name or None, address

    def preferences_url(self, token: str) -> str:
        """The reader's page for choosing topics and cadence (`digest web`)."""
        return f"{self.web_url}/preferences/{token}"

    def unsubscribe_url(self, token: str) -> str:
        """`unsubscribe.url` filled in; by default the readers' web app answers it."""
        return self.values["unsubscribe.url"].format(base_url=self.base_url,
                                                     web_url=self.web_url, token=token)


def find_config(path: Path | None, cwd: Path) -> Path:
    """The config file to use: the one given, else `digest.toml` in `cwd`."""
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"{path}: no such configuration file")
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
    values = settings_values(flatten(data), str(path))
    for env, key in ENV_OVERRIDES.items():
        if (environ if environ is not None else os.environ).get(env):
            values[key] = (environ if environ is not None else os.environ)[env]
    return Settings(root=path.resolve().parent, values=values)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"site": {"name": "x"}}` → `{"site.name": "x"}` (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def settings_values(flat: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Check every key and type, collect every problem, fill in the defaults."""
    problems = [f"{source}: {problem}" for problem in key_problems(flat)]
    if problems:
        raise ConfigError("\n".join(problems))
    values = {key: default for key, (_, default) in SPEC.items()}
    values.update(flat)
    return values


def key_problems(flat: Mapping[str, Any]) -> list[str]:
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
    return problems


def type_ok(value: Any, expected: type) -> bool:
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is list:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, expected)


def type_name(expected: type) -> str:
    return {str: "a string", int: "an integer", list: "a list of strings"}[expected]


def value_problems(values: Mapping[str, Any]) -> list[str]:
    problems = []
    base_url = values["site.base_url"]
    if not base_url:
        problems.append("site.base_url is required (article links are built from it)")
    elif not base_url.startswith(("https://", "http://")):
        problems.append(f"site.base_url must be an absolute http(s) URL, not {base_url!r}")
    try:
        ZoneInfo(values["site.timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"site.timezone: unknown time zone {values['site.timezone']!r}")
    for key in ("selection.per_category", "selection.total", "email.size_budget_kb",
                "sendgrid.timeout"):
        if values[key] < 1:
            problems.append(f"{key} must be at least 1, not {values[key]}")
    web_url = values["web.base_url"]
    if web_url and not web_url.startswith(("https://", "http://")):
        problems.append(f"web.base_url must be an absolute http(s) URL, not {web_url!r}")
    problems += unsubscribe_url_problems(values["unsubscribe.url"])
    if values["web.proxies"] < 0:
        problems.append(f"web.proxies must be 0 or more, not {values['web.proxies']}")
    if values["delivery.transport"] not in TRANSPORTS:
        problems.append(
            f"delivery.transport must be one of {', '.join(TRANSPORTS)}, "
            f"not {values['delivery.transport']!r}"
        )
    return problems


def unsubscribe_url_problems(pattern: str) -> list[str]:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
    except ValueError as exc:
        return [f"unsubscribe.url: {exc}"]
    if unknown := names - {"base_url", "web_url", "token"}:
        return [f"unsubscribe.url: unknown placeholder {{{sorted(unknown)[0]}}} (use "
                "{web_url}, {base_url} and {token})"]
    if "token" not in names:
        return ["unsubscribe.url must contain {token}, the reader's own unguessable token"]
    return []


def sender_problems(settings: Settings) -> list[str]:
    """What a real send needs from the configuration, checked before anything is planned."""
    problems = []
    if not settings.sender[1]:
        problems.append("email.from is not set in the configuration (the sender address)")
    if not settings["email.postal_address"].strip():
        problems.append("email.postal_address is not set in the configuration: the footer "
                        "of every issue must give the sender's postal address (CAN-SPAM)")
    return problems
