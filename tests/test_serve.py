"""The live preview server over real HTTP on 127.0.0.1: renders, re-renders on a change,
shows errors without dying, and listens on nothing but 127.0.0.1."""

import html
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.config import load_settings
from digest.errors import DigestError
from digest.pipeline import build_preview, load
from digest.serve import LiveSite, Period, PreviewServer, make_server, plan_site
from digest.store import NewSubscriber, open_store

REPO = Path(__file__).resolve().parent.parent
KEY = "2026-11-22..2026-11-28"
SUBJECT = "Field Notes: 7 new articles in General AI and Work"
WAIT_S = 5
REFUSED = ("digest serve listens on 127.0.0.1 only, not 0.0.0.0: "
           "the previews are for this machine")


def sample_site(root: Path) -> Path:
    shutil.copytree(REPO / "content", root / "content")
    shutil.copy(REPO / "digest.toml", root / "digest.toml")
    return root / "digest.toml"


def get(url: str, host: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def new_version(url: str, old: str, stem: str = "") -> str:
    """Poll /version (of variant `stem`) until it differs from `old`; fail after WAIT_S
    seconds."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        version = get(f"{url}version?variant={quote(stem)}")[2]
        if version != old:
            return version
        time.sleep(0.05)
    pytest.fail(f"/version still {old} after {WAIT_S} s")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return sample_site(tmp_path)


@pytest.fixture
def running(site: Path) -> Iterator[PreviewServer]:
    """The server for the sample site, running in a thread."""
    server, _ = make_server(load_settings(site), "127.0.0.1", 0, config=site)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=WAIT_S)


@pytest.fixture
def served(running: PreviewServer) -> str:
    """The running server's URL."""
    return running.url


def write_template(site: Path, name: str, text: str) -> None:
    (site.parent / "templates").mkdir(exist_ok=True)
    (site.parent / "templates" / name).write_text(text, encoding="utf-8")


def test_the_index_shows_the_issue_its_checks_and_its_text(served):
    status, content_type, page = get(served)
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    assert f"<h1>Previews of {KEY}</h1>" in page
    assert f"<h2>(whole issue): {SUBJECT}</h2>" in page
    assert f'<iframe src="/email/{KEY}.html"' in page
    assert "<p>No problems found.</p>" in page
    text = get(f"{served}email/{KEY}.txt")[2]
    assert text.startswith("Field Notes") and f"<pre>{text}</pre>" in html.unescape(page)
    assert f'asked = "/version?variant={KEY}";' in page
    assert "fetch(asked, {cache: \"no-store\"})" in page


def test_the_emails_and_the_version_are_served_raw(served):
    status, content_type, email = get(f"{served}email/{KEY}.html")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    assert email.startswith("<!doctype html>") and f"<title>{SUBJECT}</title>" in email
    assert get(f"{served}email/{KEY}.txt")[:2] == (200, "text/plain; charset=utf-8")
    assert re.fullmatch(r"[0-9a-f]{12}", get(f"{served}version")[2])
    assert get(f"{served}email/{KEY}.pdf") == (
        404, "text/plain; charset=utf-8", f"no email {KEY}.pdf in this render\n")
    assert get(f"{served}nothing")[0] == 404


def test_the_desktop_view_is_a_1280_px_frame_at_half_size(served):
    page = get(f"{served}?view=desktop")[2]
    assert '<div class="frame desktop">' in page
    assert ".desktop iframe { width: 1280px;" in page
    assert "<strong>Desktop (1280 px, at half size)</strong>" in page


def test_a_template_change_is_served_with_a_new_version(served, site):
    version = get(f"{served}version")[2]
    write_template(site, "subject.txt.j2", "Hot off the <press>: {{ issue.key }}")
    assert new_version(served, version) != version
    page = get(served)[2]
    assert f"<h2>(whole issue): Hot off the &lt;press&gt;: {KEY}</h2>" in page
    assert f"<title>Hot off the &lt;press&gt;: {KEY}</title>" in get(f"{served}email/{KEY}.html")[2]


def test_a_broken_template_shows_the_error_and_a_fix_brings_the_issue_back(served, site):
    version = get(f"{served}version")[2]
    write_template(site, "subject.txt.j2", "{% if %}")
    version = new_version(served, version)
    status, _, page = get(served)
    assert status == 200
    assert (f'<pre class="error">{site.parent}/templates/subject.txt.j2:1: '
            "Expected an expression, got &#39;end of statement block&#39;</pre>") in page
    assert get(f"{served}email/{KEY}.html")[0] == 404
    write_template(site, "subject.txt.j2", "Fixed {{ issue.key }}")
    new_version(served, version)
    assert f"<h2>(whole issue): Fixed {KEY}</h2>" in get(served)[2]


def test_an_error_raised_while_rendering_names_the_template_line(served, site):
    version = get(f"{served}version")[2]
    write_template(site, "subject.txt.j2", "{{ isue.key }}")
    new_version(served, version)
    assert (f'<pre class="error">{site.parent}/templates/subject.txt.j2:1: '
            "&#39;isue&#39; is undefined</pre>") in get(served)[2]


def test_the_config_file_is_read_again_when_it_changes(served, site):
    version = get(f"{served}version")[2]
    config = site.read_text()
    site.write_text(config.replace('name = "Field Notes"', 'name = "Loose Leaves"'))
    version = new_version(served, version)
    assert "<h2>(whole issue): Loose Leaves: 7 new articles" in get(served)[2]
    site.write_text(config.replace("[site]", "[site]\ncolour = 1"))
    new_version(served, version)
    assert f'<pre class="error">{site}: unknown key &#39;site.colour&#39;</pre>' in get(served)[2]


def test_each_segment_of_the_store_is_a_variant_and_new_readers_show_up(served, site):
    version = get(f"{served}version")[2]
    add_readers(site.parent / "digest.db", ("a@example.com", ("Work",)))
    version = new_version(served, version)
    assert f'<a href="/?variant={KEY}--work&amp;view=mobile">work</a>' in get(served)[2]
    add_readers(site.parent / "digest.db", ("b@example.com", ("Gardening",)))
    new_version(served, version)
    page = get(f"{served}?variant={KEY}--work")[2]
    assert "<td>gardening</td><td>Gardening</td>" in page
    assert f'<iframe src="/email/{KEY}--work.html"' in page
    assert "== Work ==" in get(f"{served}email/{KEY}--work.txt")[2]


def add_readers(db: Path, *readers: tuple[str, tuple[str, ...]], cadence: str = "weekly"
                ) -> None:
    with open_store(db) as store:
        store.insert([NewSubscriber(email=email, name="", categories=cats, cadence=cadence,
                                    status="active") for email, cats in readers], "test")


@pytest.fixture
def segments(site: Path) -> list[str]:
    """Readers of Work, of General AI, of both, and of Gardening (nothing this week)."""
    add_readers(site.parent / "digest.db", ("a@example.com", ("Work",)),
                ("b@example.com", ("General AI",)), ("c@example.com", ("General AI", "Work")),
                ("d@example.com", ("Gardening",)))
    return [f"{KEY}--{slug}" for slug in ("general-ai", "work", "general-ai_work")]


def test_the_listing_renders_only_the_variant_shown(running, segments):
    page = get(running.url)[2]
    assert running.live.renders == [KEY]
    assert (f'<a href="/?variant={KEY}--work&amp;view=mobile">work</a></td><td>Work</td>\n'
            '<td class="n">1</td>\n<td class="n">1</td><td></td>\n'
            "<td>rendered when opened</td><td></td></tr>") in page
    assert "<td>gardening</td><td>Gardening</td>" in page


def test_a_template_save_renders_the_variant_on_screen_alone(running, segments, site):
    work = segments[1]
    page = get(f"{running.url}?variant={work}")[2]
    version = re.search(r'const version = "(\w+)"', page)[1]
    assert f'asked = "/version?variant={work}";' in page
    assert get(f"{running.url}version?variant={work}")[2] == version
    before = len(running.live.renders)
    write_template(site, "subject.txt.j2", "Saved {{ issue.key }}")
    new_version(running.url, version, work)
    assert running.live.renders[before:] == [work]
    assert f"<title>Saved {KEY}</title>" in get(f"{running.url}email/{work}.html")[2]
    assert running.live.renders[before:] == [work]


def test_a_variant_not_on_screen_renders_when_asked_for_once(running, segments):
    get(running.url)
    both = segments[2]
    assert get(f"{running.url}email/{both}.txt")[2].startswith("Field Notes")
    page = get(running.url)[2]
    assert running.live.renders == [KEY, both]
    assert "<td>Field Notes: 7 new articles in General AI and Work</td><td>OK</td>" in page
    assert get(f"{running.url}email/{KEY}--gardening.html")[0] == 404
    assert get(f"{running.url}email/{KEY}--nobody.html")[0] == 404
    assert running.live.renders == [KEY, both]


def test_each_variant_is_rendered_as_digest_preview_renders_it(site, segments):
    settings = load_settings(site)
    live = LiveSite(settings, config=site)
    shown = build_preview(settings, load(settings).articles)
    builds = {KEY: (shown.whole, shown.findings),
              **{f"{KEY}--{item.segment.slug}": (item.built, item.findings)
                 for item in shown.segments if item.built}}
    served = {stem: (live.view(stem).rendered.built, live.view(stem).rendered.findings)
              for stem in builds}
    assert served == builds and len(builds) == 4


def test_an_error_in_one_variant_shows_on_its_page(served, segments, site):
    write_template(site, "subject.txt.j2",
                   "{% if issue.sections|length == 1 %}{{ isue.key }}{% endif %}x")
    page = get(f"{served}?variant={segments[1]}")[2]
    assert (f'<pre class="error">{site.parent}/templates/subject.txt.j2:1: '
            "&#39;isue&#39; is undefined</pre>") in page
    assert "<td>render error</td>" in page
    assert 'class="error"' not in get(served)[2]


def test_the_cadence_chooses_whose_segments_are_shown(site):
    add_readers(site.parent / "digest.db", ("w@example.com", ("Work",)))
    add_readers(site.parent / "digest.db", ("d@example.com", ("Research",)), cadence="daily")
    stems = {cadence: [v.stem for v in plan_site(load_settings(site),
                                                   period=Period(cadence=cadence)).variants]
             for cadence in ("weekly", "daily")}
    assert stems == {"weekly": [KEY, f"{KEY}--work"], "daily": [KEY, f"{KEY}--research"]}


@pytest.mark.browser
def test_the_page_reloads_itself_in_a_browser_when_a_template_changes(browser, served, site):
    page = browser.new_page()
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(served)
               else route.abort())  # the email's remote images are never fetched
    page.goto(served)
    assert page.text_content("h2") == f"(whole issue): {SUBJECT}"
    write_template(site, "subject.txt.j2", "Reloaded {{ issue.key }}")
    page.wait_for_function("document.querySelector('h2').textContent.includes('Reloaded')",
                           timeout=WAIT_S * 1000)
    assert page.text_content("h2") == f"(whole issue): Reloaded {KEY}"
    page.close()


def test_a_request_naming_another_host_is_refused(served):
    assert get(served, host="attacker.example:80") == (
        403, "text/plain; charset=utf-8", "digest serve answers local pages only\n")


def test_only_127_0_0_1_is_served(site):
    with pytest.raises(DigestError) as caught:
        make_server(load_settings(site), "0.0.0.0", 0)
    assert str(caught.value) == REFUSED


def test_a_port_in_use_is_an_error(site):
    server, _ = make_server(load_settings(site), "127.0.0.1", 0)
    with server, pytest.raises(DigestError) as caught:
        make_server(load_settings(site), "127.0.0.1", server.server_port)
    assert str(caught.value) == (
        f"cannot listen on 127.0.0.1:{server.server_port}: Address already in use")


@pytest.mark.parametrize(("period", "key"), [
    (Period(now=datetime(2026, 11, 29, 8, 0)), "2026-W48"),
    (Period(since=date(2026, 11, 1), until=date(2026, 11, 7)), "2026-11-01..2026-11-07"),
])
def test_the_window_is_chosen_as_preview_chooses_it(site, period, key):
    snapshot = plan_site(load_settings(site), period=period)
    assert (snapshot.error, snapshot.key, snapshot.variants[0].stem) == (None, key, key)


def test_digest_serve_checks_the_window_before_serving(site):
    result = CliRunner().invoke(cli, ["--config", str(site), "serve", "--since", "2026-11-07",
                                      "--until", "2026-11-01"])
    assert result.exit_code == 2
    assert result.output.endswith("Error: --until 2026-11-01 is before --since 2026-11-07\n")


def test_digest_serve_refuses_another_host(site):
    result = CliRunner().invoke(cli, ["--config", str(site), "serve", "--host", "0.0.0.0"])
    assert (result.exit_code, result.output) == (1, f"Error: {REFUSED}\n")


def default_sigint() -> None:
    """Ctrl-C as in a terminal, even where the test runner was started with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_digest_serve_runs_until_ctrl_c(site):
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "serve", "--port", "0"], cwd=site.parent,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        assert select.select([process.stdout], [], [], WAIT_S)[0], "no output from digest serve"
        line = process.stdout.readline()
        found = re.fullmatch(rf"Serving previews of {re.escape(KEY)} at "
                             r"(http://127\.0\.0\.1:\d+/) \(Ctrl-C to stop\)\n", line)
        assert found, line
        assert get(found[1])[0] == 200
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        process.kill()
    assert (process.returncode, out, err) == (0, "Stopped\n", "")
