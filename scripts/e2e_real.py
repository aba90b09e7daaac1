"""Checks of `make e2e-real` against a running stack and a real model, then
the overhead figure: time to first token and tokens per second through
LlmChat's stream versus straight from Ollama, same prompt, median of RUNS.

usage: e2e_real.py BASE_URL API_KEY OLLAMA_URL MODEL RUNS
"""

import json
import statistics
import sys
import time
import urllib.request

BASE, KEY, OLLAMA, MODEL, RUNS = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
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


def ollama_stream():
    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": True, "options": OPTIONS}
    t0 = time.perf_counter()
    times, count = [], 0
    with request("POST", "/api/chat", body, base=OLLAMA, auth=False) as r:
        for raw in r:
            chunk = json.loads(raw)
            if chunk.get("message", {}).get("content"):
                times.append(time.perf_counter())
            if chunk.get("done"):
                count = chunk.get("eval_count", 0)
    return t0, times, count


print(f"e2e-real: {BASE} with {MODEL} at {OLLAMA}")
session = new_session()

with request("POST", f"/sessions/{session}/messages", {"content": PROMPT}) as r:
    status, exchange = r.status, json.load(r)
reply = exchange["reply"]
check(status == 201, "buffered send answers 201")
check(reply["status"] == "complete" and reply["content"].strip() != "", "the buffered reply is complete and not empty")
check(reply["usage"]["completion_tokens"] > 0 and reply["usage"]["prompt_tokens"] > 0, "the reply carries usage")
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
ttft_llmchat, tps_llmchat, ttft_ollama, tps_ollama = [], [], [], []



def measure_ollama():
    t0, times, _ = ollama_stream()
    ttft_ollama.append((times[0] - t0) * 1000)
    if len(times) > 1:
        tps_ollama.append((len(times) - 1) / (times[-1] - times[0]))


def measure_llmchat():
    _, deltas, t0, _ = llmchat_stream(new_session())
    ttft_llmchat.append((deltas[0] - t0) * 1000)
    if len(deltas) > 1:
        tps_llmchat.append((len(deltas) - 1) / (deltas[-1] - deltas[0]))


# Ollama reuses the cached prompt of the request just before: alternate which
# path goes first so neither always gets the warm cache.
for run in range(RUNS):
    for measure in (measure_ollama, measure_llmchat) if run % 2 == 0 else (measure_llmchat, measure_ollama):
        measure()

med = statistics.median
print("\n| path | time to first token (median) | tokens per second (median) |")
print("|---|---|---|")
print(f"| straight from Ollama `/api/chat` | {med(ttft_ollama):.0f} ms | {med(tps_ollama):.1f} |")
print(f"| through LlmChat `/messages/stream` | {med(ttft_llmchat):.0f} ms | {med(tps_llmchat):.1f} |")
print(f"\nLlmChat adds {med(ttft_llmchat) - med(ttft_ollama):.0f} ms to the first token (median).")

if failures:
    print(f"\n{len(failures)} check(s) failed")
    sys.exit(1)
print("\nall checks passed")
