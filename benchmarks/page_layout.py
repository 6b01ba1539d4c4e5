"""The app's page as people see it: height, and where the prediction and the first view end, per screen.

    python benchmarks/page_layout.py [--out docs/screenshots/after] [--model embedded:mrpc]

Serves the app in this process, opens it in headless Chromium (Debian's ``chromium``, as the browser
tests), explains an example and prints a Markdown table per screen (desktop 1280x800, phone 390x844);
``--out PREFIX`` saves a screenshot of the first screen per size as ``PREFIX-desktop.png`` and
``PREFIX-phone.png``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from empexp.app import build_app, launch
from empexp.classifier import load_classifier

SCREENS = {
    "desktop 1280x800": {"viewport": {"width": 1280, "height": 800}},
    "phone 390x844": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
}
TEXT, PAIR = "A gorgeous, witty, seductive movie.", "A witty film, gorgeous and seductive."


def bottom(page, selector: str) -> float | None:
    box = page.locator(selector).first.bounding_box()
    return None if box is None else box["y"] + box["height"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="classifier (default: the embedded one)")
    parser.add_argument("--out", type=Path, help="screenshot path prefix")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("no chromium on PATH: install Debian's chromium package")
    classifier = load_classifier(args.model)
    app = build_app(classifier)
    launch(app, server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    rows = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        for name, options in SCREENS.items():
            context = browser.new_context(**options)
            page = context.new_page()
            page.goto(app.local_url)
            page.get_by_label("Text", exact=True).fill(TEXT)
            if classifier.inputs == "pair":
                page.get_by_label("Second text", exact=True).fill(PAIR)
            page.get_by_role("button", name="Explain", exact=True).click()
            page.locator("#faithfulness-empirical-ig").get_by_text("comprehensiveness").wait_for(timeout=60_000)
            page.wait_for_timeout(1000)
            height = options["viewport"]["height"]
            prediction, view = bottom(page, "#prediction"), bottom(page, "#view-empirical-ig")
            rows.append((name, page.evaluate("document.body.scrollHeight"), prediction, view, height))
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=f"{args.out}-{name.split()[0]}.png")
            context.close()
        browser.close()
    app.close()
    print("| screen | page height px | prediction ends at px | first view ends at px | fold px |")
    print("|---|---:|---:|---:|---:|")
    for name, total, prediction, view, fold in rows:
        print(f"| {name} | {total} | {prediction:.0f} | {view:.0f} | {fold} |")


if __name__ == "__main__":
    main()
