"""A send run, from the lock to the summary: the library owns it, the CLI only prints
and asks.

`open_run(settings, lock)` takes the run's lock (one run per lock name: weekly, daily,
manual) and opens the store; the `SendRun` it yields checks the ledger, gets ready
(sender, key, secret, then SendGrid's suppression lists), plans, applies the quality
gate, freezes the plan in the ledger and delivers it. `send_cadence`, `send_window`
and `complete_issue` are the three ways `weekly`, `daily` and `send` use it, and
`send_test_copy` is `send --to`.

Whoever starts a run talks to it through `Talk`: `echo(text, err=...)` for each line,
`confirm(question)` before anything is frozen or sent when `Options.ask`,
`show_plan(key, plan)`, `progress(label, total)` for a progress callback, and
`stage(name, seconds)` as each stage of the run ends (load, plan, freeze, send). All of
them default to silence, so tests call the library directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from digest import courier
from digest.config import Settings, sender_problems
from digest.errors import DeliveryError
from digest.ledger import IssueRow, Ledger, planned_batches
from digest.runlock import Echo, quiet
from digest.select import Window, dates_window, in_window, issue_key, manual_key
from digest.store import Cadence, Store, open_store, secret_problem
from digest.transports import Outcome, Transport, transport_for
from digest.words import plural

if TYPE_CHECKING:
    from digest.send import Plan, Summary
    from digest.sync import BeforeSend

# LATE: the renderer's stack (pipeline, send, archive: Jinja2, mjml, premailer, the
# loader) is imported where it is first used, not here, so that a send run starts its
# couriers (ready_to_send) before the half second those imports take, on another core.

Progress = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]


def no_progress(label: str, total: int) -> AbstractContextManager[Callable[[int], None]]:
    return nullcontext(lambda recipients: None)


@dataclass(frozen=True)
class Talk:
    """How a run talks to whoever started it; the CLI passes click's functions."""

    echo: Echo = quiet
    confirm: Callable[[str], bool] = field(default=lambda question: True)
    show_plan: Callable[[str, Plan], None] = field(default=lambda key, plan: None)
    progress: Progress = no_progress
    stage: Callable[[str, float], None] = field(default=lambda name, seconds: None)


@dataclass(frozen=True)
class Options:
    dry_run: bool = False  # plan and check; send and record nothing
    force: bool = False  # send despite error-level quality findings
    resend_unknown: bool = False  # send again the batches whose outcome is unknown
    ask: bool = False  # confirm before freezing a plan or completing an issue


@dataclass(frozen=True)
class Ready:
    """What a real send needs, checked before anything is planned or frozen."""

    transport: Transport
    secret: str
    desk: courier.Couriers | None = None  # the couriers, when they send the requests


WEBHOOK_POLL_S = 1.0  # how often a run waiting for the webhook looks at the ledger
def required_secret(settings: Settings) -> str:
    """The secret unsubscribe links are derived from; missing or too short is an error."""
    secret = settings.text("web.secret_key")
    if problem := secret_problem(secret):
        raise DeliveryError(problem)
    return secret


@contextmanager
def open_run(settings: Settings, lock: str, options: Options = Options(),
             talk: Talk = Talk(), *, store: Store | None = None) -> Iterator[SendRun]:
    """The run holding the lock `lock` (a cadence, or "manual") with its store open.
    A `store` given is used (and left open) instead of opening `store.path`."""
    opening = nullcontext(store) if store is not None else open_store(settings.store_path)
    with opening as opened, opened.run_lock(lock, talk.echo):
        run = SendRun(settings, opened, options, talk)
        with run.resources:
            yield run


class SendRun:
    """One run of weekly, daily or send, under its lock: plan once, send, summarise."""

    def __init__(self, settings: Settings, store: Store, options: Options = Options(),
                 talk: Talk = Talk()) -> None:
        self.settings, self.store, self.ledger = settings, store, Ledger(store)
        self.options, self.talk = options, talk
        self.ready: Ready | None = None
        self.resources = ExitStack()  # what the run holds until it ends: its couriers
        self.sync: BeforeSend | None = None  # the sync before the send, while it runs
        self.sleep: Callable[[float], None] = time.sleep

    # The two flows

    def send(self, key: str, window: Window | None, cadence: Cadence, *,
             now: datetime | None = None, ledger_cadence: str | None = None
             ) -> Summary | None:
        """Plan `key` (in `window`, else from the previous issue to `now`) and send it,
        or complete it if it is planned already. None when nothing was sent."""
        issue = self.ledger.issue(key)
        if self.already_sent(issue):
            return None
        self.prepare(cadence)
        if issue is None:
            if not self.plan_and_freeze(key, window or self.window(cadence, now), cadence,
                                        ledger_cadence or cadence):
                return None
        elif not self.review(key):
            return None
        return self.deliver(key)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Tell `talk.stage` how long `stage` took (when it ends without an error)."""
        started = time.perf_counter()
        yield
        self.talk.stage(stage, time.perf_counter() - started)

    def plan_and_freeze(self, key: str, window: Window, cadence: Cadence,
                        ledger_cadence: str) -> bool:
        """Plan, ask, freeze; whether it was frozen. The plan (every segment's rendered
        email and articles) is let go before the sending starts, which reads what it
        needs back from the ledger."""
        plan = self.plan(key, window, cadence)
        if plan is None:
            return False
        try:
            if not self.approve(key, plan):
                return False
            self.read_ahead(plan)
            with self.timed("freeze"):
                self.freeze(key, ledger_cadence, window, plan)
            return True
        finally:
            plan.close()

    def complete(self, key: str) -> Summary | None:
        """Finish a planned issue."""
        if self.already_sent(self.ledger.require(key)):
            return None
        self.prepare()
        return self.deliver(key) if self.review(key) else None

    # The steps

    def already_sent(self, issue: IssueRow | None) -> bool:
        if issue is None or issue.status != "done":
            return False
        self.talk.echo(f"Issue {issue.key} was sent on {(issue.finished_at or '')[:10]}: "
                       "nothing to do.")
        return True

    def prepare(self, cadence: Cadence | None = None) -> None:
        """Ready to send (a missing sender, postal address, key or secret is an error
        before anything is planned; the sender and address on a dry run too), then
        SendGrid's suppression lists (a failure only warns), so a frozen plan being
        completed also skips who bounced or left since. `cadence`: whose readers the
        run sends to, if known."""
        if problems := sender_problems(self.settings):
            raise DeliveryError("; ".join(problems))
        if self.options.dry_run:
            return
        self.ready = self.ready_to_send(transport_for(self.settings), cadence)
        from digest import sync

        self.sync = sync.start_before_send(self.settings)
        if self.sync is not None:
            self.resources.callback(self.sync.thread.join)  # on any error too

    def synced(self) -> None:
        """Wait for the sync started before the send, once, and say what it did: it reads
        SendGrid's lists while the run imports its renderer, and ends before the run
        loads (a forked load worker needs a run without other threads) or reads anyone."""
        if self.sync is not None:
            pending, self.sync = self.sync, None
            pending.wait(self.talk.echo)

    def ready_to_send(self, transport: Transport, cadence: Cadence | None) -> Ready:
        """The transport and secret, and the courier, if it sends the requests: started
        now, so that it reads the readers (of `cadence`, else all) while the run loads
        and plans."""
        secret = required_secret(self.settings)
        if not courier.wanted(self.settings, transport, self.store.location):
            return Ready(transport, secret)
        workers = self.settings.integer("sendgrid.concurrency")
        return Ready(transport, secret, self.resources.enter_context(courier.started(
            courier.Errand(self.settings, transport, secret, workers, self.store.location,
                           cadence))))

    def window(self, cadence: Cadence, now: datetime | None) -> Window:
        if now is None:
            raise ValueError("a new issue needs a window or the moment it is sent")
        from digest.send import window_for

        return window_for(self.ledger, cadence, now)

    def plan(self, key: str, window: Window, cadence: Cadence) -> Plan | None:
        """The plan (shown through `show_plan`, and past the quality gate), or None, said
        why, when there is nothing to send."""
        from digest import pipeline  # here, not at the top: see LATE
        from digest.send import gate, plan_issue

        self.synced()
        with self.timed("load"):
            loaded = pipeline.load(self.settings, since=window.start)
        for problem in loaded.problems:
            self.talk.echo(f"Warning: {problem} (skipped)", err=True)
        if not any(in_window(article, window) for article in loaded.articles):
            self.talk.echo(f"No articles from {window.start:%Y-%m-%d %H:%M} to "
                           f"{window.end:%Y-%m-%d %H:%M}: nothing to send.")
            return None
        subscribers = self.store.members("active", cadence)
        if not subscribers:
            self.talk.echo(f"No active {cadence} subscribers: nothing to send")
            return None
        with self.timed("plan"):
            plan = plan_issue(loaded.articles, subscribers, cadence=cadence, key=key,
                              window=window, settings=self.settings,
                              renderer=pipeline.renderer_for(self.settings))
        with plan.spool.kept_unless_failed():
            self.talk.show_plan(key, plan)
            gate(plan.findings, self.options.force)
        return plan

    def approve(self, key: str, plan: Plan) -> bool:
        """Whether to freeze the plan: not on a dry run, and when asked, if confirmed."""
        if self.options.dry_run:
            self.talk.echo("Dry run: nothing sent, nothing recorded.")
            return False
        return not self.options.ask or self.talk.confirm(
            f"Send {key} to {plan.recipients} {plural(plan.recipients, 'recipient')}?")

    def read_ahead(self, plan: Plan) -> None:
        """The couriers read the first batches' readers (in the order they are sent) while
        the plan is frozen."""
        if self.ready is not None and self.ready.desk is not None:
            self.ready.desk.read_ahead(planned_batches(plan.segments))

    def freeze(self, key: str, ledger_cadence: str, window: Window, plan: Plan) -> None:
        """Record the plan: from now on the issue is only ever completed, never replanned."""
        self.ledger.create(key, ledger_cadence, window, plan.segments)

    def review(self, key: str) -> bool:
        """Say what is left of a planned issue; whether to go on (asks when asked to)."""
        self.synced()
        counts = self.ledger.counts(key)
        left = self.left_to_send(counts)
        self.talk.echo(f"Issue {key} is planned: {counts['planned']} "
                       f"{plural(counts['planned'], 'recipient')}, "
                       f"{counts['accepted']} accepted, {counts['failed']} failed, "
                       f"{counts['unknown']} unknown, {counts['pending']} not sent yet.")
        return (not self.options.ask or self.options.dry_run or self.talk.confirm(
            f"Send {key} to the {left} {plural(left, 'recipient')} left?"))

    def left_to_send(self, counts: dict[str, int]) -> int:
        """Recipients this run would send to: not sent yet, failed, and with
        resend_unknown those whose outcome is unknown."""
        return counts["pending"] + counts["failed"] + (
            counts["unknown"] if self.options.resend_unknown else 0)

    def deliver(self, key: str) -> Summary | None:
        """Send every batch left; None on a dry run."""
        if self.options.dry_run:
            self.talk.echo(f"Dry run: issue {key} is planned; nothing sent.")
            return None
        if self.ready is None:
            raise ValueError("deliver() before prepare()")
        from digest import archive
        from digest.send import Sender

        # The archive page the emails' "View in browser" links point to exists before the
        # first email goes out (a folder that cannot be written stops the run here).
        if published := archive.publish_page(self.settings, self.store, key):
            self.talk.echo(f"Archive page of {key}: {published.out / published.page(key)}")
        sender = Sender(self.store, self.ready.transport, self.settings, self.ready.secret,
                        workers=self.settings.integer("sendgrid.concurrency"),
                        desk=self.ready.desk)
        self.await_webhook(key)
        counts = self.ledger.counts(key)
        with self.talk.progress(f"Sending {key}", self.left_to_send(counts)) as update, \
                self.timed("send"):
            sender.progress = update
            summary = sender.run(key, resend_unknown=self.options.resend_unknown)
        summary.skipped = counts["skipped"]
        if summary.ok:
            self.after_send(key, summary)
        return summary

    def await_webhook(self, key: str) -> None:
        """With SendGrid's event webhook configured, give it until each unknown batch is
        `sendgrid.webhook_grace` seconds old to resolve it (its events mark the batch
        accepted), so the run then reports only what is still unknown."""
        if not self.settings.text("sendgrid.webhook_public_key") or \
                self.options.resend_unknown:
            return
        grace = timedelta(seconds=self.settings.integer("sendgrid.webhook_grace"))
        unknown = [b for b in self.ledger.batches(key) if b.unknown]
        if not unknown:
            return
        until = max(datetime.fromisoformat(b.sent_at or "1970-01-01T00:00+00:00")
                    for b in unknown) + grace
        wait = (until - self.store.now()).total_seconds()
        if wait <= 0:
            return
        self.talk.echo(f"Waiting up to {wait:.0f} s for SendGrid's events about "
                       f"{len(unknown)} unknown {plural(len(unknown), 'batch', 'batches')} "
                       "(sendgrid.webhook_grace)", err=True)
        while self.store.now() < until and any(b.unknown for b in self.ledger.batches(key)):
            self.sleep(max(0.0, min(WEBHOOK_POLL_S, (until - self.store.now()).total_seconds())))

    def after_send(self, key: str, summary: Summary) -> None:
        """The one place that runs after a successful send (every batch accepted): the
        archive's page, index and feed are written again; a failure there only warns, and
        `digest archive` can be run again."""
        from digest import archive

        if warning := archive.publish_after_send(self.settings, self.store, key):
            self.talk.echo(f"Warning: {warning}", err=True)


# The commands' entry points


def send_cadence(settings: Settings, cadence: Cadence, now: datetime | None,
                 options: Options = Options(), talk: Talk = Talk()) -> Summary | None:
    """`weekly` or `daily`: this period's issue, planned once, safe to run again."""
    tz = settings.timezone
    moment = now or datetime.now(tz)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=tz)
    with open_run(settings, cadence, options, talk) as run:
        return run.send(issue_key(cadence, moment, tz), None, cadence, now=moment)


def send_window(settings: Settings, since: date, until: date, cadence: Cadence,
                options: Options = Options(), talk: Talk = Talk()) -> Summary | None:
    """`send --since --until`: a manual issue of whole days, under the manual lock."""
    window = dates_window(since, until, settings.timezone)
    with open_run(settings, "manual", options, talk) as run:
        return run.send(manual_key(since, until, cadence), window, cadence,
                        ledger_cadence="manual")


def complete_issue(settings: Settings, key: str, options: Options = Options(),
                   talk: Talk = Talk()) -> Summary | None:
    """`send --issue`: finish a planned issue, under the lock of the cadence it was
    planned for, so that it and the run that planned it never send at the same time."""
    with open_store(settings.store_path) as store:
        lock = Ledger(store).require(key).cadence
    with open_run(settings, lock, options, talk) as run:
        return run.complete(key)


def send_test_copy(settings: Settings, to: tuple[str, ...], *, key: str | None = None,
                   days: tuple[date, date] | None = None, force: bool = False,
                   dry_run: bool = False, echo: Echo = quiet) -> Outcome | None:
    """The whole issue `key` (planned) or of `days`, subject marked [TEST], to `to`
    only; no ledger. None on a dry run; a refused copy is a DeliveryError."""
    from digest import pipeline
    from digest.send import gate, test_message

    key, window = test_copy_window(settings, key, days)
    loaded = pipeline.load(settings, since=window.start)
    for problem in loaded.problems:
        echo(f"Warning: {problem} (skipped)", err=True)
    link = settings.unsubscribe_url("test-copy")
    renderer = pipeline.renderer_for(settings)
    built = pipeline.build_issue(loaded.articles, key=key, window=window, settings=settings,
                                 renderer=renderer, unsubscribe_url=link)
    findings = pipeline.quality_of(built, link, language=renderer.language,
                                   theme=settings.theme)
    for finding in findings:
        echo(f"{finding.level.capitalize()}: {finding.message}", err=True)
    gate([("test", finding) for finding in findings], force)
    if dry_run:
        echo(f"Dry run: the [TEST] copy of {key} to {', '.join(to)} was not sent.")
        return None
    outcome = transport_for(settings).send(test_message(settings, built, key, to))
    if outcome.status != "accepted":
        raise DeliveryError(f"the test copy was not sent: {outcome.reason}")
    echo(f"Sent a [TEST] copy of {key} to {', '.join(to)} ({outcome.message_id}).")
    return outcome


def test_copy_window(settings: Settings, key: str | None,
                     days: tuple[date, date] | None) -> tuple[str, Window]:
    if key is not None:
        with open_store(settings.store_path) as store:
            return key, Ledger(store).require(key).window
    if days is None:
        raise ValueError("a test copy needs an issue key or days")
    return manual_key(*days), dates_window(*days, settings.timezone)
