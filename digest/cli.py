"""The command line: parse, call the library, print. No pipeline logic lives here.

A command imports what it runs when it runs (`digest --help`, or a subscriber command,
does not import the pipeline, and `weekly` not the previews).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from digest import __version__
from digest.db_cli import db_group
from digest.errors import DigestError
from digest.location import LocationError, PostgresURL, parse_location
from digest.store import CADENCES, STATUSES, Store, Subscriber, as_cadence, open_store
from digest.words import plural

if TYPE_CHECKING:
    from digest import pipeline, runs, send, subscribers
    from digest.config import Settings
    from digest.content import LoadResult
    from digest.quality import Finding


class DigestGroup(click.Group):
    """Turns every DigestError into click's `Error: …` on stderr with exit code 1, and so
    an error the database server answers that digest has no words of its own for (a
    read-only replica, a statement time-out): PostgreSQL's arrive as sqlite3's classes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DigestError as exc:
            raise click.ClickException(str(exc)) from None
        except sqlite3.Error as exc:
            raise click.ClickException(f"the database refused: {exc}") from None

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Arguments are text: bytes that are not UTF-8 are a usage error, not a crash."""
        for arg in args:
            try:
                arg.encode("utf-8")
            except UnicodeEncodeError:
                raise click.UsageError(f"{arg!r} is not valid UTF-8 text", ctx) from None
        return super().parse_args(ctx, args)


@dataclass
class App:
    """State shared by every command: where the config and the database are."""

    config_path: Path | None = None
    db_path: str | None = None  # a path, or a postgresql:// URL (see DatabaseParam)
    offline: bool = False

    @cached_property
    def settings(self) -> Settings:
        from digest.config import find_config, load_settings

        settings = load_settings(find_config(self.config_path, Path.cwd()))
        if self.offline:
            from digest.pipeline import OFFLINE

            settings = settings.override(OFFLINE, True)
        if self.db_path is not None:
            return settings.override("store.path", self.db_path)
        return settings


class DatabaseParam(click.ParamType):  # type: ignore[type-arg]  # generic in click 8.2+
    """--db: a SQLite file (made absolute) or a postgresql:// URL; other schemes are a
    usage error. The value is never echoed back with its password."""

    name = "PATH|URL"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        try:
            location = parse_location(str(value), Path.cwd())
        except LocationError as exc:
            self.fail(str(exc), param, ctx)
        return location.dsn if isinstance(location, PostgresURL) else str(location.resolve())


pass_app = click.make_pass_decorator(App)


class LocalDateTime(click.ParamType):  # type: ignore[type-arg]  # generic in click 8.2+
    """An ISO 8601 date or date-time; a naive one is read in the newsletter's zone later."""

    name = "DATETIME"

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        if isinstance(value, datetime):
            return in_years(value, self, param, ctx)
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date-time (e.g. 2026-11-29T08:00)", param, ctx)
        return in_years(moment, self, param, ctx)


class Day(click.DateTime):
    """A calendar day, YYYY-MM-DD."""

    def __init__(self) -> None:
        super().__init__(formats=["%Y-%m-%d"])

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        return in_years(super().convert(value, param, ctx), self, param, ctx)


YEARS = range(1970, 9000)  # outside, windows and time zones overflow


def in_years(moment: datetime, kind: click.ParamType[Any, Any], param: Any,
             ctx: Any) -> datetime:
    if moment.year not in YEARS:
        kind.fail(f"{moment.date().isoformat()} is out of range (years {YEARS.start} to "
                  f"{YEARS.stop - 1})", param, ctx)
    return moment


DATE = Day()


@click.group(cls=DigestGroup)
@click.version_option(__version__, prog_name="digest")
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False),
              help="Configuration file (default: ./digest.toml).")
@click.option("--db", type=DatabaseParam(),
              help="SQLite file or postgresql:// URL (default: $DIGEST_DB, else store.path).")
@click.option("--offline", is_flag=True, help="Read feeds from their cache only.")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, db: str | None, offline: bool) -> None:
    """Build a newsletter digest from a folder of markdown articles and feeds."""
    ctx.obj = App(config, db, offline)


@cli.command()
@click.option("--content", "content_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Articles folder (default: content.dir from the config).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False),
              help="Folder to write the previews into (default: previews/ beside the config).")
@click.option("--since", type=DATE, help="First day of the window (YYYY-MM-DD, inclusive).")
@click.option("--until", type=DATE, help="Last day of the window (YYYY-MM-DD, inclusive).")
@click.option("--now", type=LocalDateTime(), help="Preview the week ending at this moment.")
@click.option("--category", "categories", multiple=True,
              help="Only this category in the whole issue's preview (repeatable); segment "
              "previews show what each segment's readers get.")
@click.option("--strict", is_flag=True, help="Fail on any problem in an article.")
@click.option("--cadence", type=click.Choice(CADENCES), default="weekly", show_default=True,
              help="Whose segments to preview.")
@click.option("--screenshots", is_flag=True,
              help="Also write phone and desktop PNGs of each email (needs Chromium).")
@click.option("--eml", is_flag=True,
              help="Also write each email as the .eml message a reader would get.")
@pass_app
def preview(app: App, content_dir: Path | None, out: Path | None, since: datetime | None,
            until: datetime | None, now: datetime | None, categories: Sequence[str],
            strict: bool, cadence: str, screenshots: bool, eml: bool) -> None:
    """Write the HTML and text parts of an issue into --out.

    With no window given, previews the 7 days ending at the newest article. With
    subscribers in the store, also writes one preview per segment (readers who chose the
    same categories) and an index.html listing them.
    """
    from digest import pipeline
    from digest.preview import write_eml_files, write_index, write_preview, write_segment_previews
    from digest.screenshots import take_screenshots

    check_window_options(since, until, now)
    settings = with_content_dir(app.settings, content_dir)
    loaded = load_and_warn(settings, strict)
    check_categories(categories, loaded)
    shown = build_preview(settings, loaded, since, until, now, categories, cadence)
    built, segments = shown.whole, shown.segments
    out, site = out or previews_dir(settings), pipeline.site_files(settings, loaded.articles)
    paths = write_preview(built, out, site=site)
    print_preview(built, paths, settings)
    written = write_segment_previews(built, segments, out, site)
    site.copy_to(out)
    print_segments(segments, written)
    html_files = [paths[0], *(html for html, _ in written)]
    checks = print_findings(zip(html_files, [
        (built, shown.findings), *((s.built, s.findings) for s in segments if s.built)],
        strict=True))
    if eml:
        for path in write_eml_files(settings, built, segments, out):
            click.echo(f"Wrote {path}")
    shots = take_screenshots(html_files) if screenshots else {}
    for names in shots.values():
        click.echo(f"Wrote {', '.join(str(out / name) for name in names)}")
    click.echo(f"Wrote {write_index(built, segments, out, shots, checks)}")
    if loaded.problems:
        click.echo(f"Skipped {loaded.skipped_files} {plural(loaded.skipped_files, 'file')} "
                   "with problems (see the warnings above).")
    errors = sum(f.level == "error" for findings in checks.values() for f in findings)
    if errors:  # the previews are written, to look at; a script must still see it failed
        raise click.ClickException(f"{errors} {plural(errors, 'problem')} found in the "
                                   "previews (see above)")


def previews_dir(settings: Settings) -> Path:
    """`previews/` beside the config, shown relative to the current folder when below it."""
    folder = settings.root / "previews"
    try:
        return folder.relative_to(Path.cwd().resolve())
    except ValueError:
        return folder


def check_categories(categories: Sequence[str], loaded: LoadResult) -> None:
    known = sorted({article.category for article in loaded.articles}, key=str.casefold)
    folded = {name.casefold() for name in known}
    for name in categories:
        if name.casefold() not in folded:
            raise click.BadParameter(f"no article has the category {name!r} (the categories "
                                     f"are: {', '.join(known)})", param_hint="'--category'")


def print_findings(variants: Iterable[tuple[Path, tuple[pipeline.Built, Sequence[Finding]]]]
                   ) -> dict[str, Sequence[Finding]]:
    """Each written email's quality findings (checked as a send checks them), printed and
    returned by file stem (for index.html)."""
    checks = {}
    for path, (built, findings) in variants:
        if not built.issue.articles:
            click.echo(f"Warning: {path}: no articles in the window, so this issue would "
                       "not be sent", err=True)
        checks[path.stem] = findings
        for finding in findings:
            click.echo(f"{finding.level.capitalize()}: {path}: {finding.message}", err=True)
    return checks


def print_segments(segments: Sequence[pipeline.SegmentBuild],
                   written: Sequence[tuple[Path, Path]]) -> None:
    paths = iter(written)
    for item in segments:
        count = len(item.segment.recipients)
        who = f"{count} {plural(count, 'subscriber')}"
        if item.built is None:
            click.echo(f"Segment {item.segment.slug} ({who}): no articles in "
                       f"{item.segment.label} this time; it would be skipped")
            continue
        size, articles = item.built.email.size / 1024, len(item.built.issue.articles)
        html_path, text_path = next(paths)
        click.echo(f"Wrote {html_path} ({size:.1f} KB): segment {item.segment.slug}, "
                   f"{who}, {articles} {plural(articles, 'article')}")
        click.echo(f"Wrote {text_path}")


@cli.command()
@click.option("--content", "content_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Articles folder (default: content.dir from the config).")
@pass_app
def check(app: App, content_dir: Path | None) -> None:
    """Validate the content, the configuration and the templates; exit 1 on any error."""
    from digest import pipeline

    settings = with_content_dir(app.settings, content_dir)
    report = pipeline.check_site(settings)
    for line in report.lines():
        click.echo(line, err=not line.startswith("OK"))
    if report.errors:
        raise click.ClickException(f"{report.errors} {plural(report.errors, 'problem')} found")


# Sending

def cadence_options(command: Any) -> Any:
    for option in reversed([
        click.option("--now", type=LocalDateTime(),
                     help="Run as if it were this moment (default: now)."),
        click.option("--dry-run", is_flag=True, help="Plan and check; send and record nothing."),
        click.option("--force", is_flag=True,
                     help="Send even if the quality checks find errors."),
        click.option("--resend-unknown", is_flag=True,
                     help="Send again the batches whose outcome is unknown."),
        click.option("--timings", is_flag=True,
                     help="Print how long each stage took (load, plan, freeze, send)."),
    ]):
        command = option(command)
    return command


@cli.command()
@cadence_options
@pass_app
def weekly(app: App, now: datetime | None, dry_run: bool, force: bool,
           resend_unknown: bool, timings: bool) -> None:
    """Send this week's issue to weekly subscribers: for cron, safe to run again.

    The window runs from the end of the previous weekly issue (the first time, the
    7 days before now) to now. Run twice in a week it sends once; after a crash it
    completes the plan.
    """
    from digest import runs

    options = runs.Options(dry_run=dry_run, force=force, resend_unknown=resend_unknown)
    finish(runs.send_cadence(app.settings, "weekly", now, options, talk(timings)))


@cli.command()
@cadence_options
@pass_app
def daily(app: App, now: datetime | None, dry_run: bool, force: bool,
          resend_unknown: bool, timings: bool) -> None:
    """Send today's issue to daily subscribers: for cron, safe to run again."""
    from digest import runs

    options = runs.Options(dry_run=dry_run, force=force, resend_unknown=resend_unknown)
    finish(runs.send_cadence(app.settings, "daily", now, options, talk(timings)))


@cli.command("send")
@click.option("--issue", "issue_key_", metavar="KEY", help="Complete an issue already planned.")
@click.option("--since", type=DATE, help="First day of a manual issue (YYYY-MM-DD).")
@click.option("--until", type=DATE, help="Last day of a manual issue (YYYY-MM-DD).")
@click.option("--cadence", type=click.Choice(CADENCES), default="weekly", show_default=True,
              help="Whose issue a manual one is.")
@click.option("--to", "to", multiple=True, metavar="EMAIL", callback=lambda _c, _p, v:
              checked_addresses(v),
              help="Send a [TEST] copy to this address only (repeatable); no ledger.")
@click.option("--dry-run", is_flag=True, help="Plan and check; send and record nothing.")
@click.option("--yes", is_flag=True, help="Do not ask before sending.")
@click.option("--resend-unknown", is_flag=True,
              help="Send again the batches whose outcome is unknown.")
@click.option("--force", is_flag=True, help="Send even if the quality checks find errors.")
@click.option("--timings", is_flag=True,
              help="Print how long each stage took (load, plan, freeze, send).")
@pass_app
def send_command(app: App, issue_key_: str | None, since: datetime | None,
                 until: datetime | None, cadence: str, to: tuple[str, ...], dry_run: bool,
                 yes: bool, resend_unknown: bool, force: bool, timings: bool) -> None:
    """Send an issue by hand: a window (--since/--until), or complete one (--issue).

    Without --yes it shows the plan and asks first.
    """
    from digest import runs

    check_window_options(since, until, None)
    if (issue_key_ is None) == (since is None):
        raise click.UsageError("give either --issue KEY or --since and --until")
    days = (since.date(), until.date()) if since and until else None
    if to:
        runs.send_test_copy(app.settings, to, key=issue_key_, days=days, force=force,
                            dry_run=dry_run, echo=click.echo)
        return
    options = runs.Options(dry_run=dry_run, force=force, resend_unknown=resend_unknown,
                           ask=not yes)
    if issue_key_ is not None:
        return finish(runs.complete_issue(app.settings, issue_key_, options, talk(timings)))
    assert days is not None
    finish(runs.send_window(app.settings, *days, as_cadence(cadence), options,
                            talk(timings)))


@cli.group("issues", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def issues_group(ctx: click.Context, as_json: bool) -> None:
    """List the issues in the ledger with their recipient counts.

    `digest issues show KEY` lists an issue's batches; `digest issues mark KEY BATCH
    --delivered|--not-delivered` records what SendGrid's activity feed says of a batch
    whose outcome is unknown.
    """
    from digest import issues

    if ctx.invoked_subcommand is not None:
        return
    rows = issues.summaries(ctx.ensure_object(App).settings)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(table([["ISSUE", "CADENCE", "STATUS", "PLANNED", "ACCEPTED", "FAILED",
                       "UNKNOWN", "SKIPPED"]] + [
        [r["key"], r["cadence"], r["status"], *(str(r[k]) for k in (
            "planned", "accepted", "failed", "unknown", "skipped"))] for r in rows]))


@issues_group.command("show")
@click.argument("key")
@pass_app
def issues_show(app: App, key: str) -> None:
    """List each batch of issue KEY: segment, recipients, state, attempts, last reason."""
    from digest import issues

    issue, batches = issues.batches(app.settings, key)
    click.echo(f"Issue {issue.key} ({issue.cadence}, {issue.status}): {len(batches)} "
               f"{plural(len(batches), 'batch', 'batches')}")
    if batches:
        click.echo(table([["BATCH", "RECIPIENTS", "STATE", "ATTEMPTS", "REASON"]] + [
            [b.label, str(b.size), b.state, str(b.attempts), b.why]
            for b in batches]))


@issues_group.command("mark")
@click.argument("key")
@click.argument("batch", metavar="BATCH")
@click.option("--delivered/--not-delivered", default=None,
              help="What SendGrid's activity feed shows for the batch's recipients.")
@pass_app
def issues_mark(app: App, key: str, batch: str, delivered: bool | None) -> None:
    """Record whether the unknown batch BATCH (segment#number) of KEY was delivered.

    A delivered batch counts as accepted; a batch not delivered is sent by the next run.
    """
    from digest import issues

    if delivered is None:
        raise click.UsageError("give --delivered or --not-delivered")
    marked, done = issues.mark(app.settings, key, batch, delivered=delivered,
                               echo=click.echo)
    if delivered:
        click.echo(f"Marked batch {marked.label} of {key} delivered: counted as accepted "
                   f"({marked.size} {plural(marked.size, 'recipient')}).")
    else:
        click.echo(f"Marked batch {marked.label} of {key} not delivered: the next run "
                   f"sends it ({marked.size} {plural(marked.size, 'recipient')}).")
    if done:
        click.echo(f"Issue {key} is complete.")


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in rows)


def talk(timings: bool = False) -> runs.Talk:
    """How a send run talks here: lines, a confirmation that aborts, the plan, a bar,
    and with `timings` each stage's time."""
    from digest import runs

    return runs.Talk(echo=click.echo, confirm=lambda question: click.confirm(
        question, abort=True), show_plan=print_plan, progress=progress_bar,
        stage=print_stage if timings else lambda name, seconds: None)


def print_stage(name: str, seconds: float) -> None:
    click.echo(f"Timing: {name} {seconds:.2f} s", err=True)


@contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[int], None]]:
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def finish(summary: send.Summary | None) -> None:
    """Print what a send run did; exit 1 if any batch failed or is unknown."""
    if summary is None:
        return
    for reason in summary.reasons:
        click.echo(reason, err=True)
    click.echo(f"Issue {summary.key}: sent to {summary.accepted}, already sent "
               f"{summary.already}, skipped {summary.skipped} (empty segment), stopped since "
               f"planned {summary.dropped}, failed {summary.failed}, unknown {summary.unknown}.")
    if not summary.ok:
        raise SystemExit(1)


def print_plan(key: str, plan: send.Plan) -> None:
    segments = sum(1 for s in plan.segments if s.email)
    click.echo(f"Plan for {key}: {plan.recipients} {plural(plan.recipients, 'recipient')} in "
               f"{segments} {plural(segments, 'segment')}")
    for segment in plan.segments:
        count = len(segment.recipients)
        if segment.email is None:
            click.echo(f"  {segment.slug}: {count} {plural(count, 'recipient')}, "
                       "no articles: skipped")
            continue
        batches, articles = segment.batches, len(segment.articles)
        click.echo(f"  {segment.slug}: {count} {plural(count, 'recipient')} in {batches} "
                   f"{plural(batches, 'batch', 'batches')}, {articles} "
                   f"{plural(articles, 'article')}, {segment.email.size / 1024:.1f} KB")
    for slug, finding in plan.findings:
        click.echo(f"{finding.level.capitalize()}: segment {slug}: {finding.message}",
                   err=True)


def checked_addresses(addresses: Sequence[str]) -> tuple[str, ...]:
    from digest import subscriber_files

    try:
        return tuple(subscriber_files.checked_email(address) for address in addresses)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--to'") from None


def with_content_dir(settings: Settings, content_dir: Path | None) -> Settings:
    if content_dir is not None:
        return settings.override("content.dir", str(content_dir.resolve()))
    return settings


def load_and_warn(settings: Settings, strict: bool) -> LoadResult:
    from digest import pipeline
    from digest.problem_summary import summarize

    loaded = pipeline.load(settings, strict=strict)
    patterns, rest = summarize(loaded.problems, loaded.folder_files)
    for pattern in patterns:
        click.echo(f"Warning: {pattern}", err=True)
    for problem in rest:
        click.echo(f"Warning: {problem} (skipped)", err=True)
    for warning in loaded.warnings:
        click.echo(f"Warning: {warning}", err=True)
    return loaded


def check_window_options(since: datetime | None, until: datetime | None,
                         now: datetime | None) -> None:
    if (since is None) != (until is None):
        raise click.UsageError("--since and --until go together")
    if since is not None and now is not None:
        raise click.UsageError("give either --since/--until or --now, not both")
    if since is not None and until is not None and until < since:
        raise click.UsageError(f"--until {until:%Y-%m-%d} is before --since {since:%Y-%m-%d}")


def build_preview(settings: Settings, loaded: LoadResult, since: datetime | None,
                  until: datetime | None, now: datetime | None, categories: Sequence[str],
                  cadence: str) -> pipeline.Preview:
    """The preview of a window `check_window_options` has already checked."""
    from digest import pipeline

    return pipeline.build_preview(
        settings, loaded.articles, since=since and since.date(),
        until=until and until.date(), now=now, categories=categories, cadence=cadence)


def print_preview(built: pipeline.Built, paths: Sequence[Path], settings: Settings) -> None:
    html_path, text_path = paths
    issue = built.issue
    click.echo(f"Wrote {html_path} ({built.email.size / 1024:.1f} KB)")
    click.echo(f"Wrote {text_path}")
    click.echo(f"Subject: {built.email.subject}")
    sections = sum(1 for section in issue.sections if section.articles)
    click.echo(f"Selected {len(issue.articles)} of {issue.in_window} articles in the window, "
               f"in {sections} {plural(sections, 'category', 'categories')}; "
               f"{issue.more} left out by the caps.")
    if built.trimmed:
        click.echo(f"Trimmed {built.trimmed} {plural(built.trimmed, 'article')} to stay under "
                   f"the {settings.integer('email.size_budget_kb')} KB size budget.")


# The web archive


@cli.command("archive")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False),
              help="Folder to write into (default: archive.dir from the config).")
@click.option("--segments", is_flag=True,
              help="Also write each segment's version of every issue, at ISSUE/SEGMENT/.")
@pass_app
def archive_command(app: App, out: Path | None, segments: bool) -> None:
    """Write the web archive of the sent issues: a page per issue, index.html, feed.xml.

    Each page is the whole issue (every category), with no reader's token in it: its
    unsubscribe and preferences links go to the sign-up page. Only files whose content
    changed are written, so running it again changes nothing. weekly, daily and send
    write an issue's page themselves when archive.dir is set.
    """
    from digest import archive

    written = archive.publish(app.settings, out, segments=segments)
    for relative, findings in written.findings.items():
        for finding in findings:
            click.echo(f"{finding.level.capitalize()}: {written.out / relative}: "
                       f"{finding.message}", err=True)
    for relative in written.changed:
        click.echo(f"Wrote {written.out / relative}")
    changed, same = len(written.changed), len(written.unchanged)
    click.echo(f"Archive in {written.out}: {changed} {plural(changed, 'file')} written, "
               f"{same} unchanged.")


# Live preview


@cli.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on: only 127.0.0.1 is allowed.")
@click.option("--content", "content_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Articles folder (default: content.dir from the config).")
@click.option("--since", type=DATE, help="First day of the window (YYYY-MM-DD, inclusive).")
@click.option("--until", type=DATE, help="Last day of the window (YYYY-MM-DD, inclusive).")
@click.option("--now", type=LocalDateTime(), help="Preview the week ending at this moment.")
@click.option("--cadence", type=click.Choice(CADENCES), default="weekly", show_default=True,
              help="Whose segments to show.")
@pass_app
def serve(app: App, port: int, host: str, content_dir: Path | None, since: datetime | None,
          until: datetime | None, now: datetime | None, cadence: str) -> None:
    """Serve live previews on http://127.0.0.1:PORT/ until Ctrl-C.

    The page shows the issue and each segment's variant at phone or desktop width, with
    its text part and quality checks, and reloads itself when a template, an article or
    the configuration changes. A render error is shown on the page until it is fixed.
    """
    from digest import serve as live
    from digest.config import find_config

    check_window_options(since, until, now)
    settings = with_content_dir(app.settings, content_dir)
    period = live.Period(since.date() if since else None, until.date() if until else None, now,
                         cadence)
    server, url = live.make_server(settings, host, port, period=period,
                                   config=find_config(app.config_path, Path.cwd()))
    shown = server.live.view()  # the whole issue, rendered as the page will first show it
    if shown.error:
        click.echo(f"Warning: {shown.error} (shown on the page until fixed)", err=True)
    click.echo(f"Serving previews of {shown.snapshot.key or settings.site_name} at {url} "
               "(Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("Stopped")
    finally:
        server.server_close()


# Readers' web app


@cli.command("web")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--dev", is_flag=True,
              help="Without a secret, use a random one for this process only.")
@pass_app
def web(app: App, host: str, port: int, dev: bool) -> None:
    """Serve the readers' pages (subscribe, confirm, preferences, unsubscribe) until Ctrl-C.

    This uses Werkzeug's development server, for trying it out locally. In production
    run the same app under gunicorn: gunicorn 'digest.web.wsgi:app'. The secret comes
    from DIGEST_SECRET_KEY (or web.secret_key); without one it refuses to start, unless
    --dev.
    """
    from digest.web import create_app, make_dev_server

    server = make_dev_server(create_app(app.settings, dev=dev), host, port)
    click.echo(f"Serving the readers' pages at http://{host}:{server.port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()  # Werkzeug's returns on Ctrl-C
    finally:
        server.server_close()
    click.echo("Stopped")


# What comes back from SendGrid


@cli.command("sync")
@pass_app
def sync_command(app: App) -> None:
    """Mark subscribers on SendGrid's suppression lists (source sync).

    Reads the global unsubscribes, the unsubscribe group's (sendgrid.asm_group_id),
    bounces, spam reports and invalid emails with SENDGRID_API_KEY, page by page. An
    active or pending reader on a list becomes unsubscribed, bounced or complained;
    nobody is made active. `weekly`, `daily` and `send` run it first.
    """
    from digest import sync

    report = sync.run(app.settings, sync.api_key())
    for line in report.lines():
        click.echo(line)
    for warning in report.warnings():
        click.echo(f"Warning: {warning}", err=True)


@cli.command("stats")
@click.option("--issue", "issue_key_", metavar="KEY", help="Only this issue.")
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable output (a list with the same keys for every issue).")
@pass_app
def stats_command(app: App, issue_key_: str | None, as_json: bool) -> None:
    """Per issue: what the ledger sent, then what SendGrid's event webhook reported.

    Delivered, bounced, complained, unsubscribed, opened and clicked count readers
    (each once per issue); `-` (null in JSON) until a webhook event for the issue
    has arrived.
    """
    from digest import feedback

    with open_store(app.settings.store_path) as store:
        rows = feedback.issue_stats(store, issue_key_)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    numbers = ["planned", "accepted", "failed", "unknown", "skipped", *feedback.KINDS]
    click.echo(table([["ISSUE", *(name.upper() for name in numbers)]] + [
        [row["key"], *("-" if row[n] is None else str(row[n]) for n in numbers)]
        for row in rows]))


# Getting started


@cli.command("init")
@click.argument("folder", required=False, default=".",
                type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--name", help="The newsletter's name (default: the site's title).")
@click.option("--base-url", help="The site's address (default: from the site's config).")
@click.option("--content", "content_dir", help="The articles folder, relative to FOLDER.")
def init_command(folder: Path, name: str | None, base_url: str | None,
                 content_dir: str | None) -> None:
    """Write FOLDER/digest.toml for the site in FOLDER (default: here), read from Hugo,
    Jekyll, Eleventy, Astro or Next.js files, or a folder of markdown. Never overwrites."""
    from digest import init

    found = init.detect(folder, name=name, base_url=base_url, content=content_dir)
    path = init.write_config(folder, found)
    click.echo(f"Found {found.generator}" + (f" ({found.config_file})." if found.config_file
                                             else "."))
    for title, values in (("Read", found.found), ("Guessed", found.guessed)):
        if values:
            click.echo(f"{title}:")
        for value in values:
            click.echo(f"  {value.key} = {shown(value.value)}  ({value.source})")
    for note in found.notes:
        click.echo(f"Note: {note}")
    click.echo(f"Wrote {path}: check it, then run `digest preview`.")


def shown(value: str | dict[str, str]) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key}: {pattern}" for key, pattern in value.items())
    return value


@cli.group("templates")
def templates_group() -> None:
    """The email templates: copy the shipped ones to edit them."""


@templates_group.command("copy")
@click.argument("folder", required=False, default="templates",
                type=click.Path(path_type=Path, file_okay=False))
def templates_copy(folder: Path) -> None:
    """Copy the shipped templates into FOLDER (default: ./templates) to edit them; files
    there already are kept. A template you delete falls back to the shipped one."""
    from digest import init

    for path, copied in init.copy_templates(folder):
        click.echo(f"{'Copied' if copied else 'Kept (exists)'} {path}")
    click.echo(f"Set templates.dir to {folder} in digest.toml if it is not templates/ beside it.")


# Subscribers


@cli.group("translations")
def translations_group() -> None:
    """The site's own catalogs of digest's words (see README, Languages)."""


@translations_group.command("init")
@click.argument("language")
@pass_app
def translations_init(app: App, language: str) -> None:
    """Start templates/LANGUAGE.po: translate it, and digest uses it over the shipped one."""
    from digest import i18n

    started = i18n.init_catalog(language, app.settings.templates_dir)
    click.echo(f"Wrote {started.path}: {started.strings} strings, {started.filled} filled in "
               "from digest's own catalog. Translate the empty msgstr lines; the site's "
               "catalog wins over the shipped one.")


@cli.group("subscribers")
def subscribers_group() -> None:
    """Add, import, list, export, remove and unsubscribe subscribers."""


@subscribers_group.command("add")
@click.argument("email")
@click.option("--name", help="The reader's name.")
@click.option("--category", "categories", multiple=True,
              help="A category they chose (repeatable; none means every category).")
@click.option("--cadence", type=click.Choice(CADENCES),
              help="How often they get an issue (a new address: weekly).")
@pass_app
def subscribers_add(app: App, email: str, name: str | None, categories: Sequence[str],
                    cadence: str | None) -> None:
    """Add EMAIL as an active subscriber: you vouch for the address.

    An address already active (or pending) gets the values given and keeps the rest.
    An address that unsubscribed, bounced or complained is refused: only the reader
    can resubscribe.
    """
    from digest import subscribers

    known = site_categories(app.settings) if categories else None
    with store_of(app) as store:
        added = subscribers.add(store, email, name=name, categories=categories or None,
                                cadence=as_cadence(cadence) if cadence else None)
    warn_unknown_categories(subscribers.unknown_categories([categories], known))
    click.echo(added_message(added))


@subscribers_group.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@pass_app
def subscribers_import(app: App, file: Path, dry_run: bool) -> None:
    """Import subscribers from FILE: CSV or the original site's subscribers.json.

    CSV has a header row with email and any of name, categories (separated by ; or |),
    cadence, status, created. Bad rows are reported and skipped; importing a file
    twice changes nothing; an unsubscribed, bounced or complained address is never
    made active again.
    """
    from digest import subscribers

    known = site_categories(app.settings)
    with store_of(app) as store:
        plan = subscribers.import_file(store, file, known, dry_run=dry_run)
    for warning in plan.warnings:
        click.echo(f"Warning: {warning}", err=True)
    for problem in plan.bad:
        click.echo(f"Skipped {problem}", err=True)
    for problem in plan.refused:
        click.echo(f"Refused {problem}", err=True)
    warn_unknown_categories(plan.unknown_categories)
    click.echo(f"{file.name}: {plan.summary()}{' (dry run: nothing written)' if dry_run else ''}")


@subscribers_group.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only subscribers with this status.")
@click.option("--category", help="Only those who get this category (chose it, or chose none).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def subscribers_list(app: App, status: str | None, category: str | None, as_json: bool) -> None:
    """List subscribers, ordered by address."""
    from digest import subscriber_files, subscribers

    with store_of(app) as store:
        found = subscribers.matching(store.subscribers(), status, category)
    if as_json:
        click.echo(json.dumps(subscriber_files.as_dicts(found), indent=2, ensure_ascii=False))
        return
    for line in subscriber_table(found):
        click.echo(line)


@subscribers_group.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True, help="CSV, or JSON in the original site's format.")
@pass_app
def subscribers_export(app: App, fmt: str) -> None:
    """Print every subscriber, in every status, in a form `import` reads back."""
    from digest import subscriber_files

    with store_of(app) as store:
        everyone = store.subscribers()
    write = subscriber_files.to_csv if fmt == "csv" else subscriber_files.to_site_json
    click.echo(write(everyone), nl=False)


@subscribers_group.command("prune")
@click.option("--older-than", "days", type=click.IntRange(1, 36500), default=30,
              show_default=True,
              metavar="DAYS", help="Forget sign-ups left unconfirmed this many days.")
@pass_app
def subscribers_prune(app: App, days: int) -> None:
    """Forget sign-ups nobody confirmed: their addresses were never given consent.

    Counted from the first sign-up (asking again does not renew it); a confirmation
    link lasts 7 days. Run it from cron beside the weekly job.
    """
    with store_of(app) as store:
        forgotten = store.forget_unconfirmed(store.now() - timedelta(days=days))
    click.echo(f"Forgot {len(forgotten)} {plural(len(forgotten), 'sign-up')} left "
               f"unconfirmed for over {days} {plural(days, 'day')}")


@subscribers_group.command("remove")
@click.argument("email")
@pass_app
def subscribers_remove(app: App, email: str) -> None:
    """Forget EMAIL: its name, categories and history, overwritten on disk.

    Past issues keep their counts, with no trace of who. Nothing remembers the address
    afterwards, so a later import could add it again: to stop mail and keep the opt-out,
    use `unsubscribe`.
    """
    with store_of(app) as store:
        if not store.remove(email):
            raise DigestError(f"no subscriber {email}")
    click.echo(f"Removed {email} and its history (past issues keep their counts)")


@subscribers_group.command("unsubscribe")
@click.argument("email_or_token", metavar="EMAIL|TOKEN")
@pass_app
def subscribers_unsubscribe(app: App, email_or_token: str) -> None:
    """Unsubscribe an address, or the reader an unsubscribe link's TOKEN was made for."""
    from digest import subscribers

    with store_of(app) as store:
        subscriber, changed = subscribers.unsubscribe(store, email_or_token)
    if changed:
        click.echo(f"Unsubscribed {subscriber.email}")
    else:
        click.echo(f"{subscriber.email} is already {subscriber.status}; nothing changed")


def store_of(app: App) -> Store:
    return open_store(app.settings.store_path)


def site_categories(settings: Settings) -> list[str] | None:
    """The categories the articles use; None, with a warning, if they cannot be loaded."""
    from digest import pipeline

    try:
        loaded = pipeline.load(settings)
    except DigestError as exc:
        click.echo(f"Warning: categories not checked: {exc}", err=True)
        return None
    return sorted({article.category for article in loaded.articles})


def warn_unknown_categories(unknown: Sequence[tuple[str, int]]) -> None:
    for name, count in unknown:
        click.echo(f"Warning: no article uses the category {name!r} "
                   f"({count} {plural(count, 'subscriber')})", err=True)


def added_message(added: subscribers.Added) -> str:
    s = added.subscriber
    if added.action == "added":
        chosen = ", ".join(s.categories) if s.categories else "all categories"
        return f"Added {s.email} ({s.cadence}, {chosen})"
    if added.action == "activated":
        return f"Activated {s.email} (it was pending)"
    if added.action == "updated":
        return f"Updated {s.email}: {', '.join(added.changed)}"
    return f"{s.email} is already subscribed; nothing changed"


def subscriber_table(found: Sequence[Subscriber]) -> list[str]:
    """Aligned columns, the categories last; then the count."""
    rows = [("EMAIL", "NAME", "STATUS", "CADENCE", "CATEGORIES")] + [
        (s.email, s.name, s.status, s.cadence, ", ".join(s.categories) or "(all)")
        for s in found
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]])
             for row in rows] if found else []
    return [*lines, f"{len(found)} {plural(len(found), 'subscriber')}"]


cli.add_command(db_group)


def main() -> None:
    cli(prog_name="digest")

