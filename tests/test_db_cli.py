"""`digest db` and the wording of database errors on the command line: the URL's
password never shown, an unreachable server, another scheme, the missing extra."""

from __future__ import annotations

import socket
import sys

import pytest
from click.testing import CliRunner
from send_support import write_site

from digest.cli import cli
from digest.location import PostgresURL
from digest.store import MIGRATIONS, NewSubscriber, open_store


def digest(*args: str):
    return CliRunner().invoke(cli, list(args))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def password(url: PostgresURL) -> str:
    return url.dsn.split("://", 1)[1].split("@")[0].split(":")[1]


def test_db_status_names_the_backend_and_hides_the_password(tmp_path, pg_url):
    config = write_site(tmp_path)
    with open_store(pg_url) as store:
        store.insert([NewSubscriber("ada@example.com")], "cli")
    result = digest("--config", str(config), "--db", pg_url.dsn, "db", "status")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:3] == ["Backend: postgresql", f"Database: {pg_url}",
                         f"Schema version: {len(MIGRATIONS)} (this digest: {len(MIGRATIONS)})"]
    assert "  subscribers          1" in lines  # the column fits confirmation_emails
    assert ":***@127.0.0.1:" in result.stdout and password(pg_url) not in result.output


def test_db_copy_moves_a_sqlite_store_to_postgresql_and_refuses_it_twice(tmp_path, pg_url,
                                                                         monkeypatch):
    config = write_site(tmp_path)
    monkeypatch.chdir(tmp_path)  # FROM and TO are read from the working folder
    assert digest("--config", str(config), "subscribers", "add", "ada@example.com"
                  ).exit_code == 0
    copied = digest("--config", str(config), "db", "copy", "digest.db", pg_url.dsn)
    assert copied.exit_code == 0, copied.output
    assert copied.stdout.splitlines()[0] == (
        f"Copied 2 rows from {tmp_path / 'digest.db'} to {pg_url}:")
    again = digest("--config", str(config), "db", "copy", "digest.db", pg_url.dsn)
    assert (again.exit_code, again.stderr) == (1, (
        f"Error: {pg_url}: not empty (subscribers 1, subscriber_events 1): copy only into "
        "a new database\n"))
    listed = digest("--config", str(config), "--db", pg_url.dsn, "subscribers", "list")
    assert listed.stdout.splitlines()[-1] == "1 subscriber"
    assert password(pg_url) not in copied.output + again.output


def test_an_unreachable_server_stops_the_run_before_anything_is_planned(tmp_path, monkeypatch):
    config = write_site(tmp_path)
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.key")
    monkeypatch.setenv("DIGEST_SECRET_KEY", "x" * 20)
    port = closed_port()
    url = f"postgresql://digest:hunter2secret@127.0.0.1:{port}/news"
    result = digest("--config", str(config), "--db", url, "weekly", "--now", "2026-11-29T08:00")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(
        f"Error: cannot connect to PostgreSQL at 127.0.0.1:{port}/news: ")
    assert "hunter2secret" not in result.output and "Traceback" not in result.output


def test_another_url_scheme_is_a_usage_error(tmp_path):
    config = write_site(tmp_path)
    result = digest("--config", str(config), "--db", "mysql://me:hunter2@db.example/news",
                    "db", "status")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--db': mysql://me:***@db.example/news: unsupported "
        "database URL scheme 'mysql': use a file path (SQLite) or "
        "postgresql://user:password@host:port/db")


def test_without_psycopg_a_postgresql_url_names_the_extra(tmp_path, monkeypatch):
    config = write_site(tmp_path)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    result = digest("--config", str(config), "--db", "postgresql://me:hunter2@db.example/news",
                    "subscribers", "list")
    assert (result.exit_code, result.stderr) == (1, (
        "Error: postgresql://me:***@db.example/news: PostgreSQL needs the driver: "
        "pip install 'digest[postgres]'\n"))


def test_a_store_newer_than_this_digest_is_refused(tmp_path, pg_url):
    config = write_site(tmp_path)
    with open_store(pg_url) as store:
        store.conn.set_schema_version(len(MIGRATIONS) + 1)
    result = digest("--config", str(config), "--db", pg_url.dsn, "subscribers", "list")
    assert (result.exit_code, result.stderr) == (1, (
        f"Error: the database is at version {len(MIGRATIONS) + 1}, newer than this digest "
        f"knows ({len(MIGRATIONS)}): upgrade digest\n"))


@pytest.mark.parametrize("given", ["digest.db", "postgres://me@db.example/news"])
def test_db_accepts_a_path_or_a_postgresql_url(tmp_path, given, monkeypatch):
    from digest.cli import DatabaseParam

    monkeypatch.chdir(tmp_path)
    value = DatabaseParam().convert(given, None, None)
    assert value == (str(tmp_path / given) if given.endswith(".db") else given)


def test_the_subscriber_commands_work_the_same_on_both_backends(tmp_path, db):
    config = write_site(tmp_path)
    store = db.dsn if isinstance(db, PostgresURL) else str(db)
    (tmp_path / "readers.csv").write_text(
        "email,name,categories,cadence\nada@example.com,Ada,Work,weekly\n"
        "bob@example.com,Bob,,daily\n", encoding="utf-8")

    def run(*args: str):
        result = CliRunner(env={"DIGEST_SECRET_KEY": "s" * 20}).invoke(
            cli, ["--config", str(config), "--db", store, *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    assert run("subscribers", "import", str(tmp_path / "readers.csv")).endswith(
        "2 added, 0 updated, 0 unchanged, 0 refused, 0 bad rows\n")
    assert run("subscribers", "list", "--status", "active").splitlines()[-1] == "2 subscribers"
    assert run("subscribers", "unsubscribe", "bob@example.com")
    assert "bob@example.com" in run("subscribers", "export", "--format", "csv")
    assert run("subscribers", "remove", "ada@example.com")
    assert run("subscribers", "prune") == "Forgot 0 sign-ups left unconfirmed for over 30 days\n"
    assert run("issues").startswith("ISSUE  CADENCE  STATUS")
    assert run("subscribers", "list").splitlines()[-1] == "1 subscriber"
    with open_store(db) as opened:
        assert [(s.email, s.status) for s in opened.subscribers()] == [
            ("bob@example.com", "unsubscribed")]


def test_a_read_only_server_is_an_error_line_not_a_traceback(tmp_path, pg_url):
    """A replica or a failover answers every write with an error digest has no words of
    its own for: one `Error:` line and exit 1."""
    open_store(pg_url).close()  # migrated while it could still be written
    read_only = pg_url.dsn.replace("options=", "options=-cdefault_transaction_read_only%3Don%20")
    result = digest("--config", str(write_site(tmp_path)), "--db", read_only,
                    "subscribers", "add", "ada@example.com")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == ("Error: the database refused: cannot execute INSERT in a "
                             "read-only transaction\n")
