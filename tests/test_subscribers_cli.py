"""`digest subscribers …`: exact output and exit codes."""

import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.store import Change, NewSubscriber, open_store

FIXTURES = Path(__file__).parent / "fixtures" / "subscribers"
NOW = datetime(2026, 2, 23, 8, 0, tzinfo=UTC)
SECRET = "a-test-secret-of-enough-length"
REFUSAL = "only the reader can resubscribe, by signing up and confirming again"


@pytest.fixture
def site(tmp_path):
    """A site whose articles use the categories General AI and Tools."""
    return Path(shutil.copytree(FIXTURES / "site_with_two_categories", tmp_path / "site"))


@pytest.fixture
def run(site):
    runner = CliRunner(env={"DIGEST_DB": None, "DIGEST_SECRET_KEY": None})

    def run(*args: str):
        return runner.invoke(cli, ["--config", str(site / "digest.toml"), "subscribers", *args])

    return run


def seed(site, *subscribers: NewSubscriber, source="web"):
    with open_store(site / "digest.db", clock=lambda: NOW) as store:
        store.insert(list(subscribers), source)


def emails(run, *options):
    return [line.split()[0] for line in run("list", *options).stdout.splitlines()[1:-1]]


def test_the_group_has_seven_commands_each_with_help(run):
    group = cli.commands["subscribers"]
    assert sorted(group.commands) == ["add", "export", "import", "list", "prune", "remove",
                                      "unsubscribe"]
    assert all(command.help for command in group.commands.values())
    assert run("--help").exit_code == 0


# add


def test_add_a_new_address(run, site):
    result = run("add", "Ada@Example.com")
    assert (result.exit_code, result.stdout, result.stderr) == (
        0, "Added Ada@example.com (weekly, all categories)\n", "")
    assert (site / "digest.db").is_file()


def test_add_with_categories_and_a_cadence(run):
    result = run("add", "ada@example.com", "--name", "Ada", "--category", "General AI",
                 "--category", "tools", "--cadence", "daily")
    assert (result.exit_code, result.stdout, result.stderr) == (
        0, "Added ada@example.com (daily, General AI, tools)\n", "")


def test_add_warns_about_a_category_no_article_uses(run):
    result = run("add", "ada@example.com", "--category", "Crypto", "--category", "TOOLS")
    assert result.exit_code == 0
    assert result.stderr == "Warning: no article uses the category 'Crypto' (1 subscriber)\n"


def test_add_updates_an_active_address_with_the_values_given(run):
    run("add", "ada@example.com", "--category", "Tools")
    result = run("add", "ADA@example.com", "--name", "Ada", "--cadence", "daily")
    assert (result.exit_code, result.stdout) == (0, "Updated ada@example.com: name, cadence\n")
    assert json.loads(run("list", "--json").stdout)[0]["categories"] == ["Tools"]


def test_add_again_changes_nothing(run):
    run("add", "ada@example.com")
    result = run("add", "ada@example.com")
    assert (result.exit_code, result.stdout) == (
        0, "ada@example.com is already subscribed; nothing changed\n")


def test_add_activates_a_pending_address(run, site):
    seed(site, NewSubscriber("ada@example.com", status="pending"))
    result = run("add", "ada@example.com")
    assert (result.exit_code, result.stdout) == (0, "Activated ada@example.com (it was pending)\n")


@pytest.mark.parametrize("stopped", ["unsubscribed", "bounced", "complained"])
def test_add_never_resubscribes_a_stopped_address(run, site, stopped):
    seed(site, NewSubscriber("ada@example.com", status=stopped))
    result = run("add", "ada@example.com", "--name", "Ada")
    assert (result.exit_code, result.stdout, result.stderr) == (
        1, "", f"Error: ada@example.com is {stopped} since 2026-02-23 (by web): {REFUSAL}\n")
    assert "active" not in run("list").stdout


def test_add_refuses_a_bad_address(run):
    result = run("add", "ada@")
    assert (result.exit_code, result.stderr) == (
        1, "Error: bad address 'ada@': There must be something after the @-sign.\n")


def test_add_refuses_an_unknown_cadence_as_a_usage_error(run):
    assert run("add", "ada@example.com", "--cadence", "monthly").exit_code == 2


# import


def test_import_good_rows(run):
    result = run("import", str(FIXTURES / "good.csv"))
    assert (result.exit_code, result.stdout, result.stderr) == (
        0, "good.csv: 3 added, 0 updated, 0 unchanged, 0 refused, 0 bad rows\n",
        "Warning: no article uses the category 'Policy' (1 subscriber)\n"
        "Warning: no article uses the category 'Research' (1 subscriber)\n")
    assert emails(run) == ["ada@example.com", "bob@example.com", "carla@example.com"]


def test_import_reports_every_bad_row_and_imports_the_good_ones(run):
    result = run("import", str(FIXTURES / "bad_rows.csv"))
    assert (result.exit_code, result.stdout) == (
        0, "bad_rows.csv: 2 added, 0 updated, 0 unchanged, 0 refused, 5 bad rows\n")
    assert result.stderr == (
        "Skipped row 3: bad address 'not-an-address': An email address must have an @-sign.\n"
        "Skipped row 4: no email address\n"
        "Skipped row 5: unknown cadence 'monthly' (expected weekly or daily)\n"
        "Skipped row 6: duplicate of row 2 (ADA@example.com)\n"
        "Skipped row 7: 5 fields, but the header has 4\n")


def test_import_twice_changes_nothing(run):
    run("import", str(FIXTURES / "good.csv"))
    result = run("import", str(FIXTURES / "good.csv"))
    assert result.stdout == "good.csv: 0 added, 0 updated, 3 unchanged, 0 refused, 0 bad rows\n"


def test_import_refuses_to_resubscribe_and_warns_about_unknown_categories(run, site):
    seed(site, NewSubscriber("ada@example.com", status="unsubscribed"))
    result = run("import", str(FIXTURES / "unknown_categories.csv"))
    assert (result.exit_code, result.stdout) == (
        0, "unknown_categories.csv: 1 added, 0 updated, 0 unchanged, 1 refused, 0 bad rows\n")
    assert result.stderr == (
        f"Refused row 2: ada@example.com is unsubscribed: {REFUSAL}\n"
        "Warning: no article uses the category 'Crypto' (2 subscribers)\n"
        "Warning: no article uses the category 'Gardening' (1 subscriber)\n")


def test_import_the_site_json(run):
    result = run("import", str(FIXTURES / "site_active_and_inactive.json"))
    assert result.stdout == (
        "site_active_and_inactive.json: 3 added, 0 updated, 0 unchanged, 0 refused, "
        "0 bad rows\n")
    assert result.stderr == "Warning: no article uses the category 'Productivity' (1 subscriber)\n"
    assert emails(run, "--status", "unsubscribed") == ["bob@example.com"]


def test_import_dry_run_writes_nothing(run):
    result = run("import", "--dry-run", str(FIXTURES / "good.csv"))
    assert result.stdout == (
        "good.csv: 3 added, 0 updated, 0 unchanged, 0 refused, 0 bad rows "
        "(dry run: nothing written)\n")
    assert run("list").stdout == "0 subscribers\n"


def test_import_of_an_unreadable_file_is_an_error(run):
    result = run("import", str(FIXTURES / "latin1_not_utf8.csv"))
    assert (result.exit_code, result.stderr) == (
        1, f"Error: {FIXTURES / 'latin1_not_utf8.csv'}: not valid UTF-8 (byte 0xe9 at offset 29)\n")


def test_import_of_a_missing_file_is_a_usage_error(run):
    assert run("import", "nowhere.csv").exit_code == 2


def test_import_without_articles_skips_the_category_check(run, site):
    shutil.rmtree(site / "content")
    result = run("import", str(FIXTURES / "unknown_categories.csv"))
    assert result.exit_code == 0
    assert result.stderr == (
        f"Warning: categories not checked: {site / 'content'}: content folder not found\n")


# list and export


def test_list_prints_a_table(run):
    run("import", str(FIXTURES / "site_active_and_inactive.json"))
    run("add", "dan@example.com", "--name", "Dan", "--cadence", "daily")
    assert run("list").stdout == (
        "EMAIL              NAME  STATUS        CADENCE  CATEGORIES\n"
        "ada@example.com          active        weekly   General AI, Productivity\n"
        "bob@example.com          unsubscribed  daily    (all)\n"
        "Carla@example.com        active        weekly   tools\n"
        "dan@example.com    Dan   active        daily    (all)\n"
        "4 subscribers\n")


def test_list_filters_by_status_and_by_category_received(run):
    run("import", str(FIXTURES / "good.csv"))
    run("unsubscribe", "bob@example.com")
    assert emails(run, "--status", "active") == ["ada@example.com", "carla@example.com"]
    assert emails(run, "--category", "TOOLS") == ["ada@example.com", "bob@example.com"]
    assert emails(run, "--category", "tools", "--status", "active") == ["ada@example.com"]


def test_list_as_json(run):
    run("import", str(FIXTURES / "site_active_and_inactive.json"))
    assert json.loads(run("list", "--json", "--status", "unsubscribed").stdout) == [{
        "email": "bob@example.com", "name": "", "categories": [], "cadence": "daily",
        "status": "unsubscribed", "created": "2025-07-14T09:12:44.002000Z",
    }]


def test_export_csv(run):
    run("import", str(FIXTURES / "site_active_and_inactive.json"))
    assert run("export").stdout == (
        "email,name,categories,cadence,status,created\n"
        "ada@example.com,,General AI;Productivity,weekly,active,2025-06-03T18:57:08.415000Z\n"
        "bob@example.com,,,daily,unsubscribed,2025-07-14T09:12:44.002000Z\n"
        "Carla@example.com,,tools,weekly,active,2025-08-01T00:00:00Z\n")


def test_export_csv_keeps_spreadsheets_from_running_cells_as_formulas(run, site, tmp_path):
    seed(site, NewSubscriber("-ada@example.com", name='=HYPERLINK("https://evil.example")'),
         NewSubscriber("bob@example.com", name="@SUM(A1)", categories=("+Tools",)),
         NewSubscriber("cy@example.com", name="'Tis Cy"))
    exported = run("export").stdout
    assert exported.splitlines()[1:] == [
        "'-ada@example.com,\"'=HYPERLINK(\"\"https://evil.example\"\")\",,weekly,active,"
        "2026-02-23T08:00:00Z",
        "bob@example.com,'@SUM(A1),'+Tools,weekly,active,2026-02-23T08:00:00Z",
        "cy@example.com,'Tis Cy,,weekly,active,2026-02-23T08:00:00Z",
    ]
    (tmp_path / "out.csv").write_text(exported, encoding="utf-8")
    runner = CliRunner(env={"DIGEST_DB": str(tmp_path / "copy.db")})
    runner.invoke(cli, ["--config", str(site / "digest.toml"), "subscribers", "import",
                        str(tmp_path / "out.csv")])
    with open_store(tmp_path / "copy.db") as store:
        assert [(s.email, s.name, s.categories) for s in store.subscribers()] == [
            ("-ada@example.com", '=HYPERLINK("https://evil.example")', ()),
            ("bob@example.com", "@SUM(A1)", ("+Tools",)),
            ("cy@example.com", "'Tis Cy", ()),
        ]


def test_export_json_in_the_sites_format(run):
    run("import", str(FIXTURES / "site_active_and_inactive.json"))
    assert json.loads(run("export", "--format", "json").stdout)[1] == {
        "email": "bob@example.com", "name": "", "subscribedAt": "2025-07-14T09:12:44.002000Z",
        "isActive": False, "status": "unsubscribed",
        "preferences": {"frequency": "daily", "categories": []},
    }


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_round_trips_through_import(run, site, tmp_path, fmt):
    run("import", str(FIXTURES / "good.csv"))
    run("import", str(FIXTURES / "site_active_and_inactive.json"))
    exported = tmp_path / f"subscribers.{fmt}"
    exported.write_text(run("export", "--format", fmt).stdout, encoding="utf-8")
    runner = CliRunner(env={"DIGEST_DB": str(tmp_path / "copy.db")})
    result = runner.invoke(cli, ["--config", str(site / "digest.toml"), "subscribers",
                                 "import", str(exported)])
    assert result.stdout == (
        f"subscribers.{fmt}: 3 added, 0 updated, 0 unchanged, 0 refused, 0 bad rows\n")
    copied = runner.invoke(cli, ["--config", str(site / "digest.toml"), "subscribers",
                                 "export", "--format", fmt])
    assert copied.stdout == exported.read_text(encoding="utf-8")


# remove and unsubscribe


def test_prune_forgets_only_old_sign_ups_nobody_confirmed(run, site):
    seed(site, NewSubscriber("old@example.com", status="pending"),
         NewSubscriber("moved@example.com", status="active"))
    with open_store(site / "digest.db", clock=lambda: NOW) as store:
        moved = store.get("moved@example.com")  # was active, then pending again: kept
        store.update([Change(moved, replace(moved, status="pending"))], "cli")
    recent = datetime.now(UTC) - timedelta(days=29)
    with open_store(site / "digest.db", clock=lambda: recent) as store:
        store.insert([NewSubscriber("new@example.com", status="pending")], "web")
    result = run("prune")
    assert (result.exit_code, result.stdout) == (
        0, "Forgot 1 sign-up left unconfirmed for over 30 days\n")
    assert emails(run) == ["moved@example.com", "new@example.com"]
    assert b"old@example.com" not in (site / "digest.db").read_bytes()
    assert run("prune", "--older-than", "28").stdout == (
        "Forgot 1 sign-up left unconfirmed for over 28 days\n")
    assert emails(run) == ["moved@example.com"]


def test_remove_forgets_the_address(run):
    run("add", "ada@example.com")
    run("add", "bob@example.com")
    result = run("remove", "ADA@example.com")
    assert (result.exit_code, result.stdout) == (
        0, "Removed ADA@example.com and its history (past issues keep their counts)\n")
    assert emails(run) == ["bob@example.com"]


def test_remove_an_unknown_address_is_an_error(run):
    result = run("remove", "nobody@example.com")
    assert (result.exit_code, result.stderr) == (1, "Error: no subscriber nobody@example.com\n")


def test_unsubscribe_by_address(run):
    run("add", "ada@example.com")
    result = run("unsubscribe", "Ada@Example.com")
    assert (result.exit_code, result.stdout) == (0, "Unsubscribed ada@example.com\n")
    assert run("unsubscribe", "ada@example.com").stdout == (
        "ada@example.com is already unsubscribed; nothing changed\n")


def test_unsubscribe_by_the_token_from_a_link(run, site):
    run("add", "ada@example.com")
    run("add", "bob@example.com")
    with open_store(site / "digest.db") as store:
        tokens = store.tokens(store.subscribers(), SECRET)
        token = tokens[store.get("bob@example.com").id]
    result = run("unsubscribe", token)
    assert (result.exit_code, result.stdout) == (0, "Unsubscribed bob@example.com\n")
    assert emails(run, "--status", "active") == ["ada@example.com"]


@pytest.mark.parametrize(("argument", "message"), [
    ("nobody@example.com", "no subscriber nobody@example.com"),
    ("not-a-real-token", "no subscriber has that unsubscribe token"),
])
def test_unsubscribe_someone_unknown_is_an_error(run, argument, message):
    result = run("unsubscribe", argument)
    assert (result.exit_code, result.stderr) == (1, f"Error: {message}\n")


def test_a_name_with_a_control_character_is_refused(run):
    result = run("add", "ada@example.com", "--name", "Ada\x07")
    assert (result.exit_code, result.stderr) == (
        1, "Error: the name contains a control character ('\\x07'): 'Ada\\x07'\n")
    assert run("add", "ada@example.com", "--name", "Ada\nLovelace").exit_code == 0
    assert run("list").stdout.splitlines()[1].split()[:3] == ["ada@example.com", "Ada",
                                                              "Lovelace"]


def test_an_argument_that_is_not_utf8_is_a_usage_error(run):
    result = run("remove", "\udcff@example.com")  # how Python passes the byte 0xff
    assert result.exit_code == 2
    assert result.stderr.endswith("Error: '\\udcff@example.com' is not valid UTF-8 text\n")
