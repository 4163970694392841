"""A plan's emails wait in a spool file until frozen: memory holds one at a time, and
what is frozen is what was rendered."""

import multiprocessing
from datetime import datetime

import pytest
from send_support import add_readers, set_send_environment, write_site

from digest import pipeline, runs
from digest.config import load_settings
from digest.render import PREFERENCES_TAG, UNSUBSCRIBE_TAG, Email
from digest.spool import Spool, SpooledEmail

SUNDAY = datetime.fromisoformat("2026-11-29T08:00+01:00")


def test_a_spooled_email_reads_back_as_written():
    email = Email("Grüße ✉", "pre", "<p>Ünïcode — ok</p>" * 50, "text ✓\n" * 30)
    with Spool() as spool:
        first, second = spool.put(email), spool.put(Email("b", "", "<b>x</b>", "y"))
        assert (first.subject, first.html, first.text) == (email.subject, email.html,
                                                            email.text)
        assert first.size == email.size
        assert (second.html, second.text, first.html) == ("<b>x</b>", "y", email.html)
    with pytest.raises(ValueError):
        first.html  # noqa: B018 (read after the plan let it go)


def test_a_plan_holds_its_emails_in_its_spool_and_freezes_them_as_rendered(
        tmp_path, monkeypatch):
    set_send_environment(monkeypatch)
    settings = load_settings(write_site(tmp_path, "http://127.0.0.1:9"))
    add_readers(tmp_path, 12, 6)
    with runs.open_run(settings, "weekly") as run:
        window = run.window("weekly", SUNDAY)
        plan = run.plan("2026-W48", window, "weekly")
        assert plan is not None
        emails = [s.email for s in plan.segments if s.email is not None]
        assert len(emails) == 6 and all(isinstance(e, SpooledEmail) for e in emails)
        run.freeze("2026-W48", "weekly", window, plan)
        plan.close()
        frozen = {slug: email for slug, _, _, email in run.ledger.segments("2026-W48")}
        builds = list(pipeline.each_segment(
            run.store.members("active", "weekly"), pipeline.load(settings).articles,
            cadence="weekly", key="2026-W48", window=window, settings=settings,
            renderer=pipeline.renderer_for(settings), unsubscribe_url=UNSUBSCRIBE_TAG,
            preferences_url=PREFERENCES_TAG))
    rendered = {b.segment.slug: b.built.email for b in builds if b.built}
    assert {slug: (e.subject, e.html, e.text) for slug, e in frozen.items() if e} == {
        slug: (e.subject, e.html, e.text) for slug, e in rendered.items()}


def test_a_plan_that_fails_midway_leaves_no_render_worker_and_no_spool(tmp_path, monkeypatch):
    set_send_environment(monkeypatch)
    settings = load_settings(write_site(tmp_path, "http://127.0.0.1:9"))
    add_readers(tmp_path, 12, 6)
    monkeypatch.setattr(pipeline, "PARALLEL_RENDER_FROM", 2)  # render in the pool
    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: 2)
    spools: list[Spool] = []
    put = Spool.put

    def full_disk(spool: Spool, email: Email) -> SpooledEmail:
        spools.append(spool)
        if len(spools) == 3:
            raise OSError(28, "No space left on device")
        return put(spool, email)

    monkeypatch.setattr(Spool, "put", full_disk)
    with runs.open_run(settings, "weekly") as run, pytest.raises(OSError) as failed:
        run.plan("2026-W48", run.window("weekly", SUNDAY), "weekly")
    assert multiprocessing.active_children() == []
    assert spools[0].file.closed
    del failed
