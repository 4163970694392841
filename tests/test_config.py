from pathlib import Path

import pytest

from digest.config import find_config, load_settings
from digest.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "digest.toml"
    path.write_text(text)
    return path


MINIMAL = '[site]\nbase_url = "https://x.example.org/"\n'


def test_defaults_and_paths_relative_to_the_config(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL), environ={})
    assert settings.base_url == "https://x.example.org"
    assert settings.content_dir == tmp_path / "content"
    assert settings.store_path == tmp_path / "digest.db"
    assert settings["selection.total"] == 30
    assert settings.unsubscribe_url("abc") == "https://x.example.org/unsubscribe/abc"


def test_unsubscribe_links_go_to_the_readers_web_app_by_default(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL + '[web]\nbase_url = "https://r.example.net"\n'),
                             environ={})
    assert settings.unsubscribe_url("abc") == "https://r.example.net/unsubscribe/abc"
    assert settings.preferences_url("abc") == "https://r.example.net/preferences/abc"


def test_environment_overrides(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL), environ={
        "DIGEST_DB": "/data/d.db", "SENDGRID_API_URL": "http://127.0.0.1:9"})
    assert settings.store_path == Path("/data/d.db")
    assert settings["sendgrid.api_url"] == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + "[site.extra]\nx = 1\n", "unknown key 'site.extra.x'"),
        (MINIMAL + "[selection]\ntotal = 'ten'\n", "selection.total must be an integer, not 'ten'"),
        (MINIMAL + "[selection]\ncategory_order = 'Work'\n",
         "selection.category_order must be a list of strings, not 'Work'"),
        ('[site]\nname = "x"\n', "site.base_url is required (article links are built from it)"),
        ('[site]\nbase_url = "example.org"\n',
         "site.base_url must be an absolute http(s) URL, not 'example.org'"),
        (MINIMAL + 'timezone = "Mars/Olympus"\n',
         "site.timezone: unknown time zone 'Mars/Olympus'"),
        (MINIMAL + "[selection]\nper_category = 0\n",
         "selection.per_category must be at least 1, not 0"),
        (MINIMAL + '[delivery]\ntransport = "smtp"\n',
         "delivery.transport must be one of sendgrid, files, not 'smtp'"),
        (MINIMAL + '[unsubscribe]\nurl = "https://x.example.org/u/{email}"\n',
         "unsubscribe.url: unknown placeholder {email} (use {web_url}, {base_url} and {token})"),
        (MINIMAL + '[unsubscribe]\nurl = "https://x.example.org/unsubscribe"\n',
         "unsubscribe.url must contain {token}, the reader's own unguessable token"),
        (MINIMAL + '[unsubscribe]\nurl = "https://x.example.org/u/{token"\n',
         "unsubscribe.url: expected '}' before end of string"),
        (MINIMAL + '[sendgrid]\napi_key = "SG.secret"\n',
         "sendgrid.api_key is never read from a file: set the SENDGRID_API_KEY environment "
         "variable instead"),
    ],
)
def test_each_bad_key_is_named(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert str(caught.value) == f"{path}: {message}"
    assert "SG.secret" not in str(caught.value)


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(tmp_path, '[site]\nnmae = "x"\n[selection]\ntotal = "x"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert str(caught.value) == (
        f"{path}: unknown key 'site.nmae'\n{path}: selection.total must be an integer, not 'x'"
    )


def test_invalid_toml(tmp_path):
    path = write(tmp_path, "[site\n")
    with pytest.raises(ConfigError, match=r"invalid TOML: "):
        load_settings(path, environ={})


def test_find_config(tmp_path):
    with pytest.raises(ConfigError) as caught:
        find_config(tmp_path / "nope.toml", tmp_path)
    assert str(caught.value) == f"{tmp_path / 'nope.toml'}: no such configuration file"
    config = write(tmp_path, MINIMAL)
    assert find_config(None, tmp_path) == config
