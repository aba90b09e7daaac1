"""Fixtures of the browser tests (scripts/browser-tests.sh runs them).

A headless Chromium (Debian's package, at LLMCHAT_CHROMIUM) driven by
Playwright opens the chat page of a running local stack (STACK_BASE) with a
key of a fresh owner (STACK_KEY). The model is the scripted Ollama's: a short
reply, 50 tokens 100 ms apart for a message holding `[slow]`, or the message
itself for one holding `[echo]`. Every test leaves a screenshot of its page
in LLMCHAT_BROWSER_ARTIFACTS.
"""

import dataclasses
import os
import pathlib
import re
import socket
import threading
import urllib.parse

import pytest
from playwright.sync_api import Page, expect, sync_playwright

# The flags Chromium needs here: run as root without its sandbox, and make
# no connection of its own (this machine's network is closed).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Longest wait for anything the page shows, in milliseconds.
TIMEOUT_MS = 20_000


@dataclasses.dataclass(frozen=True)
class Stack:
    base: str
    key: str
    cors_origin: str
    artifacts: pathlib.Path


@pytest.fixture(scope="session")
def stack() -> Stack:
    names = ("STACK_BASE", "STACK_KEY", "LLMCHAT_CHROMIUM", "LLMCHAT_CORS_TEST_ORIGIN", "LLMCHAT_BROWSER_ARTIFACTS")
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.exit(f"{', '.join(missing)} not set: run these through scripts/browser-tests.sh", returncode=2)
    artifacts = pathlib.Path(os.environ["LLMCHAT_BROWSER_ARTIFACTS"])
    artifacts.mkdir(parents=True, exist_ok=True)
    return Stack(os.environ["STACK_BASE"], os.environ["STACK_KEY"], os.environ["LLMCHAT_CORS_TEST_ORIGIN"], artifacts)


@pytest.fixture(scope="session")
def browser():
    expect.set_options(timeout=TIMEOUT_MS)
    # headless=True adds --headless; Playwright starts the browser on a
    # fresh, empty profile directory of its own and removes it after.
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ["LLMCHAT_CHROMIUM"], args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


def screenshot_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::")[-1])


@pytest.fixture
def context(browser, request):
    """A fresh browser context (storage, cache) in the system's light theme,
    or in another setting a test asks for with @pytest.mark.parametrize."""
    options = {"viewport": {"width": 1200, "height": 800}, **(getattr(request, "param", None) or {})}
    ctx = browser.new_context(**options)
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context, stack: Stack, request) -> Page:
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Shown with a failure: requests that failed, or were answered with an error.
    page.on("requestfailed", lambda r: print(f"request failed: {r.method} {r.url}: {r.failure}"))
    page.on("response", lambda r: r.status >= 500 and print(f"response {r.status}: {r.request.method} {r.url}"))
    yield page
    page.screenshot(path=str(stack.artifacts / f"{screenshot_name(request.node.nodeid)}.png"), full_page=True)
    assert not errors, f"the page threw: {errors}"


def load(page: Page, url: str | None = None) -> None:
    """Loads `url` (or reloads the page) and waits until the page's scripts
    ran (they mark the document ready). Through the page's own means: its
    Content-Security-Policy lets no test code be evaluated in it."""
    if url is None:
        page.reload()
    else:
        page.goto(url)
    expect(page.locator("html")).to_have_attribute("data-ready", "true", timeout=5000)


def open_chat(page: Page, stack: Stack, fragment: str = "") -> None:
    """Opens /chat and pastes the key, with the keyboard alone."""
    load(page, f"{stack.base}/chat{fragment}")
    expect(page.locator("#key-dialog")).to_be_visible()
    page.locator("#key-input").press_sequentially(stack.key[:4])
    page.locator("#key-input").fill(stack.key)
    page.keyboard.press("Enter")
    expect(page.locator("#key-dialog")).to_be_hidden()


def new_session(page: Page) -> str:
    """Starts a new chat; returns its id (the page's fragment)."""
    before = page.url
    page.locator("#new-session").click()
    expect(page.locator("#chat")).to_be_visible()
    page.wait_for_url(lambda url: url != before and len(url.partition("#")[2]) > 0)
    return page.url.partition("#")[2]


def send(page: Page, text: str) -> None:
    """Types a message and sends it with Enter."""
    box = page.locator("#input")
    box.fill(text)
    box.press("Enter")


def last_reply(page: Page):
    return page.locator("#messages li.assistant").last


class CuttableRelay:
    """A TCP relay in front of the stack that can cut every connection open
    through it at once, as a dropped network would. A page loaded through it
    talks to the API through it too (the API is the page's own origin)."""

    def __init__(self, base: str):
        self.target = ("127.0.0.1", urllib.parse.urlsplit(base).port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.open = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self.lock:
                self.open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def cut(self):
        with self.lock:
            cut, self.open = self.open, set()
        for s in cut:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.listener.close()
        self.cut()


@pytest.fixture
def relay(stack: Stack):
    relay = CuttableRelay(stack.base)
    yield relay
    relay.close()
