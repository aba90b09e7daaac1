// LlmChat's chat page. It calls the API on its own origin, under the prefix
// it is served at (`…/chat` -> `…/sessions`), with the key the user pasted,
// kept in this browser's storage and sent only as `Authorization: Bearer`.
// A reply streams over fetch (Server-Sent Events); when the connection drops,
// or the page is reloaded mid-reply, it rejoins the reply from the last
// position it has, with `Last-Event-ID`, so no text is lost or repeated.
import { renderMarkdown } from "./markdown.js";

const KEY_ITEM = "llmchat.key";
const BASE = new URL(".", location.href);
const PAGE_SIZE = 20;
const $ = (id) => document.getElementById(id);

let apiKey = localStorage.getItem(KEY_ITEM) || sessionStorage.getItem(KEY_ITEM) || "";
let current = null; // the open session
let models = null; // names from GET /models
let active = null; // the reply being followed: {sessionId, replyId, lastId, thinking, content, view, controller}
const list = { cursor: null, done: false, loading: false, generation: 0 };
let olderCursor = null;

// ---- API -------------------------------------------------------------------

class Problem extends Error {
  constructor(title, detail, extra = {}) {
    super(`${title}: ${detail}`);
    Object.assign(this, { title, detail }, extra);
  }
}

function headers(extra = {}) {
  return { authorization: `Bearer ${apiKey}`, ...extra };
}

async function problemOf(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: the status says enough
  }
  const retryAfter = res.headers.get("retry-after");
  return new Problem(body?.title || `HTTP ${res.status}`, body?.detail || res.statusText || "the request failed", {
    status: res.status,
    code: body?.code,
    retryAfter,
  });
}

async function call(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "content-type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(new URL(path, BASE), init);
  if (!res.ok) throw await problemOf(res);
  return res.status === 204 ? null : res.json();
}

/** A fresh id (for client_message_id), also outside secure contexts. */
function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---- Errors ----------------------------------------------------------------

function showProblem(err) {
  if (err?.name === "AbortError") return;
  const problem = err instanceof Problem ? err : new Problem("Network error", err?.message || String(err));
  $("problem-title").textContent = problem.title;
  let detail = problem.detail;
  if (problem.retryAfter) detail += ` (try again in ${problem.retryAfter} s)`;
  $("problem-detail").textContent = detail;
  $("problem").hidden = false;
  if (problem.status === 401) openKeyDialog();
}

function clearProblem() {
  $("problem").hidden = true;
}

// Runs a background task (more sessions, a rejoined reply), showing its
// problem if it fails.
const reported = (task) => async (...args) => {
  try {
    await task(...args);
  } catch (err) {
    showProblem(err);
  }
};

// Runs an action of the user's: the last problem goes, a new one shows.
const guarded = (action) => {
  const run = reported(action);
  return (...args) => {
    clearProblem();
    return run(...args);
  };
};

// ---- The key ---------------------------------------------------------------

function openKeyDialog() {
  const dialog = $("key-dialog");
  if (dialog.open) return;
  $("key-input").value = "";
  $("key-forget").hidden = !apiKey;
  dialog.showModal();
  $("key-input").focus();
}

function storeKey(key, remember) {
  localStorage.removeItem(KEY_ITEM);
  sessionStorage.removeItem(KEY_ITEM);
  apiKey = key;
  if (key) (remember ? localStorage : sessionStorage).setItem(KEY_ITEM, key);
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const choice = event.submitter?.value;
  if (choice === "save") {
    const key = $("key-input").value.trim();
    if (!key) return;
    storeKey(key, $("key-remember").checked);
  } else if (choice === "forget") {
    storeKey("", false);
  }
  $("key-dialog").close();
  if (choice !== "cancel") start();
});

// ---- Sessions --------------------------------------------------------------

function sessionButton(session) {
  const li = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.id = session.id;
  const when = document.createElement("small");
  when.textContent = new Date(session.updated_at).toLocaleString();
  button.append(document.createTextNode(session.title || "Untitled"), when);
  if (current?.id === session.id) button.setAttribute("aria-current", "true");
  button.addEventListener("click", guarded(() => openSession(session.id)));
  li.append(button);
  return li;
}

function renderSessionItem(session, { top = false } = {}) {
  const old = $("session-list").querySelector(`button[data-id="${session.id}"]`)?.parentElement;
  const item = sessionButton(session);
  if (old && !top) old.replaceWith(item);
  else {
    old?.remove();
    if (top) $("session-list").prepend(item);
    else $("session-list").append(item);
  }
}

async function loadMoreSessions() {
  if (list.loading || list.done || !apiKey) return;
  list.loading = true;
  const generation = list.generation;
  $("sessions-status").textContent = "Loading…";
  try {
    const query = `sessions?limit=${PAGE_SIZE}${list.cursor ? `&cursor=${encodeURIComponent(list.cursor)}` : ""}`;
    const page = await call("GET", query);
    if (generation !== list.generation) return;
    for (const session of page.items) renderSessionItem(session);
    list.cursor = page.next_cursor;
    list.done = !page.next_cursor;
    $("sessions-status").textContent = list.done ? ($("session-list").children.length ? "" : "No sessions yet.") : "";
  } finally {
    list.loading = false;
  }
  // Fill the panel: more pages while its end is in view.
  nearEndOfSessions();
}

function nearEndOfSessions() {
  const panel = $("sessions");
  if (!list.done && panel.scrollTop + panel.clientHeight >= panel.scrollHeight - 150) reported(loadMoreSessions)();
}

function resetSessions() {
  list.generation++;
  Object.assign(list, { cursor: null, done: false, loading: false });
  $("session-list").replaceChildren();
}

$("sessions").addEventListener("scroll", nearEndOfSessions, { passive: true });

$("new-session").addEventListener(
  "click",
  guarded(async () => {
    const body = {};
    const model = localStorage.getItem("llmchat.model");
    if (model) body.model = model;
    let session;
    try {
      session = await call("POST", "sessions", body);
    } catch (err) {
      if (!body.model) throw err;
      session = await call("POST", "sessions", {}); // that model is gone: the default one
    }
    renderSessionItem(session, { top: true });
    await openSession(session.id);
    $("input").focus();
  }),
);

function showSessions(show) {
  $("app").classList.toggle("show-sessions", show);
  $("toggle-sessions").setAttribute("aria-expanded", String(show));
}
$("toggle-sessions").addEventListener("click", () => showSessions(!$("app").classList.contains("show-sessions")));

// ---- One session -----------------------------------------------------------

/** Opens session `id`. Nothing can be sent until it is shown: a send started
 *  while its history loads would see that load reset the view under it. */
async function openSession(id) {
  stopFollowing();
  $("input").disabled = true;
  $("send").disabled = true;
  try {
    await showSession(id);
  } finally {
    $("input").disabled = false;
    $("send").disabled = false;
  }
}

async function showSession(id) {
  const session = await call("GET", `sessions/${id}`);
  current = session;
  history.replaceState(null, "", `#${id}`);
  for (const b of $("session-list").querySelectorAll("button")) {
    if (b.dataset.id === id) b.setAttribute("aria-current", "true");
    else b.removeAttribute("aria-current");
  }
  showSessions(false);
  $("empty").hidden = true;
  $("chat").hidden = false;
  showTitle();
  $("system-prompt").value = session.system_prompt ?? "";
  await fillModels();
  $("messages").replaceChildren();
  olderCursor = null;
  await loadMessages();
  setBusy(false);
  // A reply still being generated (seen after a reload, or from another tab): rejoin it.
  const last = $("messages").lastElementChild?.message;
  if (last?.role === "assistant" && last.status === "streaming") {
    rejoin(session.id, last);
  }
}

function showTitle() {
  $("session-title").textContent = current.title || "Untitled";
  $("session-title").hidden = false;
  $("rename-form").hidden = true;
  $("rename").hidden = false;
}

async function loadMessages() {
  const query = `sessions/${current.id}/messages?order=desc&limit=50${olderCursor ? `&cursor=${encodeURIComponent(olderCursor)}` : ""}`;
  const page = await call("GET", query);
  const first = $("messages").firstElementChild;
  for (const message of page.items.reverse()) $("messages").insertBefore(messageView(message), first);
  olderCursor = page.next_cursor;
  $("older").hidden = !olderCursor;
  if (!first) scrollToEnd();
}

$("older").addEventListener("click", guarded(loadMessages));

async function fillModels() {
  if (!models) {
    try {
      models = (await call("GET", "models")).items.map((m) => m.name);
    } catch (err) {
      models = [];
      showProblem(err);
    }
  }
  const select = $("model");
  const names = models.includes(current.model) ? models : [current.model, ...models];
  select.replaceChildren(
    ...names.map((name) => {
      const option = document.createElement("option");
      option.value = option.textContent = name;
      option.selected = name === current.model;
      return option;
    }),
  );
}

$("settings-form").addEventListener(
  "submit",
  guarded(async (event) => {
    event.preventDefault();
    const prompt = $("system-prompt").value;
    current = await call("PATCH", `sessions/${current.id}`, { model: $("model").value, system_prompt: prompt.trim() ? prompt : null });
    localStorage.setItem("llmchat.model", current.model);
    renderSessionItem(current, { top: true });
    $("settings").open = false;
  }),
);

$("rename").addEventListener("click", () => {
  $("rename-input").value = current.title;
  $("session-title").hidden = true;
  $("rename").hidden = true;
  $("rename-form").hidden = false;
  $("rename-input").focus();
  $("rename-input").select();
});
$("rename-cancel").addEventListener("click", showTitle);
$("rename-input").addEventListener("keydown", (event) => {
  if (event.key === "Escape") showTitle();
});
$("rename-form").addEventListener(
  "submit",
  guarded(async (event) => {
    event.preventDefault();
    current = await call("PATCH", `sessions/${current.id}`, { title: $("rename-input").value.trim() || "Untitled" });
    renderSessionItem(current, { top: true });
    showTitle();
    $("rename").focus();
  }),
);

$("delete").addEventListener(
  "click",
  guarded(async () => {
    if (!confirm(`Delete "${current.title}" and all its messages?`)) return;
    stopFollowing();
    await call("DELETE", `sessions/${current.id}`);
    $("session-list").querySelector(`button[data-id="${current.id}"]`)?.parentElement.remove();
    current = null;
    history.replaceState(null, "", location.pathname + location.search);
    $("chat").hidden = true;
    $("empty").hidden = false;
    $("new-session").focus();
  }),
);

// ---- Messages --------------------------------------------------------------

function messageView(message) {
  const li = document.createElement("li");
  li.className = `msg ${message.role}`;
  const role = document.createElement("div");
  role.className = "role";
  role.textContent = message.role === "assistant" ? "Assistant" : "You";
  const thinking = document.createElement("details");
  thinking.className = "thinking";
  const summary = document.createElement("summary");
  summary.textContent = "Thinking";
  thinking.append(summary, document.createElement("div"));
  const body = document.createElement("div");
  body.className = "body";
  const meta = document.createElement("div");
  meta.className = "meta";
  li.append(role, thinking, body, meta);
  fillMessage(li, message);
  return li;
}

/** Shows `message` (or, while it streams, its text so far) in its view. */
function fillMessage(li, message) {
  li.message = message;
  li.dataset.id = message.id;
  li.dataset.status = message.status;
  const [, thinking, body, meta] = li.children;
  thinking.hidden = !message.thinking;
  thinking.lastChild.textContent = message.thinking || "";
  if (message.role === "assistant") body.replaceChildren(renderMarkdown(message.content));
  else body.textContent = message.content;
  meta.replaceChildren();
  if (message.role !== "assistant") return;
  const status = document.createElement("span");
  status.className = `status status-${message.status}`;
  status.textContent = message.status;
  meta.append(status);
  const u = message.usage;
  if (u) {
    let text = `${u.prompt_tokens} prompt + ${u.completion_tokens} completion tokens`;
    if (u.thinking_tokens) text += ` (${u.thinking_tokens} thinking)`;
    meta.append(span(text));
  }
  if (message.done_reason && message.done_reason !== "stop") meta.append(span(`ended: ${message.done_reason}`));
  if (message.error_code) meta.append(span(`error: ${message.error_code}`));
  if (message.context_truncated) meta.append(span("older messages left out"));
  if (message.model) meta.append(span(message.model));
}

function span(text) {
  const s = document.createElement("span");
  s.textContent = text;
  return s;
}

function scrollToEnd() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

function setBusy(busy) {
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  $("stop").disabled = false;
}

// ---- Sending and streaming -------------------------------------------------

$("input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});

$("composer").addEventListener(
  "submit",
  guarded(async (event) => {
    event.preventDefault();
    const content = $("input").value;
    if (!content.trim() || !current || active) return;
    $("input").value = "";
    try {
      await send(current.id, content);
    } catch (err) {
      if (!$("input").value) $("input").value = content; // not sent: keep it for another try
      throw err;
    }
  }),
);

async function send(sessionId, content) {
  const request = { content, client_message_id: newId() };
  const controller = new AbortController();
  active = { sessionId, clientMessageId: request.client_message_id, replyId: null, lastId: null, thinking: "", content: "", view: null, controller };
  setBusy(true);
  let res;
  try {
    // The same client_message_id makes a retry after a network error safe:
    // the API answers the original exchange instead of storing another.
    for (let attempt = 0; ; attempt++) {
      try {
        res = await fetch(new URL(`sessions/${sessionId}/messages/stream`, BASE), {
          method: "POST",
          headers: headers({ "content-type": "application/json" }),
          body: JSON.stringify(request),
          signal: controller.signal,
        });
        break;
      } catch (err) {
        if (err.name === "AbortError" || attempt >= 2) throw err;
        await pause(1000, controller.signal);
      }
    }
    if (!res.ok) throw await problemOf(res);
  } catch (err) {
    finishFollowing();
    throw err;
  }
  await follow(res);
}

/** Where a stored reply's text so far ends: positions count the bytes of
 *  its thinking, then of its text. */
function positionOf(message) {
  const bytes = (s) => new TextEncoder().encode(s || "").length;
  const position = message.content ? bytes(message.thinking) + bytes(message.content) : bytes(message.thinking);
  return position ? String(position) : null;
}

/** Takes up `message`, a reply as stored, in `state`: from the text it holds. */
function adopt(state, message, view) {
  Object.assign(state, {
    replyId: message.id,
    lastId: positionOf(message),
    thinking: message.thinking || "",
    content: message.content || "",
    message,
    view,
  });
}

/** Rejoins a reply the history shows as streaming, from the text it holds. */
function rejoin(sessionId, message) {
  active = { sessionId, controller: new AbortController() };
  adopt(active, message, $("messages").lastElementChild);
  setBusy(true);
  reported(() => follow(null))();
}

/** After a send's stream broke before it named its reply: the exchange, if
 *  it was stored, found by its client_message_id in the history. */
async function findSent(state) {
  const page = await call("GET", `sessions/${state.sessionId}/messages?order=desc&limit=10`);
  const user = page.items.find((m) => m.client_message_id === state.clientMessageId);
  const reply = user && page.items.find((m) => m.seq === user.seq + 1 && m.role === "assistant");
  if (!reply) return false;
  if (!$("messages").querySelector(`li[data-id="${user.id}"]`)) $("messages").append(messageView(user));
  const view = messageView(reply);
  $("messages").append(view);
  adopt(state, reply, view);
  return true;
}

/** Reads the reply's events from `res`, then rejoins it until its last event. */
async function follow(res) {
  const state = active;
  // Rejoining after a reload starts at once; after a drop, a pause first.
  let wait = res ? 1000 : 0;
  try {
    for (let failures = 0; ; ) {
      if (res) {
        try {
          const ended = await readEvents(res, state);
          if (ended) return;
        } catch (err) {
          if (err.name === "AbortError") return;
          // The connection broke: rejoin below.
        }
      }
      if (state !== active) return;
      if (!state.replyId && !(await findSent(state))) {
        throw new Problem("Connection lost", "the message did not reach the server; send it again");
      }
      if (state.message.status && state.message.status !== "streaming") {
        state.ended = true; // it ended while we were away, and is shown as stored
        return;
      }
      if (wait) markReconnecting(state, true);
      await pause(wait, state.controller.signal);
      wait = Math.min(1000 * 2 ** (failures + 1), 8000);
      try {
        const extra = state.lastId ? { "last-event-id": state.lastId } : {};
        res = await fetch(new URL(`sessions/${state.sessionId}/messages/${state.replyId}/stream`, BASE), {
          headers: headers(extra),
          signal: state.controller.signal,
        });
      } catch (err) {
        if (err.name === "AbortError") return;
        failures++;
        res = null;
        continue;
      }
      if (res.status === 204) {
        // It had ended and we saw its end: show it as stored.
        state.ended = true;
        await refreshReply(state);
        return;
      }
      if (!res.ok) throw await problemOf(res);
      failures = 0;
      markReconnecting(state, false);
    }
  } finally {
    if (state === active) finishFollowing();
  }
}

/** Reads one response's events; true once the reply's last event came. */
async function readEvents(res, state) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { id: null, type: null, data: [] };
      for (const line of block.split("\n")) {
        const colon = line.indexOf(":");
        if (colon === 0) continue; // a comment: keep-alive
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") event.id = value;
        else if (field === "event") event.type = value;
        else if (field === "data") event.data.push(value);
      }
      if (!event.type) continue;
      if (state !== active) return true;
      if (event.id !== null) state.lastId = event.id;
      if (handleEvent(state, event.type, JSON.parse(event.data.join("\n")))) return true;
    }
  }
}

/** Applies one event; true for the reply's last event. */
function handleEvent(state, type, data) {
  switch (type) {
    case "message.created": {
      state.replyId = data.reply_id;
      const user = $("messages").querySelector(`li[data-id="${data.user_message.id}"]`);
      if (!user) $("messages").append(messageView(data.user_message));
      const reply = {
        id: data.reply_id,
        role: "assistant",
        content: "",
        status: "streaming",
        model: current?.model,
      };
      state.message = reply;
      state.view = $("messages").querySelector(`li[data-id="${data.reply_id}"]`) || messageView(reply);
      $("messages").append(state.view);
      scrollToEnd();
      return false;
    }
    case "reply.thinking.delta":
      state.thinking += data.delta;
      redraw(state);
      return false;
    case "reply.delta":
      state.content += data.delta;
      redraw(state);
      return false;
    case "reply.completed":
    case "reply.cancelled":
      state.ended = true;
      fillMessage(state.view, data.reply);
      scrollToEnd();
      touchSession(state.sessionId);
      return true;
    case "error":
      state.ended = true;
      showProblem(new Problem(data.problem.title, data.problem.detail, { status: data.problem.status }));
      if (state.view) refreshReply(state);
      return true;
    default:
      return false;
  }
}

let redrawQueued = false;
function redraw(state) {
  if (redrawQueued) return;
  redrawQueued = true;
  requestAnimationFrame(() => {
    redrawQueued = false;
    if (!state.view || state.ended) return; // the last event drew it whole
    const box = $("messages");
    const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 40;
    fillMessage(state.view, { ...state.message, thinking: state.thinking, content: state.content, status: "streaming" });
    if (atEnd) scrollToEnd();
  });
}

function markReconnecting(state, on) {
  const meta = state.view?.querySelector(".meta");
  if (!meta) return;
  meta.querySelector(".reconnecting")?.remove();
  if (on) {
    const note = span("reconnecting…");
    note.className = "reconnecting";
    meta.append(note);
  }
}

/** Shows the reply as stored (after an error event, or an end seen before). */
async function refreshReply(state) {
  const page = await call("GET", `sessions/${state.sessionId}/messages?order=desc&limit=2`);
  const stored = page.items.find((m) => m.id === state.replyId);
  if (stored && state.view) fillMessage(state.view, stored);
}

/** Moves the session to the top of the list: it has new activity. */
async function touchSession(id) {
  try {
    renderSessionItem(await call("GET", `sessions/${id}`), { top: true });
  } catch {
    // the list catches up on the next load
  }
}

function finishFollowing() {
  active = null;
  setBusy(false);
}

/** Stops reading (not the reply: it goes on being generated and stored). */
function stopFollowing() {
  active?.controller.abort();
  finishFollowing();
}

function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new DOMException("stopped", "AbortError"));
    });
  });
}

$("stop").addEventListener(
  "click",
  guarded(async () => {
    const state = active;
    if (!state?.replyId) return;
    $("stop").disabled = true;
    // The stream then ends with reply.cancelled, the text so far kept.
    await call("POST", `sessions/${state.sessionId}/messages/${state.replyId}/cancel`);
  }),
);

// ---- Start -----------------------------------------------------------------

$("problem-close").addEventListener("click", clearProblem);
$("key-button").addEventListener("click", openKeyDialog);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && active && document.activeElement === $("input")) $("stop").click();
});

async function start() {
  resetSessions();
  stopFollowing();
  current = null;
  $("chat").hidden = true;
  $("empty").hidden = false;
  if (!apiKey) {
    openKeyDialog();
    return;
  }
  await loadMoreSessions();
  const id = location.hash.slice(1);
  if (/^[0-9a-f-]{36}$/i.test(id)) await openSession(id);
}

// The page's scripts ran (tests wait for this before using the page).
document.documentElement.dataset.ready = "true";
guarded(start)();
