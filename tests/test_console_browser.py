"""The web console (`/`, `/console/...`) as a person uses it, in the system Chromium, against the real stack.

Sign in, submit the seed's quickstart, watch it reach 100 %, play and download the MP4, find it again by its metadata;
every page passes axe-core with no serious or critical violation. Nothing may leave the app but the S3 store's presigned
URLs. The screenshots in docs/screenshots/console-*.png come from here.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, Request, Route, ViewportSize, async_playwright, expect

from sorapi.api.console import ASSETS, STATIC
from sorapi.store.engine import make_async_engine, make_sessionmaker
from tests.api_helpers import QUICK
from tests.stack import Stack, fresh_pg_database, start_stack
from tests.webhook_receiver import Receiver

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
VIEWPORT: ViewportSize = {"width": 1100, "height": 760}
WAIT_MS = 60_000
RENDER_MS = 240_000  # the quickstart renders 65 frames on the CPU of two shared cores
KEY_STORE = "sorapi.console.key"
QUICKSTART_PROMPT = "A neon-lit city skyline at dusk with flying cars and dynamic lighting"
SERIOUS = {"serious", "critical"}
PROGRESS_RECORDER = """
window.progressSeen = [];
document.addEventListener("DOMContentLoaded", () => {
  const bar = document.getElementById("task-progress");
  if (bar) new MutationObserver(() => window.progressSeen.push(Number(bar.value))).observe(bar, {attributes: true});
});
"""
"""Records every value the task page's progress bar shows."""

expect.set_options(timeout=WAIT_MS)


@dataclass
class Console:
    base_url: str
    s3_origin: str
    key: str


@dataclass
class Visit:
    page: Page
    problems: list[str] = field(default_factory=list)
    """Script errors and any request that tried to leave the app (and its S3 store)."""
    task_queries: list[str] = field(default_factory=list)
    """Query strings of the task list requests the page made."""
    console: list[str] = field(default_factory=list)
    """What the page logged."""
    streams: list[str] = field(default_factory=list)
    """Event streams the page opened."""


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """The system Chromium (Debian's `chromium` package); Playwright downloads nothing."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does so)", pytrace=False)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        await chromium.close()


@pytest.fixture(scope="module")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of this module's own (its own database and Temporal server) whose denoising steps take a second each.

    A render thus lasts long enough to be watched live, however fast the page loads. Its webhooks may go to plain HTTP
    on loopback.
    """
    with fresh_pg_database() as url:
        stack = start_stack(
            tmp_path_factory.mktemp("console-stack"),
            url,
            SORAPI_DEV_STEP_DELAY_S="1.0",
            SORAPI_WEBHOOK_ALLOW_HTTP="true",  # the webhook page's deliveries go to a receiver on loopback
        )
        try:
            yield stack
        finally:
            stack.stop()


@pytest.fixture(scope="module")
async def console(console_stack: Stack) -> Console:
    """A fresh Free account with ample credits and an admin-scope key (the console shows every page)."""
    from sorapi.store.accounts import create_account, issue_api_key

    engine = make_async_engine(console_stack.database_url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            account = await create_account(session, name="console", plan="free", credits=100_000)
            key = await issue_api_key(session, account.id, scopes="generate,read,admin")
    finally:
        await engine.dispose()
    return Console(console_stack.base_url, f"http://{console_stack.s3_endpoint}", key)


@asynccontextmanager
async def visit(browser: Browser, console: Console, *, signed_in: bool = True) -> AsyncIterator[Visit]:
    """A fresh browser context, cut off from everything but the app and its S3 store."""
    context = await browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    if signed_in:  # as if the key had been pasted in this tab
        await context.add_init_script(f"sessionStorage.setItem({KEY_STORE!r}, {console.key!r})")
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    seen = Visit(page)
    page.on("pageerror", lambda error: seen.problems.append(f"page error: {error}"))
    page.on("console", lambda message: seen.console.append(f"{message.type}: {message.text}"))

    def note(request: Request) -> None:
        if request.url.startswith(f"{console.base_url}/api/tasks?"):
            seen.task_queries.append(request.url.partition("?")[2])
        if request.url.endswith("/events"):
            seen.streams.append(request.url.removeprefix(console.base_url))

    page.on("request", note)
    await context.add_init_script(PROGRESS_RECORDER)

    async def offline(route: Route, request: Request) -> None:
        seen.problems.append(f"left the app: {request.url}")
        await route.abort()

    allowed = (console.base_url + "/", console.s3_origin + "/")
    await context.route(lambda url: url.startswith(("http:", "https:")) and not url.startswith(allowed), offline)
    try:
        yield seen
    finally:
        await context.close()


async def open_page(seen: Visit, console: Console, path: str, ready: str) -> Page:
    await seen.page.goto(console.base_url + path)
    await expect(seen.page.locator("body")).to_have_attribute("data-ready", ready)
    return seen.page


async def screenshot(page: Page, name: str, **options: Any) -> None:
    """The page from its top (small PNGs: the README shows them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=SCREENSHOTS / name, **options)


def test_the_system_chromium_is_installed() -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does so)"


def test_the_console_assets_ship_inside_the_package() -> None:
    """Served from the installed package (package data), never from a CDN or a Node build."""
    assert all((STATIC / name).is_file() for name in ASSETS)
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"sorapi.api" = ["console/static/*"]' in pyproject


async def test_the_console_pages_are_not_api_operations(console: Console) -> None:
    """They stay out of the OpenAPI document (schemathesis never sees them); /docs keeps working."""
    async with httpx.AsyncClient(base_url=console.base_url) as http:
        paths = (await http.get("/openapi.json")).json()["paths"]
        assert not [p for p in paths if p == "/" or p.startswith("/console")]
        for path in ("/", "/console", "/console/tasks", "/console/tasks/sora2abc", "/console/credits"):
            answer = await http.get(path)
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html"), path
            assert "script-src 'self'" in answer.headers["content-security-policy"]
        script = await http.get("/console/assets/console.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert (await http.get("/console/assets/secrets.txt")).status_code == 404
        assert (await http.get("/docs")).status_code == 200


async def test_sign_in_quickstart_progress_video_download_and_find_by_metadata(
    browser: Browser, console: Console
) -> None:
    order = f"console-{uuid.uuid4().hex[:8]}"
    async with visit(browser, console, signed_in=False) as seen:
        page = seen.page
        # Sign in: the console sends a stranger to the sign-in page, then back where they were going.
        await page.goto(console.base_url + "/")
        await expect(page).to_have_url(f"{console.base_url}/console/sign-in?next=%2F")
        await page.get_by_label("API key").fill("sk_sora2_not_a_key")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#err-key")).to_have_text("This key is invalid or revoked.")
        await page.get_by_label("API key").fill(console.key)
        await screenshot(page, "console-sign-in.png")
        await page.get_by_label("API key").press("Enter")  # the keyboard is enough
        await expect(page).to_have_url(f"{console.base_url}/")
        await expect(page.locator("body")).to_have_attribute("data-ready", "new")
        assert await page.evaluate(f"sessionStorage.getItem({KEY_STORE!r})") == console.key
        assert await page.evaluate(f"localStorage.getItem({KEY_STORE!r})") is None

        # The prompt form: a live quote, and the API's 422 details beside their fields.
        quote = page.locator("#quote")
        await expect(quote).to_contain_text("16 credits")  # the defaults: 8 s at 1280x720, 2 credits/s
        await page.get_by_label("Duration (seconds)").fill("99")
        duration_error = page.locator("#err-duration")
        await expect(duration_error).to_be_visible()
        await expect(duration_error).to_contain_text("20")
        await expect(page.get_by_label("Duration (seconds)")).to_have_attribute("aria-invalid", "true")
        await page.get_by_label("Duration (seconds)").fill("8")
        await expect(duration_error).to_be_hidden()
        await page.get_by_label("Prompt", exact=True).fill(QUICKSTART_PROMPT)
        await page.get_by_label("Aspect ratio").select_option("vertical")
        await page.get_by_label("Metadata").fill(f"order_id={order}")
        await expect(quote).to_contain_text("16 credits")
        await expect(quote).to_contain_text("720x1280")
        await screenshot(page, "console-new.png", full_page=True)
        await page.get_by_role("button", name="Generate").click()

        # The task page: live status and progress from the event stream, to 100.
        await expect(page).to_have_url(re.compile(re.escape(console.base_url) + r"/console/tasks/sora2[0-9a-z]+$"))
        task_id = page.url.rsplit("/", 1)[1]
        await expect(page.locator("#task-status")).to_have_text("succeeded", timeout=RENDER_MS)
        await expect(page.locator("#task-progress")).to_have_attribute("value", "100")
        await expect(page.locator("#task-percent")).to_have_text("100%")
        seen_progress = await page.evaluate("window.progressSeen")
        assert seen_progress[-1] == 100 and seen_progress == sorted(seen_progress), seen_progress
        assert any(0 < value < 100 for value in seen_progress), seen_progress  # it moved while we watched
        assert seen.streams == [f"/api/tasks/{task_id}/events"], (seen.streams, seen.console)  # live, not polled
        events = page.locator("#task-events li strong")
        await expect(events.filter(has_text="queued")).to_have_count(1)
        await expect(events.filter(has_text="running")).to_have_count(1)
        await expect(events.filter(has_text="succeeded")).to_have_count(1)
        await expect(events.filter(has_text="credits_captured")).to_have_count(1)
        await expect(page.get_by_role("button", name="Cancel")).to_be_disabled()
        await expect(page.get_by_role("button", name="Delete assets")).to_be_enabled()

        # The player plays the MP4.
        video = page.locator("#task-video")
        await video.evaluate("v => { v.muted = true; return v.play(); }")
        await page.wait_for_function(
            "() => { const v = document.getElementById('task-video'); return v.readyState >= 2 && v.duration > 0; }"
        )
        source = await video.evaluate("v => v.currentSrc")
        assert source.split("?")[0].endswith(".mp4"), source
        await expect(page.get_by_role("link", name="Download WEBM")).to_be_visible()
        await expect(page.get_by_role("link", name="Download Thumbnail (JPEG)")).to_be_visible()

        # The MP4 downloads (an ISO BMFF file: `ftyp` at byte 4).
        async with page.expect_download() as started:
            await page.get_by_role("link", name="Download MP4").click()
        download = await started.value
        assert download.suggested_filename == f"{task_id}.mp4"
        saved = Path(await download.path())
        assert saved.read_bytes()[4:8] == b"ftyp" and saved.stat().st_size > 1000
        await video.evaluate("v => v.pause()")
        await screenshot(page, "console-task.png")

        # The task list finds it again by its metadata.
        await page.get_by_role("link", name="Tasks", exact=True).click()
        await expect(page.locator("body")).to_have_attribute("data-ready", "tasks")
        await page.get_by_label("Metadata").fill(f"order_id={order}")
        await page.get_by_role("button", name="Filter").click()
        rows = page.locator("#task-rows tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-task", task_id)
        await expect(rows.first).to_contain_text(f"order_id={order}")
        assert any(f"metadata%5Border_id%5D={order}" in query for query in seen.task_queries), seen.task_queries
        await screenshot(page, "console-tasks.png")
    assert seen.problems == []


async def test_the_task_list_scrolls_through_cursor_pages(browser: Browser, console: Console) -> None:
    batch = f"scroll-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=console.base_url, headers={"Authorization": f"Bearer {console.key}"}) as http:
        created = [
            (await http.post("/api/generate", json={**QUICK, "metadata": {"batch": batch}})).json()["task_id"]
            for _ in range(5)
        ]
    async with visit(browser, console) as seen:
        page = await open_page(seen, console, f"/console/tasks?metadata=batch%3D{batch}&limit=2", "tasks")
        await page.mouse.wheel(0, 5000)
        rows = page.locator("#task-rows tr")
        await expect(rows).to_have_count(5)
        assert [await row.get_attribute("data-task") for row in await rows.all()] == created[::-1]  # newest first
        await expect(page.locator("#task-list-state")).to_have_text("5 tasks shown, all of them.")
        await expect(page.get_by_role("button", name="Load more")).to_be_hidden()
        assert len([q for q in seen.task_queries if "cursor=" in q]) == 2, seen.task_queries  # pages 2 and 3
        await page.get_by_label("Status").select_option("failed")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.locator("#task-list-state")).to_have_text("No task matches.")
    assert seen.problems == []


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


async def test_credits_webhooks_and_keys_pages(browser: Browser, console: Console, receiver: Receiver) -> None:
    async with httpx.AsyncClient(base_url=console.base_url, headers={"Authorization": f"Bearer {console.key}"}) as http:
        created = await http.post("/api/generate", json={**QUICK, "callback_url": receiver.url("/hooks/console")})
        hooked = created.json()["task_id"]
        await receiver.wait_for(lambda got: len(got) == 1)
        while not (await http.get(f"/api/tasks/{hooked}/webhooks")).json()["deliveries"]:  # recorded after the answer
            await asyncio.sleep(0.2)
    async with visit(browser, console) as seen:
        page = await open_page(seen, console, "/console/credits", "credits")
        figures = page.locator("#credit-figures")
        await expect(figures).to_contain_text("Balance")
        await expect(figures).to_contain_text("Held by tasks")
        await expect(page.locator("#ledger-rows tr").first).to_be_visible()
        await expect(page.locator("#ledger-rows")).to_contain_text("grant")
        credits = await page.evaluate(
            f"fetch('/api/credits', {{headers: {{Authorization: 'Bearer {console.key}'}}}}).then(r => r.json())"
        )
        caps = page.locator("#caps-card")
        if credits.get("spend_limits"):
            await expect(caps).to_be_visible()
        else:
            await expect(caps).to_be_hidden()
        await screenshot(page, "console-credits.png")

        page = await open_page(seen, console, "/console/webhooks", "webhooks")
        secret = page.locator("#secret-value")
        await expect(secret).to_be_hidden()
        reveal = page.get_by_role("button", name="Reveal secret")
        await reveal.focus()
        await page.keyboard.press("Enter")
        await expect(secret).to_have_text(re.compile(r"^whsec_\S+$"))
        await expect(page.get_by_role("button", name="Hide secret")).to_have_attribute("aria-expanded", "true")
        await page.get_by_label("Task id").fill(hooked)
        await page.get_by_role("button", name="Show deliveries").click()
        await expect(page.locator("#delivery-state")).to_have_text(f"1 attempt to {receiver.url('/hooks/console')}.")
        row = page.locator("#delivery-rows tr")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("task.succeeded")
        await expect(row).to_contain_text("delivered")
        await page.get_by_role("button", name="Redeliver the last event").click()
        await expect(page.locator("#redeliver-state")).to_be_visible()
        await expect(page.locator("#redeliver-state")).to_contain_text("Redelivery of task.succeeded queued")
        await receiver.wait_for(lambda got: len(got) == 2)  # the same event, sent again
        await screenshot(page, "console-webhooks.png", mask=[secret])

        page = await open_page(seen, console, "/console/keys", "keys")
        for scope in ("read", "generate", "admin"):
            await expect(page.locator(f'#scope-rows tr[data-scope="{scope}"] td').last).to_have_text("yes")
        await expect(page.locator('#scope-rows tr[data-scope="audit"] td').last).to_have_text("yes (not on this plan)")
        await screenshot(page, "console-keys.png")
    assert seen.problems == []


PAGES = {
    "sign-in": ("/console/sign-in", "sign-in", "#f-key"),
    "new": ("/console", "new", "#quote[data-credits]"),
    "tasks": ("/console/tasks", "tasks", "#task-list-state:not(:empty)"),
    "task": ("/console/tasks/{task}", "task", "#task-request dd"),
    "credits": ("/console/credits", "credits", "#ledger-rows tr"),
    "webhooks": ("/console/webhooks", "webhooks", "#secret-reveal"),
    "keys": ("/console/keys", "keys", '#scope-rows tr[data-scope="admin"]'),
}


async def test_every_console_page_passes_axe_core(browser: Browser, console: Console) -> None:
    """axe-core finds no serious or critical violation: labels, names, contrast, landmarks, ARIA.

    It is vendored by the axe-playwright-python wheel and injected into the page: no network.
    """
    async with httpx.AsyncClient(base_url=console.base_url, headers={"Authorization": f"Bearer {console.key}"}) as http:
        task = (await http.post("/api/generate", json=QUICK)).json()["task_id"]
    axe = Axe()
    found: dict[str, list[str]] = {}
    async with visit(browser, console) as seen:
        for name, (path, ready, loaded) in PAGES.items():
            page = await open_page(seen, console, path.format(task=task), ready)
            await expect(page.locator(loaded).first).to_be_attached()
            results = await axe.run(page)
            found[name] = [
                f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
                for v in results.response["violations"]
                if v["impact"] in SERIOUS
            ]
    assert found == {name: [] for name in PAGES}, found
    assert seen.problems == []
