"""Every HTML page the API serves, as a person sees it in Chromium.

/docs (Swagger UI), the seed's two deep links, and /docs/redoc. A 200 proves nothing here: Swagger UI 3 answered 200 and
then showed "Unable to render this definition" for OpenAPI 3.1. The screenshots in docs/screenshots/ come from here.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, Request, Response, Route, ViewportSize, async_playwright, expect

from sorapi.api.openapi import SEED_DOC_PAGES
from tests.stack import Api

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
MISSING = (
    f"{CHROMIUM} is missing: the docs browser tests drive the system Chromium. Install it with "
    "`apt-get install -y chromium` (.ci/run does so)."
)
WAIT_MS = 60_000  # two shared cores: parsing the bundles and rendering every operation can be slow

expect.set_options(timeout=WAIT_MS)


def test_the_system_chromium_is_installed() -> None:
    """Fails, never skips: without a browser the pages below would go untested."""
    assert CHROMIUM.exists(), MISSING


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """The system Chromium (Debian's `chromium` package); Playwright downloads nothing."""
    if not CHROMIUM.exists():
        pytest.fail(MISSING, pytrace=False)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        await chromium.close()


@dataclass
class Visit:
    page: Page
    problems: list[str] = field(default_factory=list)
    """Page errors, console errors, failed responses and any request that tried to leave the app."""


@asynccontextmanager
async def visit(browser: Browser, base_url: str, path: str, rendered: str) -> AsyncIterator[Visit]:
    """Open `path` with the network cut off from everything but the app; wait until the page says it rendered."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    seen = Visit(page)
    page.on("pageerror", lambda error: seen.problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: seen.problems.append(f"console error: {message.text}") if message.type == "error" else None,
    )
    page.on("response", lambda response: _note_failure(seen, response))

    async def offline(route: Route, request: Request) -> None:
        seen.problems.append(f"left the app (no internet in production): {request.url}")
        await route.abort()

    await context.route(lambda url: url.startswith(("http:", "https:")) and not url.startswith(base_url + "/"), offline)
    try:
        await page.goto(base_url + path)
        await expect(page.locator("body")).to_have_attribute("data-rendered", rendered)
        yield seen
    finally:
        await context.close()


def _note_failure(seen: Visit, response: Response) -> None:
    if response.status >= 400:
        seen.problems.append(f"{response.status} for {response.url}")


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(METHOD, path) of every operation in the OpenAPI document."""
    return sorted(
        (method.upper(), path) for path, item in document["paths"].items() for method in item if method in METHODS
    )


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / name)


async def test_docs_lists_every_operation_in_chromium(browser: Browser, api: Api) -> None:
    expected = operations((await api.http.get("/openapi.json")).json())
    async with visit(browser, api.base_url, "/docs", rendered="swagger-ui") as seen:
        page = seen.page
        await expect(page.locator(".opblock")).to_have_count(len(expected))
        await expect(page.locator(".information-container .title")).to_contain_text("SorAPI")
        await expect(page.get_by_text("Unable to render this definition")).to_have_count(0)
        shown = await page.locator(".opblock").evaluate_all(
            "blocks => blocks.map(b => [b.querySelector('.opblock-summary-method').textContent,"
            " b.querySelector('.opblock-summary-path').dataset.path])"
        )
        assert sorted(map(tuple, shown)) == expected
        await expect(page.locator(".opblock.is-open")).to_have_count(0)
        await screenshot(page, "docs-swagger.png")
    assert seen.problems == []


@pytest.mark.parametrize("endpoint", sorted(SEED_DOC_PAGES))
async def test_seed_doc_path_opens_its_operation_expanded_in_chromium(
    browser: Browser, api: Api, endpoint: str
) -> None:
    path, method = SEED_DOC_PAGES[endpoint]
    operation = (await api.http.get("/openapi.json")).json()["paths"][path][method]
    tag, operation_id = operation["tags"][0], operation["operationId"]
    async with visit(browser, api.base_url, f"/docs/api/{endpoint}", rendered="swagger-ui") as seen:
        page = seen.page
        assert page.url == f"{api.base_url}/docs#/{tag}/{operation_id}"
        block = page.locator(f'[id="operations-{tag}-{operation_id}"]')
        await expect(block).to_have_class(re.compile(r"\bis-open\b"))
        await expect(block.locator(".opblock-summary-path")).to_have_attribute("data-path", path)
        await expect(block.locator(".opblock-body")).to_be_visible()
        await expect(block.locator(".responses-wrapper")).to_contain_text("Responses")
        await expect(block.locator(".opblock-summary")).to_be_in_viewport()
        await expect(page.locator(".opblock.is-open")).to_have_count(1)
        if endpoint == "generate":
            await screenshot(page, "docs-generate.png")
    assert seen.problems == []


async def test_redoc_shows_every_operation_in_chromium(browser: Browser, api: Api) -> None:
    expected = operations((await api.http.get("/openapi.json")).json())
    async with visit(browser, api.base_url, "/docs/redoc", rendered="redoc") as seen:
        page = seen.page
        await expect(page.locator(".http-verb")).to_have_count(len(expected))
        shown = await page.locator(".http-verb").evaluate_all(
            "verbs => verbs.map(v => [v.textContent.toUpperCase(), v.nextElementSibling.textContent])"
        )
        assert sorted(map(tuple, shown)) == expected
        await expect(page.locator("[role=menuitem][data-item-id*='operation/']")).to_have_count(len(expected))
        await expect(page.locator("h1").first).to_contain_text("SorAPI")
        await screenshot(page, "docs-redoc.png")
    assert seen.problems == []
