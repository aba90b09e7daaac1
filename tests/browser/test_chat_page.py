"""The chat page (/chat) in a real browser, as a user would use it: key,
sessions, streaming, stop, reload mid-reply, rename, delete, Markdown, markup
that must stay inert, errors, the keyboard alone, a phone-sized dark screen;
and requests to the API from other origins."""

import dataclasses
import http.server
import re
import threading
import urllib.parse

import pytest
from playwright.sync_api import Page, expect

from conftest import Stack, last_reply, load, new_session, open_chat, send

SLOW_WORDS = " ".join(f"word{i}" for i in range(50))


def api(page: Page, stack: Stack, method: str, path: str, body=None):
    """Calls the API as the test (not the page), with the key."""
    response = page.request.fetch(
        f"{stack.base}{path}", method=method, data=body, headers={"authorization": f"Bearer {stack.key}"}
    )
    return response


def words(text: str) -> str:
    return " ".join(text.split())


def test_a_reply_streams_token_by_token_with_its_status_and_usage(page: Page, stack: Stack):
    open_chat(page, stack)
    session = new_session(page)
    current = page.locator(f'#session-list button[data-id="{session}"]')
    expect(current).to_have_attribute("aria-current", "true")
    expect(page.locator("#session-list button").first).to_have_attribute("data-id", session)

    send(page, "[slow] Count for me")
    reply = last_reply(page)
    # Tokens show while the reply is still being generated.
    expect(reply.locator(".body")).to_contain_text("word3")
    expect(reply.locator(".status")).to_have_text("streaming")
    assert "word49" not in reply.locator(".body").inner_text()
    expect(page.get_by_role("button", name="Stop")).to_be_visible()

    expect(reply.locator(".status")).to_have_text("complete", timeout=15_000)
    assert words(reply.locator(".body").inner_text()) == SLOW_WORDS
    expect(reply.locator(".meta")).to_contain_text(re.compile(r"\d+ prompt \+ \d+ completion tokens"))
    expect(page.locator("#messages li.user").last).to_have_text(re.compile("Count for me"))
    expect(page.get_by_role("button", name="Send")).to_be_visible()

    send(page, "Hello")
    expect(last_reply(page).locator(".body")).to_have_text("This is a scripted reply.")
    expect(last_reply(page).locator(".status")).to_have_text("complete")


def test_stop_ends_a_reply_mid_way_and_keeps_its_text(page: Page, stack: Stack):
    open_chat(page, stack)
    session = new_session(page)
    send(page, "[slow] Go on and on")
    reply = last_reply(page)
    expect(reply.locator(".body")).to_contain_text("word2")
    page.get_by_role("button", name="Stop").click()
    expect(reply.locator(".status")).to_have_text("cancelled")
    shown = words(reply.locator(".body").inner_text())
    assert shown.startswith("word0 word1 word2") and "word49" not in shown, shown

    stored = api(page, stack, "GET", f"/sessions/{session}/messages?order=desc&limit=1").json()["items"][0]
    assert stored["status"] == "cancelled"
    assert words(stored["content"]) == shown
    expect(page.get_by_role("button", name="Send")).to_be_visible()


def test_a_reload_mid_reply_rejoins_it_without_a_gap_or_a_repeat(page: Page, stack: Stack):
    open_chat(page, stack)
    session = new_session(page)
    send(page, "[slow] Keep going")
    expect(last_reply(page).locator(".body")).to_contain_text("word5")
    resumed = []
    page.on("request", lambda r: resumed.append(r.headers.get("last-event-id")) if r.url.endswith("/stream") and r.method == "GET" else None)

    load(page)
    # The key is remembered, the session reopened from the page's address.
    expect(page.locator("#key-dialog")).to_be_hidden()
    reply = last_reply(page)
    expect(reply.locator(".status")).to_have_text("streaming")
    expect(reply.locator(".status")).to_have_text("complete", timeout=15_000)
    assert words(reply.locator(".body").inner_text()) == SLOW_WORDS
    assert resumed and resumed[0] is not None and int(resumed[0]) > 0, f"rejoined from a position: {resumed}"
    assert page.evaluate("location.hash") == f"#{session}"


def test_a_dropped_connection_is_rejoined_from_the_last_event(page: Page, stack: Stack, relay):
    # The page and its API calls go through a relay that drops them all at once.
    open_chat(page, dataclasses.replace(stack, base=relay.base))
    new_session(page)
    resumed = []
    page.on("request", lambda r: resumed.append(r.headers.get("last-event-id")) if r.url.endswith("/stream") and r.method == "GET" else None)
    send(page, "[slow] Through a tunnel")
    reply = last_reply(page)
    expect(reply.locator(".body")).to_contain_text("word4")
    relay.cut()
    expect(reply.locator(".meta")).to_contain_text("reconnecting")
    expect(reply.locator(".status")).to_have_text("complete", timeout=20_000)
    assert words(reply.locator(".body").inner_text()) == SLOW_WORDS
    assert any(r and int(r) > 0 for r in resumed), f"rejoined with Last-Event-ID: {resumed}"


def test_rename_and_delete_a_session(page: Page, stack: Stack):
    open_chat(page, stack)
    session = new_session(page)
    page.get_by_role("button", name="Rename").click()
    title = page.get_by_label("Title")
    expect(title).to_be_focused()
    title.fill("Trip to <b>Lisbon</b>")
    title.press("Enter")
    expect(page.locator("#session-title")).to_have_text("Trip to <b>Lisbon</b>")
    item = page.locator(f'#session-list button[data-id="{session}"]')
    expect(item).to_contain_text("Trip to <b>Lisbon</b>")
    assert api(page, stack, "GET", f"/sessions/{session}").json()["title"] == "Trip to <b>Lisbon</b>"

    load(page)
    expect(page.locator("#session-title")).to_have_text("Trip to <b>Lisbon</b>")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete").click()
    expect(item).to_have_count(0)
    expect(page.locator("#chat")).to_be_hidden()
    assert api(page, stack, "GET", f"/sessions/{session}").status == 404


XSS = (
    '<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> '
    '<a href="javascript:window.__xss=3">a</a> [click](javascript:window.__xss=4) '
    '`<svg onload=window.__xss=5>` **bold** [echo]'
)


def test_markup_in_a_message_and_a_reply_stays_inert(page: Page, stack: Stack):
    open_chat(page, stack)
    new_session(page)
    send(page, XSS)
    reply = last_reply(page)
    expect(reply.locator(".status")).to_have_text("complete")
    user = page.locator("#messages li.user").last
    expect(user.locator(".body")).to_have_text(XSS)
    # The reply is the message back: its markup shows as text, its Markdown renders.
    expect(reply.locator(".body")).to_contain_text('<img src=x onerror="window.__xss=1">')
    expect(reply.locator(".body")).to_contain_text("<script>window.__xss=2</script>")
    expect(reply.locator(".body strong")).to_have_text("bold")
    expect(reply.locator(".body code")).to_have_text("<svg onload=window.__xss=5>")
    messages = page.locator("#messages")
    for tag in ["img", "script", "svg", "iframe", "a"]:
        expect(messages.locator(tag)).to_have_count(0)
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None


MARKDOWN = """[echo] ## Three sights

1. **Belém** tower
2. *Alfama*, with `trams`
   - tram 28
   - tram 12

| sight | cost |
|:--|--:|
| Tower | 8 € |
| Castle | 15 € |

```html
<b>not bold</b>
```

> Plan for hills. See https://example.org/lisbon."""


@pytest.mark.parametrize("context", [{"color_scheme": "light"}], indirect=True)
def test_replies_render_markdown(page: Page, stack: Stack):
    open_chat(page, stack)
    new_session(page)
    page.get_by_role("button", name="Rename").click()
    page.get_by_label("Title").fill("Lisbon")
    page.get_by_label("Title").press("Enter")
    send(page, MARKDOWN)
    body = last_reply(page).locator(".body")
    expect(last_reply(page).locator(".status")).to_have_text("complete")
    expect(body.locator("h4")).to_have_text("Three sights")
    expect(body.locator("ol > li")).to_have_count(2)
    expect(body.locator("ol li ul > li")).to_have_count(2)
    expect(body.locator("ol strong")).to_have_text("Belém")
    expect(body.locator("li code")).to_have_text("trams")
    expect(body.locator("table th")).to_have_text(["sight", "cost"])
    expect(body.locator("table tbody tr")).to_have_count(2)
    expect(body.locator("td.align-right").first).to_have_text("8 €")
    expect(body.locator("pre code")).to_have_text("<b>not bold</b>")
    expect(body.locator("pre b")).to_have_count(0)
    link = body.locator("blockquote a")
    expect(link).to_have_attribute("href", "https://example.org/lisbon")
    expect(link).to_have_attribute("rel", re.compile("noopener"))
    page.screenshot(path=str(stack.artifacts / "chat-light.png"))


def test_sessions_list_newest_first_and_load_as_you_scroll(page: Page, stack: Stack):
    made = []
    for i in range(45):
        response = api(page, stack, "POST", "/sessions", {"title": f"scroll {i:02}"})
        assert response.status == 201, response.text()
        made.append(response.json()["id"])
    open_chat(page, stack)
    items = page.locator("#session-list button")
    expect(items.first).to_have_text(re.compile("^scroll 44"))
    assert items.count() < 45, "one page at first"
    panel = page.locator("#sessions")
    for _ in range(20):
        if items.count() >= 45:
            break
        panel.hover()
        page.mouse.wheel(0, 3000)
        page.wait_for_timeout(200)
    ids = [b.get_attribute("data-id") for b in items.all()]
    positions = [ids.index(s) for s in reversed(made)]
    assert positions == sorted(positions), "newest first"


def test_model_and_system_prompt(page: Page, stack: Stack):
    open_chat(page, stack)
    session = new_session(page)
    page.get_by_text("Model and system prompt").click()
    model = page.get_by_label("Model")
    models = api(page, stack, "GET", "/models").json()["items"]
    name = models[0]["name"]
    assert "/" in name
    model.select_option(name)
    page.get_by_label("System prompt").fill("Answer briefly.")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings")).not_to_have_attribute("open", "")
    stored = api(page, stack, "GET", f"/sessions/{session}").json()
    assert (stored["model"], stored["system_prompt"]) == (name, "Answer briefly.")
    send(page, "Hi")
    expect(last_reply(page).locator(".status")).to_have_text("complete")
    expect(last_reply(page).locator(".meta")).to_contain_text(name)


def test_problems_show_their_title_and_detail(page: Page, stack: Stack):
    missing = api(page, stack, "POST", "/sessions", {"model": "missing-model:1b"}).json()["id"]
    open_chat(page, stack, f"#{missing}")
    expect(page.locator("#chat")).to_be_visible()
    send(page, "Anyone there?")
    problem = page.get_by_role("alert")
    expect(problem).to_be_visible()
    expect(page.locator("#problem-title")).not_to_be_empty()
    expect(page.locator("#problem-detail")).to_contain_text("missing-model:1b")
    page.get_by_role("button", name="Dismiss the error").click()
    expect(problem).to_be_hidden()

    # A key the API refuses: its problem, and the key dialog again.
    page.evaluate("localStorage.setItem('llmchat.key', 'lck_nobody_nothing')")
    load(page)
    expect(page.locator("#problem-title")).to_have_text("Unauthorized")
    expect(page.locator("#problem-detail")).not_to_be_empty()
    expect(page.locator("#key-dialog")).to_be_visible()


def test_the_keyboard_alone_is_enough(page: Page, stack: Stack):
    open_chat(page, stack)
    for _ in range(10):
        if page.evaluate("document.activeElement.id") == "new-session":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "new-session"
    page.keyboard.press("Enter")
    expect(page.locator("#input")).to_be_focused()
    page.keyboard.type("Hello from the keyboard")
    page.keyboard.press("Enter")
    expect(last_reply(page).locator(".status")).to_have_text("complete")
    # Shift+Enter is a new line, not a send.
    page.keyboard.type("one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("two")
    assert page.locator("#input").input_value() == "one\ntwo"


@pytest.mark.parametrize("context", [{"viewport": {"width": 390, "height": 800}, "color_scheme": "dark", "is_mobile": True, "has_touch": True}], indirect=True)
def test_a_phone_sized_screen_in_the_dark_theme(page: Page, stack: Stack):
    open_chat(page, stack)
    expect(page.locator("#sessions")).to_be_hidden()
    page.get_by_role("button", name="Sessions").click()
    expect(page.locator("#sessions")).to_be_visible()
    new_session(page)
    expect(page.locator("#sessions")).to_be_hidden()
    send(page, "Hello, small screen")
    expect(last_reply(page).locator(".status")).to_have_text("complete")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "nothing wider than the screen"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(21, 23, 26)", background
    page.screenshot(path=str(stack.artifacts / "chat-phone-dark.png"))


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!doctype html><title>another origin</title><p>another origin"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def other_origin(stack: Stack):
    """A page on the allowed origin (http://localhost:P), also reachable as
    http://127.0.0.1:P, which is another origin and not allowed."""
    port = urllib.parse.urlsplit(stack.cors_origin).port
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield port
    server.shutdown()
    server.server_close()


CROSS_ORIGIN_CALLS = """async ([base, key]) => {
  const auth = { authorization: `Bearer ${key}` };
  const created = await fetch(`${base}/sessions`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ title: "from another origin" }),
  });
  const session = await created.json();
  const renamed = await fetch(`${base}/sessions/${session.id}`, {
    method: "PATCH",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ title: "renamed from another origin" }),
  });
  const stream = await fetch(`${base}/sessions/${session.id}/messages/stream`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ content: "Hi" }),
  });
  const events = await stream.text();
  const replyId = /"reply_id":"([^"]+)"/.exec(events)[1];
  const rejoined = await fetch(`${base}/sessions/${session.id}/messages/${replyId}/stream`, {
    headers: { ...auth, "last-event-id": "3" },
  });
  const missing = await fetch(`${base}/sessions/00000000-0000-0000-0000-000000000000`, { headers: auth });
  return {
    created: created.status,
    renamed: renamed.status,
    stream: stream.status,
    completed: events.includes("event: reply.completed"),
    rejoined: rejoined.status,
    rejoinedText: await rejoined.text(),
    missing: missing.status,
    requestId: missing.headers.get("x-request-id"),
    problemId: (await missing.json()).request_id,
  };
}"""


def test_another_origin_passes_the_preflight_and_a_refused_one_does_not(page: Page, stack: Stack, other_origin: int):
    page.goto(f"{stack.cors_origin}/")
    result = page.evaluate(CROSS_ORIGIN_CALLS, [stack.base, stack.key])
    assert (result["created"], result["renamed"], result["stream"], result["missing"]) == (201, 200, 200, 404), result
    assert result["completed"], result
    assert result["rejoined"] in (200, 204), result
    assert result["requestId"] and result["requestId"] == result["problemId"], "the request id header is readable"

    # The same page on 127.0.0.1 is another origin, not in LLMCHAT_CORS_ORIGINS.
    page.goto(f"http://127.0.0.1:{other_origin}/")
    refused = page.evaluate(
        """async ([base, key]) => {
          try {
            await fetch(`${base}/sessions`, { headers: { authorization: `Bearer ${key}` } });
            return "allowed";
          } catch (err) {
            return err.name;
          }
        }""",
        [stack.base, stack.key],
    )
    assert refused == "TypeError", refused
