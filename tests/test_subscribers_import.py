"""Importing subscribers from CSV and the original site's JSON, and exporting them back."""

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.errors import DigestError
from digest.store import Change, NewSubscriber, open_store
from digest.subscriber_files import (
    Problem,
    Row,
    parse_subscribers,
    read_subscribers,
    to_csv,
    to_site_json,
)
from digest.subscribers import import_file, import_parsed

FIXTURES = Path(__file__).parent / "fixtures" / "subscribers"
NOW = datetime(2026, 2, 23, 8, 0, tzinfo=UTC)
SITE_CATEGORIES = ["General AI", "Tools", "Research", "Policy", "Productivity"]


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "digest.db", clock=lambda: NOW) as opened:
        yield opened


def import_fixture(store, name, known=SITE_CATEGORIES, **options):
    return import_file(store, FIXTURES / name, known, **options)


def contents(store):
    """Everything the import could have touched, to compare before and after."""
    return [list(store.conn.execute(f"SELECT * FROM {table} ORDER BY 1"))
            for table in ("subscribers", "subscriber_events")]


def set_status(store, email, status, source="web"):
    current = store.get(email)
    store.update([Change(current, replace(current, status=status))], source)


# Reading the files


def test_good_csv_rows_are_read_with_every_field():
    assert read_subscribers(FIXTURES / "good.csv").rows == (
        Row(2, "ada@example.com", "Ada Lovelace", ("General AI", "Tools"), "weekly"),
        Row(3, "bob@example.com", "Bob", (), "daily"),
        Row(4, "carla@example.com", "Carla, PhD", ("Research", "Policy"), "weekly"),
    )


def test_a_bom_and_crlf_line_ends_are_read_like_plain_utf8():
    parsed = read_subscribers(FIXTURES / "with_bom_and_crlf.csv")
    assert parsed.rows == read_subscribers(FIXTURES / "good.csv").rows[:2]
    assert parsed.bad == ()


def test_every_bad_csv_row_is_reported_with_its_row_number():
    parsed = read_subscribers(FIXTURES / "bad_rows.csv")
    assert [str(problem) for problem in parsed.bad] == [
        "row 3: bad address 'not-an-address': An email address must have an @-sign.",
        "row 4: no email address",
        "row 5: unknown cadence 'monthly' (expected weekly or daily)",
        "row 6: duplicate of row 2 (ADA@example.com)",
        "row 7: 5 fields, but the header has 4",
    ]
    assert [row.number for row in parsed.rows] == [2, 8]


def test_a_row_with_several_problems_reports_each_and_counts_once():
    parsed = parse_subscribers("email,cadence,status\nx@,hourly,gone\n")
    assert parsed.bad == (
        Problem(2, "bad address 'x@': There must be something after the @-sign."),
        Problem(2, "unknown cadence 'hourly' (expected weekly or daily)"),
        Problem(2, "unknown status 'gone' (expected pending, active, unsubscribed, bounced "
                   "or complained)"),
    )
    assert parsed.bad_rows == 1


def test_categories_split_on_semicolons_and_bars_without_repeats():
    parsed = parse_subscribers("email,categories\nada@example.com, Tools | AI;tools;; \n")
    assert parsed.rows[0].categories == ("Tools", "AI")


def test_rows_are_numbered_by_the_line_they_start_on():
    parsed = parse_subscribers('email,name\n\nada@example.com,"Ada\nLovelace"\nbad,B\n')
    assert parsed.rows[0].number == 3
    assert [str(problem) for problem in parsed.bad] == [
        "row 5: bad address 'bad': An email address must have an @-sign."]


def test_names_and_categories_are_one_line_of_text():
    parsed = parse_subscribers(
        'email,name,categories\nada@example.com,"Ada\nLovelace","AI\r\n;Tools"\n'
        'bob@example.com,Bob\x07,\ncy@example.com,Cy,Too\x1bls\n')
    assert parsed.rows == (Row(2, "ada@example.com", "Ada Lovelace", ("AI", "Tools")),)
    assert [str(problem) for problem in parsed.bad] == [
        "row 5: the name contains a control character ('\\x07'): 'Bob\\x07'",
        "row 6: a category contains a control character ('\\x1b'): 'Too\\x1bls'"]


def test_bidi_and_c1_controls_are_removed_from_names_and_categories():
    parsed = parse_subscribers(
        'email,name,categories\nada@example.com,"Ada\u202e Lovelace\u202c\u0085Jr",'
        '"A\u2066I\u2069;\u009bTools"\n')
    assert parsed.bad == ()
    assert parsed.rows == (Row(2, "ada@example.com", "Ada Lovelace Jr", ("AI", "Tools")),)


def test_a_sign_up_date_out_of_range_and_deep_json_are_problems_not_crashes():
    parsed = parse_subscribers(
        'email,created\nada@example.com,0001-01-01T00:00:00+14:00\n')
    assert [str(problem) for problem in parsed.bad] == [
        "row 2: bad date '0001-01-01T00:00:00+14:00' (out of range)"]
    with pytest.raises(ValueError) as error:
        parse_subscribers("[" * 100_000 + "]" * 100_000)
    assert str(error.value) == "invalid JSON: nested too deeply"


def test_unknown_columns_are_ignored_with_a_warning():
    parsed = parse_subscribers("email,phone\nada@example.com,555\n")
    assert parsed.warnings == ("ignored the unknown column 'phone'",)
    assert parsed.rows == (Row(2, "ada@example.com"),)


@pytest.mark.parametrize(("name", "message"), [
    ("no_email_column.csv", "no 'email' column in the header 'address,name' "
                            "(expected email,name,categories,cadence)"),
    ("latin1_not_utf8.csv", "not valid UTF-8 (byte 0xe9 at offset 29)"),
    ("site_not_a_list.json", "expected a list of subscribers, as in the site's "
                             "subscribers.json"),
    ("site_invalid_json.json", "invalid JSON: Expecting property name enclosed in double "
                               "quotes: line 1 column 30 (char 29)"),
])
def test_a_file_that_cannot_be_read_names_the_problem(name, message):
    with pytest.raises(DigestError) as error:
        read_subscribers(FIXTURES / name)
    assert str(error.value) == f"{FIXTURES / name}: {message}"


def test_the_site_json_is_read_with_active_and_inactive_readers():
    assert read_subscribers(FIXTURES / "site_active_and_inactive.json").rows == (
        Row(1, "ada@example.com", None, ("General AI", "Productivity"), "weekly", "active",
            datetime(2025, 6, 3, 18, 57, 8, 415000, tzinfo=UTC)),
        Row(2, "bob@example.com", None, (), "daily", "unsubscribed",
            datetime(2025, 7, 14, 9, 12, 44, 2000, tzinfo=UTC)),
        Row(3, "Carla@example.com", None, ("tools",), "weekly", "active",
            datetime(2025, 8, 1, tzinfo=UTC)),
    )


def test_every_bad_json_record_is_reported_with_its_position():
    parsed = read_subscribers(FIXTURES / "site_bad_records.json")
    assert [str(problem) for problem in parsed.bad] == [
        'row 2: not an object but "bob@example.com"',
        'row 3: isActive must be true or false, not "yes"',
        "row 4: bad date 'last tuesday' (expected ISO 8601, e.g. 2025-06-03T18:57:08Z)",
        "row 5: unknown cadence 'hourly' (expected weekly or daily)",
        "row 6: duplicate of row 1 (ada@example.com)",
    ]


# Importing


def test_good_rows_are_imported(store):
    plan = import_fixture(store, "good.csv")
    assert plan.summary() == "3 added, 0 updated, 0 unchanged, 0 refused, 0 bad rows"
    assert [(s.email, s.name, s.categories, s.cadence, s.status, s.created)
            for s in store.subscribers()] == [
        ("ada@example.com", "Ada Lovelace", ("General AI", "Tools"), "weekly", "active", NOW),
        ("bob@example.com", "Bob", (), "daily", "active", NOW),
        ("carla@example.com", "Carla, PhD", ("Research", "Policy"), "weekly", "active", NOW),
    ]
    ada = store.get("ada@example.com")
    assert [(e.old, e.new, e.source) for e in store.events(ada)] == [(None, "active", "import")]


def test_good_rows_are_imported_and_bad_rows_counted(store):
    plan = import_fixture(store, "bad_rows.csv")
    assert plan.summary() == "2 added, 0 updated, 0 unchanged, 0 refused, 5 bad rows"
    assert [s.email for s in store.subscribers()] == ["ada@example.com", "erin@example.com"]


@pytest.mark.parametrize("name", ["good.csv", "site_active_and_inactive.json",
                                  "with_status_column.csv", "bad_rows.csv"])
def test_importing_the_same_file_twice_changes_nothing(store, name):
    import_fixture(store, name)
    before = contents(store)
    plan = import_fixture(store, name)
    assert contents(store) == before
    assert (len(plan.added), len(plan.changes)) == (0, 0)


def test_the_site_json_imports_inactive_readers_as_unsubscribed(store):
    plan = import_fixture(store, "site_active_and_inactive.json")
    assert plan.summary() == "3 added, 0 updated, 0 unchanged, 0 refused, 0 bad rows"
    assert [(s.email, s.status, s.cadence, s.created) for s in store.subscribers()] == [
        ("ada@example.com", "active", "weekly", datetime(2025, 6, 3, 18, 57, 8, 415000, UTC)),
        ("bob@example.com", "unsubscribed", "daily", datetime(2025, 7, 14, 9, 12, 44, 2000, UTC)),
        ("Carla@example.com", "active", "weekly", datetime(2025, 8, 1, tzinfo=UTC)),
    ]


def test_an_existing_address_gets_the_files_values(store):
    store.insert([NewSubscriber("ada@example.com", "A.", ("Policy",), "daily")], "cli")
    plan = import_fixture(store, "good.csv")
    assert plan.summary() == "2 added, 1 updated, 0 unchanged, 0 refused, 0 bad rows"
    ada = store.get("ada@example.com")
    assert (ada.name, ada.categories, ada.cadence) == (
        "Ada Lovelace", ("General AI", "Tools"), "weekly")


def test_what_the_file_does_not_say_is_kept(store):
    store.insert([NewSubscriber("ada@example.com", "Ada", ("Policy",), "daily")], "cli")
    import_parsed(store, parse_subscribers("email\nada@example.com\n"), None)
    ada = store.get("ada@example.com")
    assert (ada.name, ada.categories, ada.cadence) == ("Ada", ("Policy",), "daily")


def test_a_pending_address_in_the_file_becomes_active(store):
    store.insert([NewSubscriber("ada@example.com", status="pending")], "web")
    import_fixture(store, "good.csv")
    assert store.get("ada@example.com").status == "active"


def test_an_inactive_reader_in_the_site_json_unsubscribes_an_active_one(store):
    store.insert([NewSubscriber("bob@example.com")], "cli")
    import_fixture(store, "site_active_and_inactive.json")
    bob = store.get("bob@example.com")
    assert bob.status == "unsubscribed"
    assert [(e.old, e.new, e.source) for e in store.events(bob)][-1] == (
        "active", "unsubscribed", "import")


def test_dry_run_reports_and_writes_nothing(store):
    before = contents(store)
    plan = import_fixture(store, "good.csv", dry_run=True)
    assert plan.summary() == "3 added, 0 updated, 0 unchanged, 0 refused, 0 bad rows"
    assert contents(store) == before


def test_categories_no_article_uses_are_reported_case_insensitively(store):
    plan = import_fixture(store, "unknown_categories.csv")
    assert plan.unknown_categories == (("Crypto", 2), ("Gardening", 1))


def test_categories_are_not_checked_without_the_sites(store):
    assert import_fixture(store, "unknown_categories.csv", known=None).unknown_categories == ()


# The status rule: no way back to active through import


@pytest.mark.parametrize("stopped", ["unsubscribed", "bounced", "complained"])
@pytest.mark.parametrize("name", ["good.csv", "site_active_and_inactive.json",
                                  "with_status_column.csv"])
def test_import_never_reactivates_a_stopped_address(store, stopped, name):
    store.insert([NewSubscriber("ada@example.com", status=stopped)], "web")
    before = store.get("ada@example.com")
    plan = import_fixture(store, name)
    assert store.get("ada@example.com") == before
    assert [str(problem) for problem in plan.refused] == [
        f"row {plan.refused[0].row}: ada@example.com is {stopped}: only the reader can "
        "resubscribe, by signing up and confirming again"]


def test_a_stopped_address_keeps_its_own_reason_for_stopping(store):
    store.insert([NewSubscriber("carl@example.com", "Carl", status="complained")], "webhook")
    plan = import_fixture(store, "with_status_column.csv")
    assert store.get("carl@example.com").status == "complained"
    assert plan.refused == ()


def test_a_stopped_address_may_still_be_renamed_by_a_file_that_agrees(store):
    store.insert([NewSubscriber("bob@example.com", "Robert", status="unsubscribed")], "web")
    plan = import_fixture(store, "with_status_column.csv")
    assert store.get("bob@example.com").name == "Bob"
    assert plan.summary() == "2 added, 1 updated, 0 unchanged, 0 refused, 1 bad row"


# Export round-trips through import


@pytest.mark.parametrize("write", [to_csv, to_site_json])
def test_export_round_trips_through_import(tmp_path, store, write):
    import_fixture(store, "good.csv")
    import_fixture(store, "site_active_and_inactive.json")
    set_status(store, "carla@example.com", "bounced", "webhook")
    exported = tmp_path / "export.txt"
    exported.write_text(write(store.subscribers()), encoding="utf-8")

    with open_store(tmp_path / "copy.db", clock=lambda: NOW) as copy:
        assert import_file(copy, exported, None).summary() == (
            "3 added, 0 updated, 0 unchanged, 0 refused, 0 bad rows")
        assert [replace(s, id=0) for s in copy.subscribers()] == [
            replace(s, id=0) for s in store.subscribers()]
    before = contents(store)
    assert import_file(store, exported, None).summary() == (
        "0 added, 0 updated, 3 unchanged, 0 refused, 0 bad rows")
    assert contents(store) == before


def test_import_is_one_transaction(tmp_path, store):
    other = sqlite3.connect(tmp_path / "digest.db")
    other.execute("BEGIN")
    other.execute("SELECT count(*) FROM subscribers").fetchone()
    import_fixture(store, "good.csv")
    assert other.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0
    other.execute("COMMIT")
    assert other.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 3
    other.close()
