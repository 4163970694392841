"""The preferences page in headless Chromium at a phone's width (375 px), with every
request that does not go to the app itself blocked: no JavaScript of ours, no fonts,
nothing from elsewhere."""

import pytest
from web_support import Clock, add_reader, reader, serving, site_settings

WIDTH = 375
OVERFLOW_JS = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


@pytest.fixture
def served(tmp_path):
    with serving(site_settings(tmp_path), Clock()) as running:
        yield running


def phone_page(browser, served):
    context = browser.new_context(viewport={"width": WIDTH, "height": 740},
                                  java_script_enabled=False)
    blocked = []

    def only_the_app(route):
        if route.request.url.startswith(served.url + "/"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_app)
    return context, context.new_page(), blocked


@pytest.mark.browser
def test_change_topics_and_cadence_at_375_px(browser, served):
    email = "ada@example.com"
    token = add_reader(served.root, email, categories=("Work",))
    context, page, blocked = phone_page(browser, served)
    try:
        page.goto(f"{served.url}/preferences/{token}")
        assert page.evaluate(OVERFLOW_JS) <= 0
        assert page.get_by_label("Work").is_checked()
        assert not page.get_by_label("Tools").is_checked()
        assert page.get_by_label("Weekly").is_checked()
        page.get_by_label("Tools").check()
        page.get_by_label("Work").uncheck()
        page.get_by_label("Research").check()
        page.get_by_label("Daily").check()
        with page.expect_navigation():
            page.get_by_role("button", name="Save").click()
        assert page.get_by_role("status").inner_text() == "Saved."
        assert page.evaluate(OVERFLOW_JS) <= 0
        assert page.get_by_label("Tools").is_checked() and page.get_by_label("Daily").is_checked()
        css_width = page.evaluate("() => getComputedStyle(document.querySelector('main'))"
                                  ".width")
        assert float(css_width.removesuffix("px")) <= WIDTH
    finally:
        context.close()
    subscriber, events = reader(served.root, email)
    assert (subscriber.categories, subscriber.cadence) == (("Tools", "Research"), "daily")
    assert [e.source for e in events] == ["cli"]  # no status change: nothing else recorded
    assert blocked == []  # the page asked for nothing outside the app


@pytest.mark.browser
@pytest.mark.parametrize("path", ["/", "/unsubscribe/{token}", "/nowhere"])
def test_the_other_pages_fit_375_px_too(browser, served, path):
    token = add_reader(served.root, "a.very.long.address.that.could.overflow.a.phone@"
                                    "subdomain.of.an.example.org")
    context, page, blocked = phone_page(browser, served)
    try:
        page.goto(served.url + path.format(token=token))
        assert page.evaluate(OVERFLOW_JS) <= 0
        stylesheet_applied = page.evaluate(
            "() => getComputedStyle(document.body).maxWidth")
        assert stylesheet_applied != "none"
    finally:
        context.close()
    assert blocked == []


@pytest.mark.browser
def test_unsubscribe_from_the_preferences_page_in_the_browser(browser, served):
    email = "bob@example.com"
    token = add_reader(served.root, email)
    context, page, _ = phone_page(browser, served)
    try:
        page.goto(f"{served.url}/preferences/{token}")
        with page.expect_navigation():
            page.get_by_role("button", name="Unsubscribe").click()
        assert page.get_by_role("heading").inner_text() == "You are unsubscribed"
    finally:
        context.close()
    subscriber, events = reader(served.root, email)
    assert subscriber.status == "unsubscribed"
    assert (events[-1].old, events[-1].new, events[-1].source) == ("active", "unsubscribed",
                                                                    "web")


@pytest.mark.browser
def test_sign_up_in_the_browser_passes_the_cross_site_and_bot_checks(browser, served):
    context, page, blocked = phone_page(browser, served)
    try:
        page.goto(f"{served.url}/")
        page.get_by_label("Email address").fill("cy@example.com")
        served.clock.advance(seconds=5)  # a person takes a moment
        with page.expect_navigation():
            page.get_by_role("button", name="Subscribe").click()
        assert page.get_by_role("heading").inner_text() == "Check your inbox"
    finally:
        context.close()
    served.drain()
    assert reader(served.root, "cy@example.com")[0].status == "pending"
    assert blocked == []
