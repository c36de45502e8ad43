"""The dashboard's search box in headless Chromium: results as text, links to the document, its suggested name."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from pydantic import SecretStr
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from pipeline.artifacts import save_artifact
from pipeline.context import Context
from pipeline.llm.client import LlmClient
from pipeline.search import embed_document
from pipeline.settings import Settings
from tests.search.corpus import TOPICS, add_text_document
from tests.search.test_search import run
from tests.web.test_dashboard_browser import HOSTILE_NAME, _visible, _wait, browser  # noqa: F401 - fixture

KEY = "search-key"


def test_search_box_lists_documents_as_text_and_opens_them(
    browser: WebDriver,  # noqa: F811
    web_client: Callable[[Settings], httpx.Client],
    vector_settings: Settings,
) -> None:
    # Unrelated text must find nothing: vector neighbours below this similarity are dropped.
    settings = vector_settings.model_copy(update={"api_keys": (SecretStr(KEY),), "search_min_similarity": 0.2})
    url = str(web_client(settings).base_url).rstrip("/")

    async def corpus(ctx: Context, client: LlmClient) -> str:
        for topic in TOPICS[:6]:
            doc = await add_text_document(ctx.store, HOSTILE_NAME if topic is TOPICS[0] else topic.filename, topic.pages)
            await embed_document(ctx, client, doc.id)
            if topic is TOPICS[0]:
                target = doc
        await ctx.store.pool.execute(
            """UPDATE documents SET options = '{"postprocess": ["metadata", "embeddings"]}' WHERE id = $1""", target.id
        )
        meta = {"filename_suggestion": "volcanic-eruptions.pdf", "document_type": "article", "tags": ["geology"]}
        await save_artifact(ctx.store, target.id, "metadata", {"kind": "metadata", "metadata": meta}, tokens=0)
        return str(target.id)

    doc_id = run(settings, corpus)
    browser.get(f"{url}/")
    _wait(browser, "the key form", lambda d: _visible(d, "key-panel"))
    browser.find_element(By.ID, "key-input").send_keys(f"{KEY}\n")
    _wait(browser, "the dashboard", lambda d: _visible(d, "search-panel"))
    browser.find_element(By.ID, "search-input").send_keys("what comes out when volcanoes erupt\n")
    results = _wait(browser, "search results", lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results li"))
    first = results[0]
    assert first.get_attribute("data-id") == doc_id
    assert HOSTILE_NAME in first.text and "magma" in first.text and "page 1" in first.text, first.text
    assert browser.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0

    first.find_element(By.CSS_SELECTOR, "a.result-name").click()
    _wait(browser, "the suggested name", lambda d: _visible(d, "detail-suggestion"))
    suggestion = browser.find_element(By.ID, "detail-suggestion").text
    assert "volcanic-eruptions.pdf" in suggestion and "geology" in suggestion, suggestion
    assert browser.find_element(By.ID, "detail-title").text == HOSTILE_NAME

    browser.find_element(By.ID, "search-input").clear()
    browser.find_element(By.ID, "search-input").send_keys("zzzqqq xxyyzz\n")
    _wait(browser, "the empty answer", lambda d: d.find_element(By.ID, "search-message").text == "No documents found.")
