import os
from zoneinfo import ZoneInfo

from digest import content
from digest.content import LoadOptions, load_articles

OPTIONS = LoadOptions(base_url="https://example.org", timezone=ZoneInfo("Europe/Berlin"))


def write(folder, name, title):
    path = folder / name
    path.write_text(f"---\ntitle: {title}\ndate: '2026-11-20'\n---\nText.\n")
    return path


def titles(result):
    return [article.title for article in result.articles]


def test_unchanged_files_come_from_the_cache(tmp_path, monkeypatch):
    site, cache = tmp_path / "site", tmp_path / "cache" / "a.pickle"
    site.mkdir()
    write(site, "a.md", "First")
    assert titles(load_articles(site, OPTIONS, cache=cache)) == ["First"]
    assert cache.exists()
    calls = []
    monkeypatch.setattr(content, "read_article", lambda *args: calls.append(args))
    assert titles(load_articles(site, OPTIONS, cache=cache)) == ["First"]
    assert calls == []


def test_a_changed_file_is_read_again_and_a_removed_one_forgotten(tmp_path):
    site, cache = tmp_path / "site", tmp_path / "a.pickle"
    site.mkdir()
    first = write(site, "a.md", "First")
    write(site, "b.md", "Second")
    load_articles(site, OPTIONS, cache=cache)
    write(site, "a.md", "First, edited")
    os.utime(first, ns=(1, 1))
    (site / "b.md").unlink()
    assert titles(load_articles(site, OPTIONS, cache=cache)) == ["First, edited"]


def test_other_options_do_not_reuse_the_cache(tmp_path):
    site, cache = tmp_path / "site", tmp_path / "a.pickle"
    site.mkdir()
    write(site, "a.md", "First")
    load_articles(site, OPTIONS, cache=cache)
    other = LoadOptions(base_url="https://other.example", timezone=OPTIONS.timezone)
    [article] = load_articles(site, other, cache=cache).articles
    assert article.url == "https://other.example/posts/a"


def test_a_corrupt_cache_is_rebuilt(tmp_path):
    site, cache = tmp_path / "site", tmp_path / "a.pickle"
    site.mkdir()
    write(site, "a.md", "First")
    cache.write_bytes(b"not a pickle")
    assert titles(load_articles(site, OPTIONS, cache=cache)) == ["First"]


def test_problems_are_cached_too(tmp_path):
    site, cache = tmp_path / "site", tmp_path / "a.pickle"
    site.mkdir()
    (site / "bad.md").write_text("")
    for _ in range(2):
        result = load_articles(site, OPTIONS, cache=cache)
        assert [str(p) for p in result.problems] == [f"{site / 'bad.md'}: empty file"]


def test_many_files_are_parsed_in_a_process_pool_with_the_same_result(tmp_path, monkeypatch):
    for i in range(12):
        write(tmp_path, f"{i:02d}.md", f"Title {i}")
    (tmp_path / "bad.md").write_text("---\n- a list\n---\n")
    serial = load_articles(tmp_path, OPTIONS)
    monkeypatch.setattr(content, "PARALLEL_FROM", 4)
    parallel = load_articles(tmp_path, OPTIONS)
    assert parallel == serial
    assert len(parallel.articles) == 12
