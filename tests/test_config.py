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
        (MINIMAL + "[sendgrid]\nconcurrency = 17\n",
         "sendgrid.concurrency must be at most 16, not 17"),
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
        (MINIMAL + '[unsubscribe]\nurl = "{web_url}/u/{token:d}"\n',
         "unsubscribe.url: Unknown format code 'd' for object of type 'str'"),
        (MINIMAL + '[unsubscribe]\nurl = "{web_url}/u/{token!z}"\n',
         "unsubscribe.url: Unknown conversion specifier z"),
        (MINIMAL + '[content]\ncategory_url_pattern = "{base_url}/c/{nope}"\n',
         "content.category_url_pattern: unknown placeholder {nope} (known: base_url, category)"),
        (MINIMAL + '[content]\ncategory_url_pattern = "{base_url}/c/{slug}"\n',
         "content.category_url_pattern: unknown placeholder {slug} (known: base_url, category)"),
        (MINIMAL + '[content]\ncategory_url_pattern = "{base_url}/c/{0}"\n',
         "content.category_url_pattern: unknown placeholder {0} (known: base_url, category)"),
        (MINIMAL + '[content]\ncategory_url_pattern = "{base_url}/c/{"\n',
         "content.category_url_pattern: invalid pattern '{base_url}/c/{': "
         "Single '{' encountered in format string"),
        (MINIMAL + '[content]\ncategory_url_pattern = "{base_url}/c/{category!z}"\n',
         "content.category_url_pattern: invalid pattern '{base_url}/c/{category!z}': "
         "Unknown conversion specifier z"),
        (MINIMAL + '[sendgrid]\napi_url = "notaurl"\n',
         "sendgrid.api_url must be an absolute http(s) URL, not 'notaurl'"),
        (MINIMAL + '[sendgrid]\napi_url = "http://127.0.0.1:port"\n',
         "sendgrid.api_url must be an absolute http(s) URL, not 'http://127.0.0.1:port'"),
        (MINIMAL + "[sendgrid]\ntimeout = 99999999999999999\n",
         "sendgrid.timeout must be at most 600, not 99999999999999999"),
        (MINIMAL + "[selection]\nper_category = 99999999999999999\n",
         "selection.per_category must be at most 1000, not 99999999999999999"),
        (MINIMAL + "[selection]\ntotal = 1001\n", "selection.total must be at most 1000, not 1001"),
        (MINIMAL + "[email]\nsize_budget_kb = 2048\n",
         "email.size_budget_kb must be at most 1024, not 2048"),
        (MINIMAL + '[email]\nfrom = "digest@@fieldnotes"\n',
         "email.from: bad address 'digest@@fieldnotes': The part after the @-sign contains "
         "invalid characters: '@'."),
        (MINIMAL + '[email]\nfrom = "Doe, Jane <jane@x.example.org>"\n',
         "email.from: bad address 'Doe, Jane <jane@x.example.org>': put a name with "
         "punctuation in double quotes"),
        (MINIMAL + '[email]\nreply_to = "ed@x.example.org\\nBcc: all@x.example.org"\n',
         "email.reply_to contains a control character ('\\n'): "
         "'ed@x.example.org\\nBcc: all@x.example.org'"),
        (MINIMAL + '[unsubscribe]\nmailto = "leave@x.example.org\\r\\n"\n',
         "unsubscribe.mailto contains a control character ('\\r'): 'leave@x.example.org\\r\\n'"),
        (MINIMAL + '[unsubscribe]\nmailto = "mailto:leave@x"\n',
         "unsubscribe.mailto: bad address 'mailto:leave@x': The part after the @-sign is not "
         "valid. It should have a period."),
        (MINIMAL + '[templates]\ndir = "my-templates"\n',
         "templates.dir: no such folder: {root}/my-templates"),
        (MINIMAL + '[sendgrid]\napi_key = "SG.secret"\n',
         "sendgrid.api_key is never read from a file: set the SENDGRID_API_KEY environment "
         "variable instead"),
    ],
)
def test_each_bad_key_is_named(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert str(caught.value) == f"{path}: {message.replace('{root}', str(tmp_path))}"
    assert "SG.secret" not in str(caught.value)


def test_addresses_with_names_and_mailto_urls_are_accepted(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL + (
        '[email]\nfrom = "\\"Doe, Jane\\" <jane@x.example.org>"\n'
        'reply_to = "Zoë Editor <zoë@x.example.org>"\n'
        '[unsubscribe]\nmailto = "mailto:leave@x.example.org?subject=unsubscribe"\n'
    )), environ={})
    assert settings.sender == ("Doe, Jane", "jane@x.example.org")


def test_the_default_templates_dir_may_be_missing_but_a_set_one_must_exist(tmp_path):
    assert load_settings(write(tmp_path, MINIMAL), environ={})  # the shipped ones are used
    (tmp_path / "my-templates").mkdir()
    settings = load_settings(write(tmp_path, MINIMAL + '[templates]\ndir = "my-templates"\n'),
                             environ={})
    assert settings.templates_dir == tmp_path / "my-templates"


def test_an_environment_override_is_checked_and_named(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, MINIMAL), environ={"SENDGRID_API_URL": "notaurl"})
    assert str(caught.value) == "SENDGRID_API_URL: must be an absolute http(s) URL, not 'notaurl'"


def test_the_sample_site_configuration_is_valid():
    settings = load_settings(Path(__file__).parent.parent / "digest.toml", environ={})
    assert settings.sender == ("Field Notes", "digest@fieldnotes.example.org")


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
    with pytest.raises(ConfigError) as caught:
        find_config(Path("/dev/null"), tmp_path)
    assert str(caught.value) == "/dev/null: is not a file"
    config = write(tmp_path, MINIMAL)
    assert find_config(None, tmp_path) == config
