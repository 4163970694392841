"""site.language: the words (gettext catalogs), dates, numbers and plurals digest writes."""

import dataclasses
import re
from datetime import timedelta
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from click.testing import CliRunner
from helpers import make_article, make_settings
from test_render import NOW, SITE, UNSUBSCRIBE, issue_of, week

from digest.cli import cli
from digest.config import load_settings
from digest.errors import ConfigError
from digest.i18n import (
    LOCALES_DIR,
    SHIPPED,
    TEMPLATE_CATALOG,
    language_findings,
    load_language,
    shipped_ids,
    translated,
)
from digest.pipeline import quality_of
from digest.render import Renderer, intro
from digest.select import Caps

REPO = Path(__file__).resolve().parent.parent
BEFORE_I18N = REPO / "tests" / "fixtures" / "templates_before_i18n"  # main's, before issue 19


def render(language, templates_dir=None, articles=None, caps=None):
    site = dataclasses.replace(SITE, language=language)
    return Renderer(site, templates_dir).render(issue_of(articles or week(), caps or Caps()),
                                                unsubscribe_url=UNSUBSCRIBE)


def key(message_id):
    return message_id if isinstance(message_id, str) else message_id[0]


def extracted_ids():
    """What `pybabel extract -F babel.cfg` finds in the code and templates today."""
    with (REPO / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    found = extract_from_dir(str(REPO), method_map, options_map, keywords=keywords)
    return {key(message) for _, _, message, _, _ in found}


def catalog_ids(path):
    with path.open("rb") as handle:
        return {key(message.id) for message in read_po(handle) if message.id}


# ---------------------------------------------------------------- catalogs


def test_the_template_catalog_has_every_string_of_the_code_and_templates():
    missing = extracted_ids() - catalog_ids(TEMPLATE_CATALOG)
    stale = catalog_ids(TEMPLATE_CATALOG) - extracted_ids()
    assert (missing, stale) == (set(), set()), "run pybabel extract (README, Languages)"


@pytest.mark.parametrize("lang", [lang for lang in SHIPPED if lang != "en"])
def test_every_shipped_catalog_translates_every_string(lang):
    path = LOCALES_DIR / f"{lang}.po"
    with path.open("rb") as handle:
        catalog = read_po(handle)
    untranslated = [key(m.id) for m in catalog if m.id and not translated(m)]
    assert catalog_ids(path) == extracted_ids()
    assert untranslated == []
    assert [(m.id, errors) for m, errors in catalog.check()] == []  # %(placeholders)s agree


def test_a_template_string_missing_from_a_catalog_is_found(tmp_path):
    (tmp_path / "footer.txt.j2").write_text("{% trans %}A brand-new sentence{% endtrans %}")
    method_map = [("**.j2", "jinja2")]
    found = {m for _, _, m, _, _ in extract_from_dir(str(tmp_path), method_map)}
    assert found - catalog_ids(LOCALES_DIR / "de.po") == {"A brand-new sentence"}


# ---------------------------------------------------------------- rendered words


def test_golden_german(golden):
    email = render("de")
    golden("week.de.html", email.html)
    golden("week.de.txt", email.text)
    assert email.subject == "Example News: 4 neue Artikel aus Work und Research"
    assert "Sa., 28. Nov. 2026" in email.text
    assert '<html lang="de" dir="ltr"' in email.html


def test_golden_french(golden):
    email = render("fr")
    golden("week.fr.html", email.html)
    golden("week.fr.txt", email.text)
    assert email.subject == "Example News\u00a0: 4 nouveaux articles dans Work et Research"
    assert "sam. 28 nov. 2026" in email.text


INTROS = {
    "en": ["0 articles this week.", "1 article this week.", "2 articles this week.",
           "5 articles this week."],
    "de": ["Diese Woche gibt es 0 neue Artikel.", "Diese Woche gibt es 1 neuen Artikel.",
           "Diese Woche gibt es 2 neue Artikel.", "Diese Woche gibt es 5 neue Artikel."],
    "fr": ["0 article cette semaine.", "1 article cette semaine.",
           "2 articles cette semaine.", "5 articles cette semaine."],
    "es": ["0 artículos esta semana.", "1 artículo esta semana.",
           "2 artículos esta semana.", "5 artículos esta semana."],
}
SUBJECTS = {
    "en": ["Example News: 1 new article in Work", "Example News: 2 new articles in Work",
           "Example News: 5 new articles in Work"],
    "de": ["Example News: 1 neuer Artikel aus Work", "Example News: 2 neue Artikel aus Work",
           "Example News: 5 neue Artikel aus Work"],
    "fr": ["Example News\u00a0: 1 nouvel article dans Work",
           "Example News\u00a0: 2 nouveaux articles dans Work",
           "Example News\u00a0: 5 nouveaux articles dans Work"],
    "es": ["Example News: 1 artículo nuevo en Work", "Example News: 2 artículos nuevos en Work",
           "Example News: 5 artículos nuevos en Work"],
}


@pytest.mark.parametrize("lang", SHIPPED)
def test_plural_forms_for_0_1_2_and_5_articles(lang):
    language = load_language(lang)
    assert [intro(n, 0, "week", language) for n in (0, 1, 2, 5)] == INTROS[lang]
    subjects = []
    for count in (1, 2, 5):
        articles = [make_article(f"s{i}", NOW - timedelta(hours=i + 1)) for i in range(count)]
        subjects.append(render(lang, articles=articles).subject)
    assert subjects == SUBJECTS[lang]


@pytest.mark.parametrize(("lang", "one", "two"), [
    ("en", "1 more in Policy →", "2 more in Work →"),
    ("de", "1 weiterer Artikel in Policy →", "2 weitere Artikel in Work →"),
    ("fr", "1 autre article dans Policy →", "2 autres articles dans Work →"),
    ("es", "1 artículo más en Policy →", "2 artículos más en Work →"),
])
def test_more_links_are_plural_too(lang, one, two):
    articles = [make_article(f"w{i}", NOW - timedelta(hours=i + 1), "Work") for i in range(4)]
    articles += [make_article(f"p{i}", NOW - timedelta(hours=i + 1), "Policy") for i in range(2)]
    email = render(lang, articles=articles, caps=Caps(2, 3))
    assert one in email.html and two in email.html


def test_empty_issue_subject_in_german():
    email = render("de", articles=[week()[0]])
    site = dataclasses.replace(SITE, language="de")
    empty = Renderer(site).render(dataclasses.replace(issue_of(week()), sections=()),
                                  unsubscribe_url=UNSUBSCRIBE)
    assert email.subject.startswith("Example News: 1 neuer Artikel")
    assert empty.subject == "Example News: diesmal nichts Neues"


# ---------------------------------------------------------------- languages without words


def test_an_unknown_language_code_is_an_error_naming_the_shipped_ones(tmp_path):
    (tmp_path / "digest.toml").write_text(
        '[site]\nbase_url = "https://x.example.org"\nlanguage = "xx"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "digest.toml")
    assert str(caught.value) == (
        f"{tmp_path / 'digest.toml'}: site.language: unknown language code 'xx' (shipped: "
        "de, en, es, fr; others take a CLDR code such as it, pt-BR or ar)")


def test_a_language_without_a_catalog_has_english_words_its_dates_and_a_warning():
    email = render("it")
    language = load_language("it")
    assert "4 articles this week." in email.text
    assert "sab 28 nov 2026" in email.text
    assert email.subject == "Example News: 4 new articles in Work and Research"
    assert [f.message for f in language_findings(language, "it")] == [
        "site.language 'it': no catalog has Italian words (shipped: de, en, es, fr), so they "
        "stay English while dates and numbers are Italian; `digest translations init it` "
        "starts one in templates/"]


def test_a_region_uses_its_language_catalog_and_its_own_dates():
    email = render("de-AT")
    assert "Diese Woche gibt es 4 neue Artikel." in email.text
    assert "Sa., 28. Nov. 2026" in email.text
    assert '<html lang="de-AT"' in email.html


def test_english_needs_no_catalog_and_gets_no_warning():
    assert language_findings(load_language("en"), "en") == []


# ---------------------------------------------------------------- the site's own catalog


SITE_PO = """msgid ""
msgstr ""
"Language: {lang}\\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\\n"
"Content-Type: text/plain; charset=utf-8\\n"

msgid "Unsubscribe: %(url)s"
msgstr "Austragen: %(url)s"

msgid "Hello, readers"
msgstr "Hallo, liebe Leserinnen und Leser"
"""


def test_the_sites_catalog_wins_over_the_shipped_one(tmp_path):
    (tmp_path / "de.po").write_text(SITE_PO.format(lang="de"), encoding="utf-8")
    email = render("de", tmp_path)
    assert f"Austragen: {UNSUBSCRIBE}" in email.text
    assert "Diese Woche gibt es 4 neue Artikel." in email.text  # the rest stays shipped


def test_a_copied_template_keeps_working_and_its_trans_blocks_are_translated(tmp_path):
    (tmp_path / "de.po").write_text(SITE_PO.format(lang="de"), encoding="utf-8")
    for name in ("email.txt.j2", "subject.txt.j2"):  # as a site copied them before i18n
        (tmp_path / name).write_text((BEFORE_I18N / name).read_text())
    with (tmp_path / "email.txt.j2").open("a") as handle:
        handle.write("\n{% trans %}Hello, readers{% endtrans %}\n")
    email = render("de", tmp_path)
    assert "Diese Woche gibt es 4 neue Artikel." in email.text  # intro: from digest
    assert "Sa., 28. Nov. 2026" in email.text  # dates: the language's
    assert f"Unsubscribe: {UNSUBSCRIBE}" in email.text  # its own words stay its own
    assert email.text.rstrip().endswith("Hallo, liebe Leserinnen und Leser")
    assert email.subject == "Example News: 4 new articles in Work und Research"


def test_quality_gate_warns_about_untranslated_strings_and_a_disagreeing_catalog(tmp_path):
    (tmp_path / "de.po").write_text(SITE_PO.format(lang="fr"), encoding="utf-8")
    (tmp_path / "it.po").write_text(SITE_PO.format(lang="it"), encoding="utf-8")
    german = load_language("de", tmp_path)
    assert [f.message for f in language_findings(german, "en")] == [
        f"{tmp_path / 'de.po'} says Language: fr, but site.language is 'de'",
        "The <html> element has lang=\"en\", but site.language is 'de': a template "
        "hard-codes the language?"]
    italian = [f.message for f in language_findings(load_language("it", tmp_path), "it")]
    assert len(italian) == 1
    total = len(shipped_ids())  # the site's it.po translates one of them
    assert re.fullmatch(rf"{total - 1} of digest's strings have no Italian translation and "
                        rf"stay English: '.*', '.*', '.*' and {total - 4} more", italian[0])


def test_check_prints_the_language_warnings(tmp_path):
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "a.md").write_text(
        "---\ntitle: One\ndate: '2026-11-20'\ncategory: Work\n---\nBody.\n")
    (tmp_path / "digest.toml").write_text(
        '[site]\nname = "Tiny"\nbase_url = "https://tiny.example.org"\nlanguage = "it"\n'
        '[email]\nfrom = "Tiny <news@tiny.example.org>"\npostal_address = "1 Tiny Lane"\n')
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "digest.toml"), "check"])
    assert result.exit_code == 0, result.output
    assert "Warning: rendered email: site.language 'it': no catalog has Italian words" \
        in result.output


def test_quality_of_adds_the_language_findings():
    from digest.pipeline import Built
    email = render("it")
    built = Built(issue_of(week()), email)
    codes = [f.code for f in quality_of(built, UNSUBSCRIBE, language=load_language("it"))]
    assert codes == ["language-catalog"]


# ---------------------------------------------------------------- translations init


def test_translations_init_in_a_fresh_site(tmp_path):
    (tmp_path / "digest.toml").write_text(
        '[site]\nbase_url = "https://x.example.org"\nlanguage = "it"\n')
    config = ["--config", str(tmp_path / "digest.toml")]
    result = CliRunner().invoke(cli, [*config, "translations", "init", "it"])
    path = tmp_path / "templates" / "it.po"
    assert (result.exit_code, result.output) == (0, (
        f"Wrote {path}: {len(shipped_ids())} strings, 0 filled in from digest's own catalog. "
        "Translate the "
        "empty msgstr lines; the site's catalog wins over the shipped one.\n"))
    text = path.read_text(encoding="utf-8")
    assert '"Language: it\\n"' in text and "nplurals=3" in text
    assert 'msgid "Choose topics"\nmsgstr ""' in text
    again = CliRunner().invoke(cli, [*config, "translations", "init", "it"])
    assert (again.exit_code, again.output) == (1, (
        f"Error: {path} already exists: edit it, or delete it to start again\n"))
    path.write_text(text.replace('msgid "Choose topics"\nmsgstr ""',
                                 'msgid "Choose topics"\nmsgstr "Scegli gli argomenti"'),
                    encoding="utf-8")
    settings = load_settings(tmp_path / "digest.toml")
    assert load_language(settings.language, settings.templates_dir).gettext(
        "Choose topics") == "Scegli gli argomenti"


def test_translations_init_of_a_shipped_language_starts_from_its_words(tmp_path):
    (tmp_path / "digest.toml").write_text('[site]\nbase_url = "https://x.example.org"\n')
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "extra.txt.j2").write_text(
        "{% trans %}Hello, readers{% endtrans %}")
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "digest.toml"),
                                      "translations", "init", "de"])
    assert result.exit_code == 0, result.output
    assert f"{len(shipped_ids()) + 1} strings, {len(shipped_ids())} filled in" in result.output
    text = (tmp_path / "templates" / "de.po").read_text(encoding="utf-8")
    assert 'msgid "Choose topics"\nmsgstr "Themen wählen"' in text
    assert 'msgid "Hello, readers"\nmsgstr ""' in text


def test_translations_init_of_an_unknown_code():
    result = CliRunner().invoke(cli, ["--config", str(REPO / "digest.toml"),
                                      "translations", "init", "klingon"])
    assert (result.exit_code, result.output) == (1, (
        "Error: site.language: unknown language code 'klingon' (shipped: de, en, es, fr; "
        "others take a CLDR code such as it, pt-BR or ar)\n"))


def test_settings_language_is_a_bcp47_tag():
    assert make_settings(site__language="de_AT").language == "de-AT"


def test_a_broken_site_catalog_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "de.po").write_text('msgid "Unsubscribe"\nmsgstr "Abmelden"\n\nAbmelden\n',
                                    encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        render("de", tmp_path)
    assert str(caught.value) == (f"{tmp_path / 'de.po'}:4: not a valid .po catalog: Unknown "
                                 "or misformatted keyword: 'Abmelden'")
    (tmp_path / "de.po").write_bytes(b'msgid "Unsubscribe"\nmsgstr "Abmelden \xff"\n')
    with pytest.raises(ConfigError) as caught:
        render("de", tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'de.po'}: ")
    assert "UTF-8" in str(caught.value)
