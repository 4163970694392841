"""The send run, called as a library: plan, gate, freeze, deliver, resume, unknowns, the
lock and test copies (test_send.py keeps the CLI's wording and exit codes)."""

from datetime import date, datetime
from pathlib import Path

import pytest
from send_support import API_KEY, add_readers, ledger_counts, set_send_environment, write_site
from sendgrid_server import SendGridServer

from digest import runs
from digest.config import load_settings
from digest.errors import DeliveryError, DigestError
from digest.ledger import Ledger
from digest.runlock import run_lock
from digest.store import NewSubscriber, open_store

SUNDAY = datetime.fromisoformat("2026-11-29T08:00+01:00")


@pytest.fixture
def env(monkeypatch):
    set_send_environment(monkeypatch)


class Heard:
    """A Talk that records what the run said, and answers confirmations."""

    def __init__(self, answer: bool = True) -> None:
        self.lines: list[tuple[str, bool]] = []
        self.questions: list[str] = []
        self.plans: list[str] = []
        self.answer = answer

    def talk(self) -> runs.Talk:
        return runs.Talk(echo=self.echo, confirm=self.confirm,
                         show_plan=lambda key, plan: self.plans.append(key))

    def echo(self, message: str, *, err: bool = False) -> None:
        self.lines.append((message, err))

    def confirm(self, question: str) -> bool:
        self.questions.append(question)
        return self.answer

    @property
    def out(self) -> list[str]:
        return [line for line, err in self.lines if not err]


def site(tmp_path, url="http://127.0.0.1:9", extra="", readers=6, segments=6):
    settings = load_settings(write_site(tmp_path, url, extra))
    emails = add_readers(tmp_path, readers, segments) if readers else []
    return settings, emails


def test_plan_freeze_deliver_step_by_step(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        settings, emails = site(tmp_path, server.url)
        with runs.open_run(settings, "weekly") as run:
            run.prepare()
            window = run.window("weekly", SUNDAY)
            plan = run.plan("2026-W48", window, "weekly")
            assert plan is not None and plan.recipients == 6
            assert run.ledger.issue("2026-W48") is None  # planning records nothing
            run.freeze("2026-W48", "weekly", window, plan)
            plan.close()
            assert ledger_counts(tmp_path)["pending"] == 6
            summary = run.deliver("2026-W48")
        assert summary is not None and (summary.accepted, summary.ok) == (6, True)
        assert server.accepted_count_by_address() == dict.fromkeys(emails, 1)


def test_a_frozen_plan_is_completed_not_replanned(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        settings, emails = site(tmp_path, server.url, segments=1)
        server.script(*[503] * 5)  # the only batch fails
        first = runs.send_cadence(settings, "weekly", SUNDAY)
        assert first is not None and (first.failed, first.ok) == (6, False)
        heard = Heard()
        second = runs.send_cadence(settings, "weekly", SUNDAY, talk=heard.talk())
        assert second is not None and (second.accepted, second.ok) == (6, True)
        assert heard.plans == []  # completed, not planned again
        assert heard.out[0] == ("Issue 2026-W48 is planned: 6 recipients, 0 accepted, "
                                "6 failed, 0 unknown, 0 not sent yet.")
        assert server.accepted_count_by_address() == dict.fromkeys(emails, 1)


def test_an_unknown_batch_is_left_alone_unless_resent(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        settings, _ = site(tmp_path, server.url, segments=1)
        settings = settings.override("sendgrid.timeout", 1)
        server.set_delay(3)
        first = runs.send_cadence(settings, "weekly", SUNDAY)
        assert first is not None and first.unknown == 6
        server.set_delay(0)
        again = runs.send_cadence(settings, "weekly", SUNDAY)
        assert again is not None and (again.unknown, again.accepted) == (6, 0)
        assert len(server.accepted) == 1
        resent = runs.send_cadence(settings, "weekly", SUNDAY,
                                   runs.Options(resend_unknown=True))
        assert resent is not None and (resent.accepted, resent.ok) == (6, True)


def test_the_gate_refuses_error_findings_before_anything_is_frozen(tmp_path, env):
    settings, _ = site(tmp_path, readers=1, segments=1)
    (tmp_path / "templates").mkdir()
    template = Path(__file__).parent.parent / "templates" / "email.mjml.j2"
    (tmp_path / "templates" / "email.mjml.j2").write_text(
        template.read_text().replace('<a href="{{ article.url }}">', '<a href="/relative">'))
    with pytest.raises(DeliveryError, match="not sending: 1 error-level quality problem"):
        runs.send_cadence(settings, "weekly", SUNDAY, runs.Options(dry_run=True))
    with open_store(tmp_path / "digest.db") as store:
        assert Ledger(store).issues() == []


def test_a_second_run_under_the_same_lock_is_refused(tmp_path, env):
    settings, _ = site(tmp_path)
    with run_lock(tmp_path / "digest.db.weekly.lock"), \
            pytest.raises(DeliveryError, match="another run is sending"):
        runs.send_cadence(settings, "weekly", SUNDAY)


def test_declining_freezes_nothing(tmp_path, env):
    settings, _ = site(tmp_path)
    heard = Heard(answer=False)
    summary = runs.send_window(settings, date(2026, 11, 22), date(2026, 11, 28), "weekly",
                               runs.Options(ask=True), heard.talk())
    assert summary is None
    assert heard.questions == ["Send 2026-11-22..2026-11-28 to 6 recipients?"]
    with open_store(tmp_path / "digest.db") as store:
        assert Ledger(store).issues() == []


@pytest.mark.parametrize("cadence", ["weekly", "daily"])
def test_no_active_readers_freezes_nothing_so_a_later_reader_gets_the_issue(
        tmp_path, env, cadence):
    with SendGridServer(api_key=API_KEY) as server:
        settings, _ = site(tmp_path, server.url, readers=0)
        now = SUNDAY if cadence == "weekly" else datetime.fromisoformat(
            "2026-11-27T12:00+01:00")
        heard = Heard()
        assert runs.send_cadence(settings, cadence, now, talk=heard.talk()) is None
        assert heard.out == [f"No active {cadence} subscribers: nothing to send"]
        with open_store(tmp_path / "digest.db") as store:
            assert Ledger(store).issues() == []
            store.insert([NewSubscriber("late@example.com", cadence=cadence)], "cli")
        later = runs.send_cadence(settings, cadence, now)
        assert later is not None and later.accepted == 1
        assert server.accepted_count_by_address() == {"late@example.com": 1}


def test_complete_issue_names_a_missing_issue(tmp_path, env):
    settings, _ = site(tmp_path)
    with pytest.raises(DigestError, match=r"^no issue 2026-W99 in the ledger \(see: digest "
                                          r"issues\)$"):
        runs.complete_issue(settings, "2026-W99")


def test_after_send_runs_once_and_only_after_a_complete_send(tmp_path, env, monkeypatch):
    called = []
    monkeypatch.setattr(runs.SendRun, "after_send",
                        lambda self, key, summary: called.append((key, summary.accepted)))
    with SendGridServer(api_key=API_KEY) as server:
        settings, _ = site(tmp_path, server.url, segments=1)
        server.script(*[503] * 5)
        runs.send_cadence(settings, "weekly", SUNDAY)
        assert called == []
        runs.send_cadence(settings, "weekly", SUNDAY)
    assert called == [("2026-W48", 6)]


def test_a_test_copy_is_sent_to_the_given_address_only(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        settings, _ = site(tmp_path, server.url)
        outcome = runs.send_test_copy(settings, ("editor@example.com",),
                                      days=(date(2026, 11, 22), date(2026, 11, 28)))
        assert outcome is not None and outcome.status == "accepted"
        assert server.accepted_count_by_address() == {"editor@example.com": 1}
        assert server.accepted[0].body["subject"].startswith("[TEST] ")
    with open_store(tmp_path / "digest.db") as store:
        assert Ledger(store).issues() == []


def test_a_dry_run_needs_no_key_and_records_nothing(tmp_path, env, monkeypatch):
    monkeypatch.delenv("SENDGRID_API_KEY")
    settings, _ = site(tmp_path)
    heard = Heard()
    assert runs.send_cadence(settings, "weekly", SUNDAY, runs.Options(dry_run=True),
                             heard.talk()) is None
    assert heard.plans == ["2026-W48"]
    assert heard.out[-1] == "Dry run: nothing sent, nothing recorded."


# What a run sends (moved from test_send.py: the library, not the CLI)


def test_asm_group_replaces_own_unsubscribe_headers(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        settings, _ = site(tmp_path, server.url, "asm_group_id = 4242\n")
        assert runs.send_cadence(settings, "weekly", SUNDAY).ok
        body = server.accepted[0].body
    assert body["asm"] == {"group_id": 4242}
    assert "headers" not in body["personalizations"][0]


def test_under_30_percent_faults_everyone_gets_exactly_one(tmp_path, env):
    with SendGridServer(api_key=API_KEY, fault_rate=0.3, seed=7) as server:
        settings, emails = site(tmp_path, server.url, readers=60)
        for _ in range(5):  # reruns complete what retries could not
            summary = runs.send_cadence(settings, "weekly", SUNDAY)
            if summary is None or summary.ok:
                break
        assert server.accepted_count_by_address() == dict.fromkeys(emails, 1)
        assert any(status >= 429 for status in server.statuses)
    assert ledger_counts(tmp_path)["accepted"] == 60


def test_files_transport_writes_what_each_reader_gets(tmp_path, env):
    settings, emails = site(tmp_path, extra='[delivery]\ntransport = "files"\n'
                            'files_dir = "out"\n', readers=4, segments=2)
    assert runs.send_cadence(settings, "weekly", SUNDAY).ok
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(written) == 4
    assert all(any(e in name for e in emails) for name in written)
    raw = (tmp_path / "out" / written[0]).read_bytes()
    assert b"List-Unsubscribe: <https://send.example.org/unsubscribe/" in raw
    assert b"-unsubscribe_url-" not in raw


def test_daily_sends_the_day_to_daily_readers_only(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        settings, weekly = site(tmp_path, server.url, readers=2)
        with open_store(tmp_path / "digest.db") as store:
            store.insert([NewSubscriber("day@example.com", cadence="daily")], "cli")
        friday = datetime.fromisoformat("2026-11-27T12:00+01:00")
        assert runs.send_cadence(settings, "daily", friday).ok
        assert server.accepted_count_by_address() == {"day@example.com": 1}
        assert set(weekly).isdisjoint(server.accepted_count_by_address())
        assert server.accepted[0].body["categories"] == ["digest", "2026-11-27"]
        text = server.accepted[0].body["content"][0]["value"]
        assert "A Culture story" in text  # the 27th, 10:00
        assert "A Health story" not in text  # the 26th, 10:00: before the day's window
        assert "1 article today." in text


def test_a_manual_issue_for_daily_readers_is_not_the_weekly_one(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        settings, weekly = site(tmp_path, server.url, readers=2)
        with open_store(tmp_path / "digest.db") as store:
            store.insert([NewSubscriber("day@example.com", cadence="daily")], "cli")
        days = (date(2026, 11, 22), date(2026, 11, 28))
        assert runs.send_window(settings, *days, "weekly").ok
        heard = Heard()
        assert runs.send_window(settings, *days, "daily", talk=heard.talk()).ok
        assert heard.plans == ["2026-11-22..2026-11-28-daily"]
        assert server.accepted_count_by_address() == {**dict.fromkeys(weekly, 1),
                                                      "day@example.com": 1}


@pytest.mark.parametrize("concurrency", [1, 3])
def test_sendgrid_concurrency_bounds_the_requests_in_flight(tmp_path, env, concurrency):
    with SendGridServer(api_key=API_KEY) as server:
        settings, _ = site(tmp_path, server.url, f"concurrency = {concurrency}\n")
        server.set_delay(0.2)  # six segments: six requests
        assert runs.send_cadence(settings, "weekly", SUNDAY).ok
        assert server.peak_in_flight == concurrency


def test_each_stage_of_a_run_is_timed_in_order(tmp_path, env):
    stages: list[str] = []
    with SendGridServer(api_key=API_KEY) as server:
        settings, _ = site(tmp_path, server.url)
        talk = runs.Talk(stage=lambda name, seconds: stages.append(name) if seconds >= 0
                         else None)
        runs.send_cadence(settings, "weekly", SUNDAY, talk=talk)
        assert stages == ["load", "plan", "freeze", "send"]
        stages.clear()
        runs.send_cadence(settings, "weekly", SUNDAY, talk=talk)  # sent: nothing to time
        assert stages == []
