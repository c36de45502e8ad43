"""The dashboard in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium).

A real uvicorn app and a real Dramatiq worker process the documents the browser uploads through
the page's form. Set PAGEMILL_SCREENSHOT_DIR to keep the screenshot (scripts/screenshot-dashboard
writes docs/dashboard.png that way).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dramatiq import Worker
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests import pages
from tests.fixtures_workers import DOCUMENT_TIMEOUT_S

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-dev-shm-usage",  # small /dev/shm in containers
    "--window-size=1280,1000",
)
# How long the page may take to react to a click or a loaded response, seconds.
UI_TIMEOUT_S = 30
SCREENSHOT_NAME = "dashboard.png"
# A file name that is markup: the page must show it as text.
HOSTILE_NAME = "<img src=x onerror=alert(1)>.pdf"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium through chromedriver; never downloads a browser or driver."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"the dashboard test needs Debian's chromium and chromium-driver ({', '.join(missing)} missing): "
            "run scripts/bootstrap --test, or apt-get install chromium chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager (which would try to download one) never runs.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(
    driver: WebDriver, what: str, check: Callable[[WebDriver], Any], timeout: float = UI_TIMEOUT_S
) -> Any:
    """Wait until ``check`` returns something truthy; on timeout, fail with what the page shows."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(check)
    except TimeoutException:
        body = driver.find_element(By.TAG_NAME, "body").text
        logs = [entry["message"] for entry in driver.get_log("browser")]
        raise AssertionError(
            f"timed out waiting for {what}; the page shows:\n{body}\nconsole: {logs}"
        ) from None


def _visible(driver: WebDriver, element_id: str) -> bool:
    return bool(driver.find_element(By.ID, element_id).is_displayed())


def _thumbnail_widths(driver: WebDriver) -> list[int]:
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll('#pages li.page')].map("
            "li => { const img = li.querySelector('img'); return img && img.complete ? img.naturalWidth : 0; });"
        )
    )


def _page_states(driver: WebDriver) -> list[str]:
    return [li.get_attribute("data-status") for li in driver.find_elements(By.CSS_SELECTOR, "#pages li.page")]


def _page_sources(driver: WebDriver) -> list[str]:
    return [el.text for el in driver.find_elements(By.CSS_SELECTOR, "#pages li.page .source")]


def _upload_through_form(driver: WebDriver, path: Path, lang: str) -> str:
    """Fill in and send the upload form; returns the new document's id (the page opens it)."""
    driver.find_element(By.ID, "upload-file").send_keys(str(path))
    driver.find_element(By.ID, "upload-lang").send_keys(lang)
    driver.find_element(By.ID, "upload-button").click()
    match = _wait(
        driver,
        "the uploaded document to open",
        lambda d: re.search(r"#/documents/([0-9a-f-]{36})$", d.current_url),
    )
    return str(match.group(1))


def _wait_until_done(driver: WebDriver, page_count: int) -> None:
    _wait(
        driver,
        "the document to complete with every page done and its thumbnail loaded",
        lambda d: (
            d.find_element(By.ID, "detail-status").text == "completed"
            and _page_states(d) == ["done"] * page_count
            and all(w > 0 for w in _thumbnail_widths(d))
        ),
        timeout=DOCUMENT_TIMEOUT_S,
    )


def _row_texts(driver: WebDriver) -> dict[str, str]:
    rows = driver.find_elements(By.CSS_SELECTOR, "#documents tbody tr")
    return {str(row.get_attribute("data-id")): row.text for row in rows}


def _javascript_errors(driver: WebDriver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("source") == "javascript"]


def _save_screenshot(driver: WebDriver, tmp_path: Path) -> Path:
    shot = tmp_path / SCREENSHOT_NAME
    assert driver.save_screenshot(str(shot)), "Chromium did not write the screenshot"
    out_dir = os.environ.get("PAGEMILL_SCREENSHOT_DIR")
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(out_dir) / SCREENSHOT_NAME)
    return shot


def test_upload_through_the_page_and_follow_it_to_the_text(
    browser: WebDriver, serve: Callable[..., str], start_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    start_worker()
    url = serve()
    pdf = pages.write_pdf(
        tmp_path / "field-notes.pdf",
        [pages.text_page(pages.PARAGRAPH_A), pages.two_column_page(pages.LEFT_COLUMN, pages.RIGHT_COLUMN)],
    )
    browser.get(f"{url}/")
    _wait(browser, "the dashboard", lambda d: _visible(d, "app"))
    assert not _visible(browser, "key-panel")  # no keys configured: nothing to ask
    # The empty-list note shows once the listing has loaded (a request after the page itself).
    _wait(browser, "the empty document list", lambda d: _visible(d, "documents-empty"))

    doc_id = _upload_through_form(browser, pdf, "en")
    _wait_until_done(browser, 2)
    assert browser.find_element(By.ID, "detail-title").text == "field-notes.pdf"
    widths = _thumbnail_widths(browser)
    assert all(0 < w <= 200 for w in widths), widths
    # Each page says where its text came from (these pages are images: OCR).
    _wait(browser, "each page's text source", lambda d: _page_sources(d) == ["OCR", "OCR"])
    # The list row followed the document live: completed, both pages counted.
    _wait(browser, "the list row to show completion", lambda d: "completed" in _row_texts(d).get(doc_id, ""))
    row = _row_texts(browser)[doc_id]
    assert "field-notes.pdf" in row and "2 / 2 pages" in row, row
    with httpx.Client(base_url=url) as api:  # the page shows what the API says
        assert api.get(f"/api/documents/{doc_id}").json()["page_counts"]["done"] == 2
    links = {
        a.text: a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#detail-links a")
    }
    assert links["Text"] == f"{url}/api/documents/{doc_id}/text" and "result.json" in links
    shot = _save_screenshot(browser, tmp_path)
    assert shot.stat().st_size > 10_000
    assert _javascript_errors(browser) == []

    browser.find_element(By.LINK_TEXT, "Text").click()
    _wait(browser, "the text to open", lambda d: d.current_url.endswith("/text"))
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "quick brown fox" in text and "second column holds" in text, text


def test_with_an_api_key_the_page_asks_for_it_and_shows_names_as_text(
    browser: WebDriver, serve: Callable[..., str], start_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    start_worker()
    url = serve(api_keys="browser-key")
    with httpx.Client(base_url=url, headers={"Authorization": "Bearer browser-key"}) as api:
        earlier = api.post(
            "/api/documents", files={"file": ("secret-ledger.pdf", pages.pdf_bytes([pages.blank_page(255)]))}
        )
        assert earlier.status_code == 202, earlier.text

    browser.get(f"{url}/")
    _wait(browser, "the key form", lambda d: _visible(d, "key-panel"))
    assert not _visible(browser, "app") and "secret-ledger" not in browser.page_source
    browser.find_element(By.ID, "key-input").send_keys("not-the-key\n")
    _wait(browser, "the wrong key to be refused", lambda d: _visible(d, "key-error"))
    assert "not valid" in browser.find_element(By.ID, "key-error").text
    assert not _visible(browser, "app") and "secret-ledger" not in browser.page_source

    browser.find_element(By.ID, "key-input").send_keys("browser-key\n")
    _wait(browser, "the list with the key", lambda d: "secret-ledger.pdf" in " ".join(_row_texts(d).values()))
    hostile = tmp_path / "upload"
    hostile.mkdir()
    pdf = pages.write_pdf(hostile / HOSTILE_NAME, [pages.text_page(pages.PARAGRAPH_B)])
    doc_id = _upload_through_form(browser, pdf, "en")
    _wait_until_done(browser, 1)  # events read with fetch + header, thumbnail fetched as a blob
    assert browser.find_element(By.ID, "detail-title").text == HOSTILE_NAME
    assert HOSTILE_NAME in _row_texts(browser)[doc_id]
    assert browser.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0
    src = browser.find_element(By.CSS_SELECTOR, "#pages img").get_attribute("src")
    assert src.startswith("blob:"), src
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - reading it is the check

    browser.refresh()  # the key stays for this tab
    _wait(browser, "the dashboard after a reload", lambda d: _visible(d, "app"))
    assert not _visible(browser, "key-panel")
    browser.get(f"{url}/#/documents/{doc_id}")
    _wait(browser, "the document after a reload", lambda d: _page_states(d) == ["done"])
    browser.find_element(By.LINK_TEXT, "Text").click()  # fetched with the key, opened as a blob
    _wait(browser, "the text to open", lambda d: d.current_url.startswith("blob:"))
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "Invoices are due within thirty days" in text, text
