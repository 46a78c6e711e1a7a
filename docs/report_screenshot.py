"""Write docs/report-first-screen.png: the first screen of a report, as a reader's browser shows it.

    .venv/bin/python docs/report_screenshot.py perceptiongap-results/report.html

Uses Playwright with Debian's Chromium (/usr/bin/chromium, or $PERCEPTIONGAP_CHROMIUM), a 1280 x 900 window; the PNG
is reduced to a 128-colour palette (text and flat colours only on this screen) to stay small for the README.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

WINDOW = {"width": 1280, "height": 900}
OUT = Path(__file__).with_name("report-first-screen.png")


def main(report: Path) -> None:
    chromium = os.environ.get("PERCEPTIONGAP_CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport=WINDOW)
        page.goto(report.resolve().as_uri())
        png = page.screenshot(full_page=False)
        browser.close()
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    image.save(OUT, optimize=True)
    print(f"{OUT}: {OUT.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "perceptiongap-results/report.html"))
