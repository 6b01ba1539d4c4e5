"""The app in a real browser: headless Chromium (Debian's package) driven by Playwright, on the embedded default.

Screenshots go to ``$EMPEXP_ARTIFACTS`` (default ``test-artifacts/``): desktop, narrow (mobile) and dark.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from empexp.app import build_app
from tests.conftest import serving

ARTIFACTS = Path(os.environ.get("EMPEXP_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
HOSTILE = '<script>window.pwned = 1; alert(1)</script><img src=x onerror="window.pwned = 2"> A gorgeous, witty movie.'
EMPIRICAL_VIEWS = ["empirical-ig", "empirical-ig-head", "empirical-sv", "empirical-sv-head"]
INSIDE = "Inside the model"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serving(build_app()) as address:
        yield address


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:  # not a skip: this check is part of the suite, and .ci/run installs the browser
        pytest.fail("no chromium on PATH: install Debian's chromium package (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        yield browser
        browser.close()


class Visit:
    """A page of the app, recording every request it makes and every dialog it opens."""

    def __init__(self, browser: Browser, url: str, **context):
        self.context = browser.new_context(**context)
        self.page: Page = self.context.new_page()
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        self.page.goto(url)

    def explain(self, text: str) -> None:
        self.page.get_by_label("Text", exact=True).fill(text)
        self.page.get_by_role("button", name="Explain", exact=True).click()
        for tab, views in (("Attributions", EMPIRICAL_VIEWS), (INSIDE, ["attention", "diffmask"])):
            self.tab(tab)
            for view in views:  # scored last, once its view has rendered
                self.page.locator(f"#faithfulness-{view}").get_by_text("comprehensiveness").wait_for(timeout=60_000)
        self.tab("Attributions")

    def tab(self, name: str) -> None:
        tab = self.page.get_by_role("tab", name=name)
        if not tab.is_visible():  # a narrow screen lists the other tabs in a menu
            self.page.get_by_role("button", name="More tabs").click()
            tab = self.page.locator(".overflow-dropdown button", has_text=name)
        tab.click()

    def top(self, selector: str) -> float:
        """Where ``selector``'s element ends, in px from the top of the page."""
        box = self.page.locator(selector).bounding_box()
        return box["y"] + box["height"]

    def foreign_requests(self) -> list[str]:
        return [u for u in self.requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
                and urlparse(u).hostname not in ("127.0.0.1", "localhost")]  # fmt: skip

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def test_every_panel_renders_the_text_offline_and_nothing_in_it_runs(browser, url):
    visit = Visit(browser, url, viewport={"width": 1280, "height": 800})
    visit.explain(HOSTILE)
    page = visit.page
    assert "positive" in page.locator("#prediction").inner_text()
    # What was predicted and why, above the fold; IG and SV absent until run, their cost said first.
    assert visit.top("#prediction") < 800 and visit.top("#view-empirical-ig") < 800
    assert not page.locator("#view-ig").is_visible() and "model passes" in page.locator("#expensive-cost").inner_text()
    visit.screenshot("desktop")
    for view in EMPIRICAL_VIEWS:
        shown = page.locator(f"#view-{view}").inner_text()
        assert all(word in shown for word in ("script", "alert", "gorgeous", "witty")), view
    visit.tab(INSIDE)
    for view in ("attention", "head"):
        shown = page.locator(f"#view-{view}").inner_text()
        assert all(word in shown for word in ("script", "alert", "gorgeous", "witty")), view
    assert "uncoloured = 0" in page.locator("#attention-legend").inner_text()
    for view in ("diffmask", "aggregations"):
        headers = page.locator(f"#view-{view} th.token").all_inner_texts()
        assert headers[0] == "[CLS]" and "gorgeous" in headers and "<" in headers, view
    assert page.locator("#view-diffmask tr").count() == 1 + 8  # header + word embeddings, 6 layers, output
    assert page.evaluate("window.pwned") is None and visit.dialogs == []
    assert visit.foreign_requests() == []
    visit.screenshot("desktop-inside-the-model")

    visit.tab("Attributions")
    page.get_by_role("button", name="Run IG and SV too (slower)").click()
    for method in ("ig", "sv"):
        page.locator(f"#faithfulness-{method}").get_by_text("comprehensiveness").wait_for(timeout=120_000)
        assert "gorgeous" in page.locator(f"#view-{method}").inner_text()
    assert page.get_by_text("vs Integrated Gradients: MSE").count() == 2
    assert page.evaluate("window.pwned") is None and visit.dialogs == [] and visit.foreign_requests() == []
    visit.screenshot("desktop-with-ig-and-sv")

    spans = page.locator("#view-empirical-ig span.text")
    assert "pwned" in spans.all_inner_texts()
    page.get_by_label("word pieces").check()  # redrawn from the last results (no model pass), in pieces
    expect(spans.filter(has_text=re.compile("^wn$"))).not_to_have_count(0, timeout=10_000)
    visit.tab("Downloads")

    with page.expect_download() as download:
        page.get_by_role("button", name="Download the explanations (JSON)").click()
    saved = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert {e["method"] for e in saved} >= {"ig", "sv", "empirical-ig", "attention", "diffmask-input"}
    assert all(e["text"] == HOSTILE for e in saved)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the attention (AttViz JSON)").click()
    attviz = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert len(attviz[0]["sets"][0]["attention_vectors"]) == 6 * 12  # every head of every layer
    visit.context.close()


def test_narrow_screen_and_dark_mode_render_the_same_panels(browser, url):
    narrow = Visit(browser, url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    narrow.explain("Not bad at all, though the ending drags.")
    assert "ending" in narrow.page.locator("#view-empirical-sv").inner_text()
    # The prediction and the first words of the first view above the fold.
    assert narrow.top("#prediction") < 844 and narrow.page.locator("#view-empirical-ig").bounding_box()["y"] < 844 - 100
    narrow.screenshot("mobile")
    narrow.context.close()

    dark = Visit(browser, f"{url}?__theme=dark", viewport={"width": 1280, "height": 900}, color_scheme="dark")
    dark.explain("The plot is nothing but boilerplate clichés from start to finish.")
    assert dark.page.evaluate("document.body.classList.contains('dark')")
    assert "negative" in dark.page.locator("#prediction").inner_text()
    assert dark.foreign_requests() == []
    dark.screenshot("dark")
    dark.context.close()


def test_empty_text_is_a_message_examples_fill_the_text_and_the_api_panel_lists_the_endpoints(browser, url):
    visit = Visit(browser, url, viewport={"width": 1280, "height": 900})
    visit.page.get_by_role("button", name="Explain", exact=True).click()  # nothing typed yet
    visit.page.get_by_text("the text is empty: type a sentence to classify").first.wait_for(timeout=30_000)
    visit.page.get_by_text("Not bad at all, though the ending drags.").first.click()
    expect(visit.page.get_by_label("Text", exact=True)).to_have_value("Not bad at all, though the ending drags.")
    visit.page.get_by_text("Use via API").click()
    for endpoint in ("/predict", "/explain_empirical", "/explain_internals", "/explain_fast", "/explain"):
        visit.page.get_by_text(endpoint, exact=True).first.wait_for(timeout=10_000)
    assert visit.foreign_requests() == []
    visit.context.close()


def test_ig_and_sv_say_their_cost_first_and_stop_when_asked(browser, url):
    visit = Visit(browser, url, viewport={"width": 1280, "height": 800})
    page = visit.page
    long_text = "It starts slowly, with a long stretch of exposition about the family's history, " * 4
    page.get_by_label("Text", exact=True).fill(long_text)
    page.get_by_role("button", name="Explain", exact=True).click()
    expect(page.locator("#expensive-cost")).to_contain_text("model passes", timeout=60_000)
    page.get_by_role("button", name="Run IG and SV too (slower)").click()
    stop = page.get_by_role("button", name="Stop IG and SV")
    stop.wait_for(timeout=30_000)
    stop.click()
    expect(stop).to_be_hidden(timeout=10_000)
    # The worker is free again at once: a second run on a short text finishes.
    page.get_by_label("Text", exact=True).fill("A gorgeous, witty movie.")
    page.get_by_role("button", name="Run IG and SV too (slower)").click()
    page.locator("#faithfulness-sv").get_by_text("comprehensiveness").wait_for(timeout=60_000)
    assert "gorgeous" in page.locator("#view-sv").inner_text()
    visit.context.close()
