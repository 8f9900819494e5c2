#!/usr/bin/env python
"""Take the README's screenshot of the `lumicap serve` page (docs/serve-page.png).

    python scripts/serve_screenshot.py                     # shipped default model
    python scripts/serve_screenshot.py --model FILE --out /tmp/page.png

Starts `lumicap serve` on a free loopback port, opens the page in headless chromium (selenium), drops a
darkened sample photo (scikit-image's "chelsea", as `lumicap enhance --demo` makes it) and a text file
named .png, adds the original photo as the reference, shows the before/after slider, and saves the window as
a palette PNG. Then it drops the photo --rounds - 1 more times and prints each "enhanced in" time the page
shows (the README's serve timing).
Needs the test extra and Debian's chromium + chromium-driver.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="model for the page (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "serve-page.png")
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="times the photo is enhanced for the timing (default 3)")
    args = parser.parse_args()

    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    from lumicap.report.demo import write_demo_inputs

    with tempfile.TemporaryDirectory() as tmp:
        demo = write_demo_inputs(Path(tmp) / "demo", names=("chelsea",))
        notes = Path(tmp) / "notes.png"
        notes.write_text("a shopping list, not a photo\n")
        server = subprocess.Popen(
            [sys.executable, "-m", "lumicap", "serve", "--model", args.model, "--port", "0"],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            address = _address(server)
            options = webdriver.ChromeOptions()
            options.binary_location = "/usr/bin/chromium"
            for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                             f"--window-size={args.width},{args.height}", "--hide-scrollbars"):
                options.add_argument(argument)
            driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
            try:
                driver.get(address)
                time.sleep(1)
                driver.find_element(By.ID, "files").send_keys(f"{demo.low_dir / 'chelsea.png'}\n{notes}")
                card = _wait(lambda: _done_card(driver), 600)
                start = time.monotonic()
                card.find_element(By.CSS_SELECTOR, ".reference").send_keys(str(demo.reference_dir / "chelsea.png"))
                _wait(lambda: "PSNR" in card.find_element(By.CSS_SELECTOR, ".metrics").text, 120)
                print(f"reference measured in {time.monotonic() - start:.1f} s")
                times = [_seconds(card)]
                # The refusal card goes under the photo: move it first so both fit the window. The photo is shown
                # under the before/after slider, its line a third of the way in.
                driver.execute_script("const r = document.querySelector('#results'); r.prepend(r.lastElementChild)")
                card.find_element(By.CSS_SELECTOR, ".toggle").click()
                driver.execute_script("const s = arguments[0].querySelector('.slider'); s.value = 35; "
                                      "s.dispatchEvent(new Event('input'))", card)
                driver.execute_script("window.scrollTo(0, 0)")
                time.sleep(1)
                raw = Path(tmp) / "raw.png"
                driver.save_screenshot(str(raw))
                for count in range(3, args.rounds + 2):
                    driver.find_element(By.ID, "files").send_keys(str(demo.low_dir / "chelsea.png"))
                    done = _wait(lambda: _nth_done(driver, count), 600)
                    times.append(_seconds(done))
                print(f"chelsea enhanced in {', '.join(f'{t:.2f}' for t in times)} s (as the page shows it)")
            finally:
                driver.quit()
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        picture = Image.open(raw).convert("RGB")
        for colors in (256, 192, 128, 96):  # the README wants it small (< 200 KB)
            picture.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
            if args.out.stat().st_size < 190_000:
                break
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} KB)")
    return 0


def _address(server: subprocess.Popen) -> str:
    for line in server.stdout:
        print(line, end="")
        if "open http" in line:
            return line.split()[3]
    raise SystemExit("lumicap serve did not start")


def _done_card(driver):
    from selenium.webdriver.common.by import By

    cards = driver.find_elements(By.CSS_SELECTOR, "article.card")
    states = [c.get_attribute("data-state") for c in cards]
    if len(cards) == 2 and all(s in ("done", "failed") for s in states):
        return next(c for c in cards if c.get_attribute("data-state") == "done")
    return None


def _nth_done(driver, count):
    from selenium.webdriver.common.by import By

    cards = driver.find_elements(By.CSS_SELECTOR, "article.card")
    if len(cards) == count and cards[-1].get_attribute("data-state") == "done":
        return cards[-1]
    return None


def _seconds(card) -> float:
    from selenium.webdriver.common.by import By

    status = card.find_element(By.CSS_SELECTOR, ".status").text  # "451×300 · enhanced in 0.31 s"
    return float(status.split("enhanced in ")[1].split(" s")[0])


def _wait(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise SystemExit("timed out")


if __name__ == "__main__":
    sys.exit(main())
