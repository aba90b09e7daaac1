"""Checks of `make e2e-real` against a running stack and a real model on one
backend, then the overhead figure: time to first token and tokens per second
through LlmChat's stream versus straight from the backend's server (Ollama's
`/api/chat`, or an OpenAI-compatible `/chat/completions`), same prompt,
median of RUNS.

usage: e2e_real.py BASE_URL API_KEY SERVER_URL DIALECT BACKEND/MODEL RUNS
  DIALECT: ollama (SERVER_URL is Ollama's base) or openai (SERVER_URL ends in /v1)
"""

import json
import statistics
import sys
import time
import urllib.request

BASE, KEY, SERVER, DIALECT, MODEL, RUNS = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
# The server knows the model by its own name, without LlmChat's backend prefix.
SERVER_MODEL = MODEL.split("/", 1)[1]
# Bounded, repeatable replies: a small model on a CPU can ramble.
OPTIONS = {"num_predict": 48, "temperature": 0, "seed": 7}
PROMPT = "Name three colours of the rainbow."
failures = []


def check(ok, what):
    print(("  ok    " if ok else "  FAIL  ") + what)
    if not ok:
        failures.append(what)


def request(method, path, body=None, base=BASE, auth=True):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    if auth:
        req.add_header("authorization", f"Bearer {KEY}")
    return urllib.request.urlopen(req, timeout=300)


def sse_events(response):
    """(seconds since start, event name, data) for each event, as they arrive."""
    started = time.perf_counter()
    block = []
    for raw in response:
        line = raw.decode().rstrip("\n")
        if line:
            block.append(line)
            continue
        fields = dict(l.split(": ", 1) for l in block if ": " in l and not l.startswith(":"))
        block = []
        if "event" in fields:
            yield time.perf_counter() - started, fields["event"], json.loads(fields["data"])


def new_session():
    with request("POST", "/sessions", {"title": "e2e-real", "model": MODEL, "options": OPTIONS}) as r:
        return json.load(r)["id"]


def llmchat_stream(session):
    t0 = time.perf_counter()
    with request("POST", f"/sessions/{session}/messages/stream", {"content": PROMPT}) as r:
        events = [(t0 + t, name, data) for t, name, data in sse_events(r)]
    deltas = [t for t, name, _ in events if name == "reply.delta"]
    last = events[-1]
    return events, deltas, t0, last


def server_stream():
    """(start, arrival time of each piece of text) straight from the server."""
    messages = [{"role": "user", "content": PROMPT}]
    t0 = time.perf_counter()
    times = []
    if DIALECT == "ollama":
        body = {"model": SERVER_MODEL, "messages": messages, "stream": True, "options": OPTIONS}
        with request("POST", "/api/chat", body, base=SERVER, auth=False) as r:
            for raw in r:
                if json.loads(raw).get("message", {}).get("content"):
                    times.append(time.perf_counter())
        return t0, times
    body = {"model": SERVER_MODEL, "messages": messages, "stream": True, "max_tokens": OPTIONS["num_predict"],
            "temperature": OPTIONS["temperature"], "seed": OPTIONS["seed"]}
    with request("POST", "/chat/completions", body, base=SERVER, auth=False) as r:
        for raw in r:
            line = raw.decode().strip()
            if line.startswith("data: ") and line != "data: [DONE]":
                choices = json.loads(line[6:]).get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    times.append(time.perf_counter())
    return t0, times


print(f"e2e-real: {BASE} with {MODEL}, served by {SERVER} ({DIALECT})")

# A fact, asked plainly: the model answers it, not just anything.
with request("POST", "/sessions", {"title": "fact", "model": MODEL, "options": {"temperature": 0, "num_predict": 32}}) as r:
    fact_session = json.load(r)["id"]
with request("POST", f"/sessions/{fact_session}/messages", {"content": "What is the capital of France?"}) as r:
    fact = json.load(r)["reply"]
check("paris" in fact["content"].lower(), f"asked the capital of France, it says Paris: {fact['content'].strip()[:80]!r}")

session = new_session()

with request("POST", f"/sessions/{session}/messages", {"content": PROMPT}) as r:
    status, exchange = r.status, json.load(r)
reply = exchange["reply"]
check(status == 201, "buffered send answers 201")
check(reply["status"] == "complete" and reply["content"].strip() != "", "the buffered reply is complete and not empty")
check(reply["usage"]["completion_tokens"] > 0, "the reply carries usage")
if DIALECT == "ollama":
    # An OpenAI-compatible server may stream no usage (llama.cpp's does not): the prompt's size is then unknown.
    check(reply["usage"]["prompt_tokens"] > 0, "the reply counts the prompt's tokens")
check(reply["done_reason"] in ("stop", "length"), f"done_reason is {reply['done_reason']!r}")

events, deltas, _, last = llmchat_stream(session)
names = [name for _, name, _ in events]
check(names[0] == "message.created", "the stream opens with message.created")
check(len(deltas) >= 2, f"tokens arrive one by one ({len(deltas)} deltas)")
check(names.count("reply.completed") == 1 and names[-1] == "reply.completed", "the stream ends with one reply.completed")
streamed = "".join(d["delta"] for _, n, d in events if n == "reply.delta")
check(last[2]["reply"]["content"] == streamed, "the stored reply is the streamed text")

with request("GET", f"/sessions/{session}/messages?limit=100") as r:
    history = json.load(r)["items"]
check([m["seq"] for m in history] == [1, 2, 3, 4], "history holds the four messages in order")
check(all(m["status"] == "complete" for m in history), "every message is complete")
check(all(m["usage"] and m["usage"]["completion_tokens"] > 0 for m in history if m["role"] == "assistant"), "replies keep usage")

print(f"\noverhead: {RUNS} runs each, prompt {PROMPT!r}, options {OPTIONS}")
ttft_llmchat, tps_llmchat, ttft_server, tps_server = [], [], [], []



def measure_server():
    t0, times = server_stream()
    ttft_server.append((times[0] - t0) * 1000)
    if len(times) > 1:
        tps_server.append((len(times) - 1) / (times[-1] - times[0]))


def measure_llmchat():
    _, deltas, t0, _ = llmchat_stream(new_session())
    ttft_llmchat.append((deltas[0] - t0) * 1000)
    if len(deltas) > 1:
        tps_llmchat.append((len(deltas) - 1) / (deltas[-1] - deltas[0]))


# A server reuses the cached prompt of the request just before: alternate which
# path goes first so neither always gets the warm cache.
for run in range(RUNS):
    for measure in (measure_server, measure_llmchat) if run % 2 == 0 else (measure_llmchat, measure_server):
        measure()

med = statistics.median
print("\n| path | time to first token (median) | tokens per second (median) |")
print("|---|---|---|")
direct = "Ollama `/api/chat`" if DIALECT == "ollama" else "the server's `/v1/chat/completions`"
print(f"| straight from {direct} | {med(ttft_server):.0f} ms | {med(tps_server):.1f} |")
print(f"| through LlmChat `/messages/stream` | {med(ttft_llmchat):.0f} ms | {med(tps_llmchat):.1f} |")
print(f"\nLlmChat adds {med(ttft_llmchat) - med(ttft_server):.0f} ms to the first token (median).")

if failures:
    print(f"\n{len(failures)} check(s) failed")
    sys.exit(1)
print("\nall checks passed")
