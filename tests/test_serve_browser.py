"""The `lumicap serve` page in a real headless browser (Debian's chromium + chromium-driver, via selenium).

Uploads a dark photo and a text file renamed .png, waits for the result, downloads it as PNG and as JPEG
and compares both with `lumicap enhance`'s files bit for bit, uses the slider and a reference photo, and
saves a screenshot (in the test's tmp folder, and in $LUMICAP_TEST_ARTIFACTS when that is set).
Skips only where no browser is installed (`.ci/run` installs one).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="lumicap serve needs the serve extra (starlette, uvicorn)")
pytest.importorskip("uvicorn", reason="lumicap serve needs the serve extra (starlette, uvicorn)")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from _serve_support import register_tiny, save_tiny_safetensors, serve_in_thread  # noqa: E402
from lumicap.cli import main  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SETTLED = ("done", "failed")


def _browser_paths() -> tuple[str, str]:
    browser = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip("no browser: install one with `apt-get install -y chromium chromium-driver` (.ci/run does)")
    return browser, driver


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        register_tiny(patch)
        yield save_tiny_safetensors(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model):
    with serve_in_thread([tiny_model], tmp_path_factory.mktemp("serve") / "work") as served:
        yield served


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1000"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def _cards(driver):
    return driver.find_elements(By.CSS_SELECTOR, "article.card")


def _wait(condition, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _card_named(driver, name):
    return next(c for c in _cards(driver) if c.find_element(By.CSS_SELECTOR, ".name").text == name)


def _upload(driver, *paths):
    before = len(_cards(driver))
    driver.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in paths))
    _wait(lambda: len(_cards(driver)) == before + len(paths) and
          all(c.get_attribute("data-state") in SETTLED for c in _cards(driver)[before:]), what="the uploads to settle")


def _download(driver, card, downloads: Path, name: str) -> bytes:
    target = downloads / name
    target.unlink(missing_ok=True)
    card.find_element(By.CSS_SELECTOR, ".download").click()
    _wait(lambda: target.is_file() and not any(downloads.glob("*.crdownload")), timeout=60, what=f"download {name}")
    return target.read_bytes()


def _cli(photo: Path, out: Path, model: Path, *extra) -> Path:
    code = main(["enhance", str(photo), "--out", str(out), "--model", str(model), "--device", "cpu", "--no-progress", *extra])
    assert code == 0
    return out


def test_page_enhances_downloads_and_explains_refusals(browser, server, tiny_model, downloads, tmp_path):
    from lumicap.report.demo import write_demo_inputs
    from lumicap.engine.evaluate import evaluate_pairs

    demo = write_demo_inputs(tmp_path / "demo", names=("astronaut",))
    photo, reference = demo.low_dir / "astronaut.png", demo.reference_dir / "astronaut.png"
    fake = tmp_path / "notes.png"
    fake.write_text("a shopping list, not a photo\n")

    browser.get(server.url + "/")
    menu = Select(browser.find_element(By.ID, "model"))
    _wait(lambda: menu.options, what="the model menu")
    assert menu.first_selected_option.text == "tiny (tiny_conv_test, given to lumicap serve)"
    assert [o.text for o in menu.options][0].startswith("default (")
    assert [o.text for o in Select(browser.find_element(By.ID, "format")).options] == [
        "PNG (lossless, full resolution)", "JPEG (smaller file)"]

    _upload(browser, photo, fake)
    refused = _card_named(browser, "notes.png")
    assert refused.get_attribute("data-state") == "failed"
    assert refused.find_element(By.CSS_SELECTOR, ".error").text == (
        "notes.png: not an image file (or not in a format lumicap reads: PNG, JPEG, TIFF, BMP, WebP, HEIC)")
    card = _card_named(browser, "astronaut.png")
    assert card.get_attribute("data-state") == "done"
    status = card.find_element(By.CSS_SELECTOR, ".status").text
    assert "512×512" in status and "enhanced in" in status
    assert "NIQE dark " in status and "→ enhanced " in status  # the NIQE of both photos, on the card
    assert card.find_element(By.CSS_SELECTOR, ".model").text == "model: tiny"
    loaded = "return [...arguments[0].querySelectorAll('.pair img')].map(i => i.complete && i.naturalWidth)"
    _wait(lambda: all(browser.execute_script(loaded, card)), what="the previews")

    # Not the shipped default: the download's name carries the model's.
    cli_png = _cli(photo, tmp_path / "cli-png", tiny_model) / "astronaut.png"
    assert _download(browser, card, downloads, "astronaut-tiny.png") == cli_png.read_bytes()

    Select(browser.find_element(By.ID, "format")).select_by_value("jpg")
    quality = browser.find_element(By.ID, "quality")
    quality.send_keys(Keys.CONTROL, "a")
    quality.send_keys("80", Keys.TAB)  # leaving the field fires 'change'
    link = card.find_element(By.CSS_SELECTOR, ".download")
    _wait(lambda: "quality 80" in link.text, what="the JPEG link")
    cli_jpg = _cli(photo, tmp_path / "cli-jpg", tiny_model, "--format", "jpg", "--quality", "80") / "astronaut.jpg"
    assert _download(browser, card, downloads, "astronaut-tiny.jpg") == cli_jpg.read_bytes()
    Select(browser.find_element(By.ID, "format")).select_by_value("png")

    card.find_element(By.CSS_SELECTOR, ".toggle").click()
    assert card.find_element(By.CSS_SELECTOR, ".compare").is_displayed()
    assert not card.find_element(By.CSS_SELECTOR, ".pair").is_displayed()
    slider = card.find_element(By.CSS_SELECTOR, ".slider")
    browser.execute_script("arguments[0].value = 30; arguments[0].dispatchEvent(new Event('input'))", slider)
    stack, over = card.find_element(By.CSS_SELECTOR, ".stack"), card.find_element(By.CSS_SELECTOR, ".over")
    assert browser.execute_script("return arguments[0].style.getPropertyValue('--cut')", stack) == "30%"
    # Both sides are labelled; the divider sits where the enhanced half begins (30% of the photo's width).
    labels = [e.text for e in card.find_elements(By.CSS_SELECTOR, ".side-label")]
    assert labels == ["dark", "enhanced"]
    box = "const r = arguments[0].getBoundingClientRect(); return [r.left, r.width, r.top, r.bottom];"
    left, width, top, bottom = browser.execute_script(box, stack)
    divider = browser.execute_script(box, card.find_element(By.CSS_SELECTOR, ".divider"))
    assert abs(divider[0] + divider[1] / 2 - (left + 0.3 * width)) < 2
    assert browser.execute_script("return getComputedStyle(arguments[0]).clipPath", over) == "inset(0px 0px 0px 30%)"
    # The slider is the photo itself: it covers the stack, so it is never below the window's edge.
    assert browser.execute_script(box, slider) == [left, width, top, bottom]

    card.find_element(By.CSS_SELECTOR, ".reference").send_keys(str(reference))
    metrics = card.find_element(By.CSS_SELECTOR, ".metrics")
    _wait(lambda: "PSNR" in metrics.text, what="PSNR/SSIM")
    rows, _ = evaluate_pairs([cli_png], [reference])
    assert metrics.text == f"PSNR {rows[0]['psnr']:.2f} dB · SSIM {rows[0]['ssim']:.4f} against astronaut.png"

    shot = tmp_path / "serve-page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    artifacts = os.environ.get("LUMICAP_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / shot.name)
    print(f"screenshot: {shot}")
    errors = [entry for entry in browser.get_log("browser")
              if entry["level"] == "SEVERE" and "status of 400" not in entry["message"]]
    assert errors == []  # the refused upload's 400 is expected; nothing else failed to load


def test_portrait_photos_fit_the_window_run_in_card_order_and_cards_can_be_cleared(browser, server, tmp_path):
    import numpy as np
    from PIL import Image

    browser.get(server.url + "/")
    _wait(lambda: Select(browser.find_element(By.ID, "model")).options, what="the model menu")
    rng = np.random.default_rng(0)
    photos = []
    for index in range(4):  # portrait, taller than the 1000-px window
        path = tmp_path / f"portrait{index}.png"
        Image.fromarray(rng.integers(0, 80, size=(1400, 500, 3), dtype=np.uint8)).save(path)
        photos.append(path)
    fake = tmp_path / "broken.png"
    fake.write_text("not a photo")
    _upload(browser, *photos, fake)
    names = [c.find_element(By.CSS_SELECTOR, ".name").text for c in _cards(browser)]
    assert names == [p.name for p in photos] + ["broken.png"]
    # The server took them in the cards' order: each started after the one above it finished.
    ids = [c.get_attribute("data-job-id") for c in _cards(browser)[:4]]
    started = [server.jobs.get(job_id).started for job_id in ids]
    assert started == sorted(started)
    # Four window-high cards later, a new photo's card is below the fold: the page scrolls to it.
    in_view = "const r = arguments[0].getBoundingClientRect(); return r.top >= -1 && r.top < innerHeight"
    browser.execute_script("window.scrollTo(0, 0)")
    extra = tmp_path / "later.png"
    Image.fromarray(rng.integers(0, 80, size=(40, 60, 3), dtype=np.uint8)).save(extra)
    _upload(browser, extra)
    later = _card_named(browser, "later.png")
    assert browser.execute_script("return arguments[0].getBoundingClientRect().top", later) > 0  # laid out
    _wait(lambda: browser.execute_script(in_view, later), timeout=10, what="the new card to scroll into view")
    assert browser.execute_script("return window.scrollY") > 1000
    photos.append(extra)

    card = _cards(browser)[0]
    browser.execute_script("arguments[0].scrollIntoView()", card)
    card.find_element(By.CSS_SELECTOR, ".toggle").click()
    height = browser.execute_script("return window.innerHeight")
    stack = browser.execute_script("return arguments[0].querySelector('.stack').getBoundingClientRect().height", card)
    pair = browser.execute_script("return arguments[0].querySelector('.under').getBoundingClientRect().height", card)
    assert 0 < stack <= height and pair == stack
    card.find_element(By.CSS_SELECTOR, ".toggle").click()
    side = browser.execute_script("return arguments[0].querySelector('.enhanced').getBoundingClientRect().height", card)
    assert 0 < side <= height

    # A refused card is dismissed by its own button; "clear finished photos" removes the rest.
    broken = _card_named(browser, "broken.png")
    browser.execute_script("arguments[0].scrollIntoView()", broken)
    broken.find_element(By.CSS_SELECTOR, ".dismiss").click()
    assert [c.find_element(By.CSS_SELECTOR, ".name").text for c in _cards(browser)] == [p.name for p in photos]
    browser.execute_script("window.scrollTo(0, 0)")
    clear = browser.find_element(By.ID, "clear")
    assert clear.is_displayed()
    clear.click()
    assert _cards(browser) == [] and not clear.is_displayed()


def test_eval15_photo_through_the_page_equals_lumicap_enhance(browser, server, tiny_model, downloads, shared_data, tmp_path):
    photo = shared_data / "lol-v1" / "eval15" / "low" / "1.png"
    browser.get(server.url + "/")
    _upload(browser, photo)
    card = _card_named(browser, "1.png")
    assert card.get_attribute("data-state") == "done"
    assert "600×400" in card.find_element(By.CSS_SELECTOR, ".status").text
    cli = _cli(photo, tmp_path / "cli", tiny_model) / "1.png"
    assert _download(browser, card, downloads, "1-tiny.png") == cli.read_bytes()
