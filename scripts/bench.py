"""`make bench` (scripts/bench.sh starts what this measures): what LlmChat adds
on top of the model, measured side by side in one run against the floor (the
scripted Ollama read straight) and a peer (LiteLLM's proxy in front of the
same scripted Ollama).

    bench.py relay --ddb-upstream URL --llm-upstream URL --events FILE --ports FILE
        a timing relay on two free ports (written to --ports as JSON): passes
        bytes through and notes in --events when each DynamoDB request and
        model call goes by (the breakdown's traced stack uses it)
    bench.py run --config FILE
        the scenarios (FILE: what bench.sh started, as JSON); prints Markdown
        tables, writes them, results.json and the charts to the config's `out`
    bench.py report --results FILE
        renders README.md and the charts again from a run's results.json
        (after a change to the report's wording or charts; no new figure)

Every reply comes from the scripted Ollama's `[bench N RATE]` marker: N tokens
`w0 `, `w1 `, ..., token i written i/RATE s after the first (RATE 0: at once),
so a reader knows when each token left the model.
"""

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
import http.server
import socketserver
from pathlib import Path

MODEL = "smollm2:135m"
TOKEN = re.compile(r"w(\d+) ")
# DynamoDB Local checks that a request is signed, not the signature.
DDB_HEADERS = {
    "content-type": "application/x-amz-json-1.0",
    "x-amz-date": "20260101T000000Z",
    "authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0",
}


def now() -> int:
    """Monotonic nanoseconds: one clock for every process of the run (CLOCK_MONOTONIC)."""
    return time.monotonic_ns()


def ms(ns: float) -> float:
    return ns / 1e6


def pct(values, p):
    """The p-th percentile (linear interpolation); None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def fmt(x, unit="", digits=1):
    return "n/a" if x is None else f"{x:.{digits}f}{unit}"


def ratio(a, b, digits=2):
    return "n/a" if a is None or b in (None, 0) else f"{a / b:.{digits}f}"


# ---------------------------------------------------------------- the relay


def about(target, body):
    """What a DynamoDB request is about, without any value of the caller's:
    the key's prefixes (`APIKEY`, `SESSION`/`META`, ...) or the item count."""
    try:
        request = json.loads(body)
    except ValueError:
        return ""

    def prefix(value):
        text = str(next(iter(value.values()))) if isinstance(value, dict) and value else ""
        return text.split("#", 1)[0] if "#" in text else "…"

    if target == "GetItem":
        key = request.get("Key", {})
        return "/".join(prefix(key[name]) for name in sorted(key))
    if target == "Query":
        return "/".join(sorted({prefix(v) for v in request.get("ExpressionAttributeValues", {}).values()}))
    if target == "TransactWriteItems":
        return f"{len(request.get('TransactItems', []))} items"
    return ""


async def relay_main(args):
    out = open(args.events, "a", buffering=1)
    conn_ids = iter(range(1, 1 << 62))

    def note(**event):
        out.write(json.dumps(event) + "\n")

    async def pump(reader, writer, on_chunk):
        try:
            while chunk := await reader.read(65536):
                on_chunk(chunk)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    def serve(kind, upstream):
        host, port = upstream.split("//", 1)[1].rsplit(":", 1)

        async def handle(client_r, client_w):
            conn = next(conn_ids)
            try:
                up_r, up_w = await asyncio.open_connection(host, int(port))
            except OSError:
                client_w.close()
                return
            state = {"answered": True, "token": True}

            def from_client(chunk):
                if chunk[:5] in (b"POST ", b"GET /"):
                    t = now()
                    head, _, body = chunk.partition(b"\r\n\r\n")
                    head = head.decode("latin-1")
                    target = head.split(" ", 2)[1]
                    for line in head.split("\r\n")[1:]:
                        name, _, value = line.partition(":")
                        if name.strip().lower() == "x-amz-target":
                            target = value.strip().rsplit(".", 1)[-1]
                    state.update(answered=False, token=False)
                    note(kind=kind, conn=conn, what="request", target=target, about=about(target, body), t=t)

            def from_upstream(chunk):
                t = now()
                if not state["answered"]:
                    state["answered"] = True
                    note(kind=kind, conn=conn, what="response", t=t)
                if kind == "llm" and not state["token"] and b'"done":false' in chunk:
                    state["token"] = True
                    note(kind=kind, conn=conn, what="token", t=t)

            await asyncio.gather(pump(client_r, up_w, from_client), pump(up_r, client_w, from_upstream))

        return asyncio.start_server(handle, "127.0.0.1", 0)

    ddb = await serve("ddb", args.ddb_upstream)
    llm = await serve("llm", args.llm_upstream)
    ports = {"ddb": ddb.sockets[0].getsockname()[1], "llm": llm.sockets[0].getsockname()[1]}
    Path(args.ports).write_text(json.dumps(ports))
    await asyncio.gather(ddb.serve_forever(), llm.serve_forever())


# ---------------------------------------------------------------- the clients


class Reading:
    """One streamed reply as the client saw it: when it was asked for, when each token arrived."""

    def __init__(self):
        self.started = now()
        self.first = None
        self.arrivals = {}
        self.error = None
        self.pending = ""

    def text(self, piece):
        if not piece:
            return
        t = now()
        if self.first is None:
            self.first = t
        self.pending += piece
        end = self.pending.rfind(" ")
        if end < 0:
            return
        for m in TOKEN.finditer(self.pending[: end + 1]):
            self.arrivals.setdefault(int(m[1]), t)
        self.pending = self.pending[end + 1 :]

    @property
    def ttft(self):
        return None if self.first is None else self.first - self.started


async def lines(resp):
    """The body's lines as they arrive."""
    buf = b""
    async for chunk in resp.content.iter_any():
        buf += chunk
        *done, buf = buf.split(b"\n")
        for line in done:
            yield line
    if buf:
        yield buf


def bench_content(tokens, rate):
    return f"[bench {tokens} {rate}] Tell me something."


async def straight(http, cfg, tokens, rate):
    """The scripted Ollama, read straight: the floor."""
    r = Reading()
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": bench_content(tokens, rate)}]}
    try:
        async with http["llm"].post(f"{cfg['llm']}/api/chat", json=body) as resp:
            if resp.status != 200:
                r.error = f"HTTP {resp.status}"
                return r
            async for line in lines(resp):
                if not line.strip():
                    continue
                event = json.loads(line)
                r.text(event.get("message", {}).get("content", ""))
                if event.get("done"):
                    return r
            r.error = "stream ended without done"
    except Exception as e:  # noqa: BLE001 - every failure is counted, none ends the run
        r.error = type(e).__name__
    return r


async def llmchat(http, base, key, session, tokens, rate):
    """LlmChat's stream route: POST /sessions/{id}/messages/stream."""
    r = Reading()
    url = f"{base}/sessions/{session}/messages/stream"
    try:
        async with http["llmchat"].post(url, json={"content": bench_content(tokens, rate)}, headers={"authorization": f"Bearer {key}"}) as resp:
            if resp.status != 200:
                r.error = f"HTTP {resp.status}"
                return r
            event = None
            async for line in lines(resp):
                line = line.rstrip(b"\r")
                if line.startswith(b"event:"):
                    event = line[6:].strip().decode()
                elif line.startswith(b"data:") and event == "reply.delta":
                    r.text(json.loads(line[5:])["delta"])
                elif line.startswith(b"data:") and event in ("reply.completed", "reply.cancelled", "error"):
                    if event != "reply.completed":
                        r.error = event
                    return r
            r.error = "stream ended without its last event"
    except Exception as e:  # noqa: BLE001
        r.error = type(e).__name__
    return r


async def litellm(http, cfg, tokens, rate):
    """LiteLLM's proxy: POST /v1/chat/completions, streamed."""
    r = Reading()
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": bench_content(tokens, rate)}]}
    try:
        async with http["litellm"].post(f"{cfg['litellm']}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {cfg['litellm_key']}"}) as resp:
            if resp.status != 200:
                r.error = f"HTTP {resp.status}"
                return r
            async for line in lines(resp):
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    return r
                chunk = json.loads(data)
                for choice in chunk.get("choices") or []:
                    r.text((choice.get("delta") or {}).get("content") or "")
            r.error = "stream ended without [DONE]"
    except Exception as e:  # noqa: BLE001
        r.error = type(e).__name__
    return r


async def new_session(http, base, key):
    async with http["llmchat"].post(f"{base}/sessions", json={"title": "bench"}, headers={"authorization": f"Bearer {key}"}) as resp:
        if resp.status != 201:
            raise SystemExit(f"POST /sessions answered {resp.status}: {await resp.text()}")
        return (await resp.json())["id"]


class RawDynamo:
    """DynamoDB requests written by hand on one kept-alive connection: a round
    trip with as little of the client's own time in it as Python allows."""

    # DynamoDB Local closes a connection left idle; one idle this long is replaced
    # before it is used, so no round trip includes a connect.
    IDLE = 5 * 10**9

    def __init__(self, endpoint):
        self.host, self.port = endpoint.split("//", 1)[1].rsplit(":", 1)
        self.conn = None
        self.used = 0

    async def op(self, op, body):
        """One request; its round trip in ns."""
        if self.conn is not None and now() - self.used > self.IDLE:
            self.conn[1].close()
            self.conn = None
        if self.conn is None:
            self.conn = await asyncio.open_connection(self.host, int(self.port))
        reader, writer = self.conn
        data = json.dumps(body).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in {**DDB_HEADERS, "host": f"{self.host}:{self.port}",
                                                    "x-amz-target": f"DynamoDB_20120810.{op}", "content-length": len(data)}.items())
        request = f"POST / HTTP/1.1\r\n{head}\r\n".encode() + data
        started = now()
        writer.write(request)
        await writer.drain()
        header = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", header)[1])
        answer = await reader.readexactly(length)
        took = now() - started
        self.used = now()
        if not header.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"DynamoDB {op} answered {header.splitlines()[0]!r}: {answer[:300]!r}")
        return took


class Floor:
    """The reads and writes the contract requires before the model is called,
    each sent straight to DynamoDB Local: a GetItem (the API key), a Query (the
    session's partition), a conditional TransactWriteItems (the exchange)."""

    OPS = ("GetItem", "Query", "TransactWriteItems")

    def __init__(self, endpoint, table):
        self.endpoint, self.table = endpoint, table
        self.samples = {op: [] for op in self.OPS}
        self.clients = {}
        self.n = 0

    async def once(self, endpoint=None):
        endpoint = endpoint or self.endpoint
        client = self.clients.setdefault(endpoint, RawDynamo(endpoint))
        key = {"PK": {"S": "BENCH#floor"}, "SK": {"S": "META"}}
        self.n += 1
        bodies = {
            "GetItem": {"TableName": self.table, "Key": key, "ConsistentRead": True},
            "Query": {"TableName": self.table, "KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "BENCH#floor"}},
                      "ConsistentRead": True, "ScanIndexForward": False, "Limit": 21},
            "TransactWriteItems": {"TransactItems": [{"Put": {"TableName": self.table, "ConditionExpression": "attribute_not_exists(PK)",
                                                            "Item": {"PK": {"S": "BENCH#floor"}, "SK": {"S": f"TX#{os.getpid()}#{self.n}#{now()}"}}}}]},
        }
        return {op: await client.op(op, bodies[op]) for op in self.OPS}

    async def sample(self):
        for op, t in (await self.once()).items():
            self.samples[op].append(t)

    def p50(self, op):
        return pct(self.samples[op], 50)

    def total_p50(self):
        return sum(self.p50(op) for op in self.OPS)


# ---------------------------------------------------------------- scenarios

TARGETS = ("straight", "llmchat", "litellm")
LABEL = {"straight": "straight from the LLM", "llmchat": "LlmChat stream route", "litellm": "LiteLLM proxy"}


class Bench:
    def __init__(self, cfg, http):
        self.cfg, self.http = cfg, http
        self.keys = cfg["keys"]
        self.has_litellm = bool(cfg.get("litellm"))
        self.targets = [t for t in TARGETS if t != "litellm" or self.has_litellm]
        self.floor = Floor(cfg["dynamodb"], cfg["table"])
        self.sessions = {}

    async def session_of(self, owner, slot):
        """A session of owner `owner` (index into the keys), one per slot, reused."""
        if (owner, slot) not in self.sessions:
            self.sessions[(owner, slot)] = await new_session(self.http, self.cfg["base"], self.keys[owner])
        return self.sessions[(owner, slot)]

    async def read(self, target, tokens, rate, owner=0, slot=0):
        if target == "straight":
            return await straight(self.http, self.cfg, tokens, rate)
        if target == "litellm":
            return await litellm(self.http, self.cfg, tokens, rate)
        session = await self.session_of(owner, slot)
        return await llmchat(self.http, self.cfg["base"], self.keys[owner], session, tokens, rate)

    async def warm_up(self, level):
        # Every instance of the stream function gets a request, so each has its
        # connections open as a warm Lambda instance would.
        for _ in range(2):
            await asyncio.gather(*(self.read("llmchat", 4, 0, owner=i % len(self.keys), slot=i) for i in range(level)))
        for target in self.targets:
            for _ in range(5):
                await self.read(target, 4, 0)
        await self.floor.once()

    async def ttft(self, sends, tokens=8):
        """(a): one send to each target in turn, `sends` times; a fresh session every ten sends."""
        results = {t: [] for t in self.targets}
        for i in range(sends):
            for target in self.targets:
                results[target].append(await self.read(target, tokens, 0, slot=1000 + i // 10))
            await self.floor.sample()
        return results

    async def throughput(self, rate, tokens, repeats):
        """(b): a paced reply of `tokens` tokens at `rate` tokens/s (0: unpaced)."""
        results = {t: [] for t in self.targets}
        for i in range(repeats):
            for target in self.targets:
                results[target].append(await self.read(target, tokens, rate, slot=2000 + i))
        return results

    async def concurrency(self, level, rounds, tokens=8):
        """(c): `level` streams at once, each on its own session of its own owner."""
        results = {t: [] for t in self.targets}
        # Sessions first, so that the streams of a round start together.
        await asyncio.gather(*(self.session_of(i % len(self.keys), 3000 + i) for i in range(level)))
        for _ in range(rounds):
            for target in self.targets:
                results[target] += await asyncio.gather(
                    *(self.read(target, tokens, 0, owner=i % len(self.keys), slot=3000 + i) for i in range(level)))
        return results

    async def memory(self, tokens):
        """(d): peak RSS of the stream function's instances over one reply of `tokens` tokens."""
        pids = stream_instances(self.cfg["runtime_pid"])
        for pid in pids:
            reset_peak(pid)
        before = {pid: status_kb(pid, "VmRSS") for pid in pids}
        reading = await self.read("llmchat", tokens, 0, slot=4000 + tokens)
        peak = {pid: status_kb(pid, "VmHWM") for pid in pids}
        # The instance that served the reply is the one that grew the most.
        served = max(pids, key=lambda pid: (peak[pid] - before[pid], peak[pid]), default=None)
        return {"tokens": tokens, "instances": len(pids), "rss_before_kb": before.get(served), "peak_kb": peak.get(served),
                "received": len(reading.arrivals), "error": reading.error}

    async def breakdown(self, sends, tokens=8):
        """Where the added time goes: sends through the traced stack, whose
        DynamoDB requests and model call pass the timing relay."""
        base, key = self.cfg["traced_base"], self.cfg["traced_key"]
        events_file = Path(self.cfg["relay_events"])
        session = None
        windows = []
        for i in range(sends):
            if i % 10 == 0:
                session = await new_session(self.http, base, key)
            r = await llmchat(self.http, base, key, session, tokens, 0)
            windows.append(r)
            await asyncio.sleep(0.05)  # the reply's last writes are done before the next send
        relay_floor = {op: [] for op in Floor.OPS}
        direct_floor = {op: [] for op in Floor.OPS}
        for _ in range(max(20, sends // 2)):
            for op, t in (await self.floor.once(self.cfg["relay_ddb"])).items():
                relay_floor[op].append(t)
            for op, t in (await self.floor.once()).items():
                direct_floor[op].append(t)
        await asyncio.sleep(0.2)
        events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
        return analyse_breakdown(windows, events, relay_floor, direct_floor)


def analyse_breakdown(windows, events, relay_floor, direct_floor):
    """Each send's timeline, from the client's send to its first token: the
    DynamoDB requests made before that token (when each started, how long it
    took; some run at once), the model call to its first token, and the last
    step, from the later of the commit and the model's first token to the
    client's first token."""
    steps = {}
    order = []
    op_counts = []
    skipped = 0
    for r in windows:
        if r.error or r.first is None:
            skipped += 1
            continue
        inside = [e for e in events if r.started <= e["t"] <= r.first]
        calls = [e for e in inside if e["kind"] == "llm" and e["what"] == "request"]
        if not calls:
            skipped += 1
            continue
        call = calls[0]
        token = next((e for e in inside if e["kind"] == "llm" and e["what"] == "token" and e["conn"] == call["conn"]), None)
        if token is None:
            skipped += 1
            continue
        ops = []
        pending = {}
        for e in sorted((e for e in inside if e["kind"] == "ddb"), key=lambda e: e["t"]):
            if e["what"] == "request":
                pending[e["conn"]] = e
            elif e["conn"] in pending:
                req = pending.pop(e["conn"])
                label = f"{req['target']} {req['about']}".strip() if req.get("about") else req["target"]
                ops.append((label, req["t"], e["t"]))
        ops.sort(key=lambda o: o[1])
        # The reply's first token leaves the function once the exchange's
        # transaction (the first one) has committed and the model has said
        # it; what the function writes after that (log appends, the final
        # write) runs alongside the relay and is not part of the wait.
        commit = next((o for o in ops if o[0].startswith("TransactWriteItems")), None)
        ready = max(token["t"], commit[2]) if commit else token["t"]
        ops = [o for o in ops if o[1] < ready]
        op_counts.append(len(ops))
        first_request = min([t0 for _, t0, _ in ops] + [call["t"]])
        timeline = [("runtime and function, to the first request", r.started, first_request)]
        seen = {}
        for target, t0, t1 in ops:
            seen[target] = seen.get(target, 0) + 1
            name = target if seen[target] == 1 else f"{target} #{seen[target]}"
            timeline.append((f"{name} (DynamoDB)", t0, t1))
        timeline.append(("model: call to its first token", call["t"], token["t"]))
        timeline.append(("relay: to the client's first token (function, runtime)", ready, r.first))
        for name, t0, t1 in timeline:
            if name not in steps:
                steps[name] = ([], [])
                order.append(name)
            steps[name][0].append(t0 - r.started)
            steps[name][1].append(t1 - t0)
    relay_cost = {op: pct(relay_floor[op], 50) - pct(direct_floor[op], 50) for op in Floor.OPS}
    order.sort(key=lambda name: pct(steps[name][0], 50))
    return {
        "sends": len(windows) - skipped,
        "skipped": skipped,
        "ops_before_first_token": statistics.mode(op_counts) if op_counts else None,
        "steps": [(name, pct(steps[name][0], 50), pct(steps[name][1], 50), len(steps[name][0])) for name in order],
        "ttft_p50": pct([r.ttft for r in windows if r.ttft is not None], 50),
        "relay_cost_per_op": relay_cost,
    }


# ---------------------------------------------------------------- processes


def children(pid):
    kids = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        kids.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for kid in kids.get(todo.pop(), []):
            found.append(kid)
            todo.append(kid)
    return found


def stream_instances(runtime_pid):
    pids = []
    for pid in children(runtime_pid):
        try:
            if os.path.basename(os.readlink(f"/proc/{pid}/exe")) == "stream-reply":
                pids.append(pid)
        except OSError:
            pass
    return pids


def reset_peak(pid):
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def status_kb(pid, field):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cold_starts(bin_dir, functions, runs):
    """Per function: bootstrap size and process start to its first poll of the
    runtime API (config read, logging set up, clients built), median of `runs`."""
    polled = threading.Event()

    class RuntimeApi(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.endswith("/runtime/invocation/next"):
                polled.set()
            time.sleep(3)  # never hands out an invocation

        def log_message(self, *args):
            pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), RuntimeApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
               AWS_LAMBDA_FUNCTION_NAME="bench", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
               AWS_LAMBDA_FUNCTION_VERSION="$LATEST", AWS_LAMBDA_LOG_STREAM_NAME="bench",
               AWS_LAMBDA_LOG_GROUP_NAME="bench", AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="local",
               AWS_SECRET_ACCESS_KEY="local", LLMCHAT_TABLE_NAME="bench", RUST_LOG="off")
    rows = []
    for f in functions:
        binary = Path(bin_dir) / f
        samples = []
        for _ in range(runs):
            polled.clear()
            started = now()
            proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ok = polled.wait(10)
            samples.append(now() - started)
            proc.kill()
            proc.wait()
            if not ok:
                samples = []
                break
        rows.append({"function": f, "size_mib": binary.stat().st_size / 2**20, "cold_start_ms": ms(statistics.median(samples)) if samples else None})
    server.shutdown()
    return rows


# ---------------------------------------------------------------- summaries


def ttft_summary(results):
    out = {}
    straight = results["straight"]
    for target, readings in results.items():
        ok = [r for r in readings if r.ttft is not None and not r.error]
        row = {"sends": len(readings), "errors": len(readings) - len(ok)}
        for p in (50, 95, 99):
            row[f"p{p}"] = pct([r.ttft for r in ok], p)
        if target != "straight":
            # Paired: each send against the straight read just before it.
            added = [r.ttft - s.ttft for r, s in zip(readings, straight) if r.ttft is not None and s.ttft is not None and not r.error and not s.error]
            for p in (50, 95, 99):
                row[f"added_p{p}"] = pct(added, p)
        out[target] = row
    return out


def flow_summary(readings, tokens, rate):
    """Tokens/s between the first and last token, and each token's lateness
    against its schedule (token i is due i/rate s after token 0)."""
    rates, lags, errors = [], [], 0
    for r in readings:
        if r.error or len(r.arrivals) < tokens:
            errors += 1
            continue
        first, last = r.arrivals[0], r.arrivals[tokens - 1]
        if last > first:
            rates.append((tokens - 1) / ((last - first) / 1e9))
        if rate:
            lags += [r.arrivals[i] - first - i * 1e9 / rate for i in range(tokens)]
    return {"tokens_per_s": statistics.median(rates) if rates else None, "lag_p99": pct(lags, 99), "errors": errors, "n": len(readings)}


def concurrency_summary(results):
    out = {}
    straight_p50 = pct([r.ttft for r in results["straight"] if r.ttft is not None and not r.error], 50)
    straight_p95 = pct([r.ttft for r in results["straight"] if r.ttft is not None and not r.error], 95)
    for target, readings in results.items():
        ok = [r.ttft for r in readings if r.ttft is not None and not r.error]
        row = {"streams": len(readings), "errors": len(readings) - len(ok), "p50": pct(ok, 50), "p95": pct(ok, 95)}
        if target != "straight" and ok and straight_p50 is not None:
            row["added_p50"] = row["p50"] - straight_p50
            row["added_p95"] = row["p95"] - straight_p95
        out[target] = row
    return out


# ---------------------------------------------------------------- report


def critical_path(floor):
    """The contract's three requests as LlmChat makes them: the key's GetItem
    and the session's Query at once, then the transaction."""
    return max(floor["GetItem"], floor["Query"]) + floor["TransactWriteItems"]


def summary(res):
    """The figures a reader compares first, in two sentences."""
    t, lite = res["ttft"]["llmchat"], res["ttft"].get("litellm")
    lines = [f"**LlmChat adds {fmt(ms(t['added_p50']), ' ms', 1)} (p50) to the first token**, "
             f"{ratio(t['added_p50'], res['floor']['total'])} × the {fmt(ms(res['floor']['total']), ' ms', 1)} of the three "
             "DynamoDB round trips the contract requires before the model is called"]
    if lite:
        lines[0] += f"; LiteLLM's proxy adds {fmt(ms(lite['added_p50']), ' ms', 1)} (LlmChat ÷ LiteLLM: {ratio(t['added_p50'], lite['added_p50'])})"
    paced = [r for r in res["throughput"] if r["rate"]]
    if paced:
        top = paced[-1]
        lines.append(f"At {top['rate']:,} tokens/s from the LLM, LlmChat relays {ratio(top['llmchat']['tokens_per_s'], top['straight']['tokens_per_s'])} "
                     "of the rate" + (f", LiteLLM {ratio(top['litellm']['tokens_per_s'], top['straight']['tokens_per_s'])}" if lite else ""))
    return ". ".join(lines) + ".\n"


def tables(res):
    md = []
    floor = res["floor"]
    t = res["ttft"]
    md.append(f"### Time to first token ({t['straight']['sends']} sends per target, 8-token replies, one target after the other)\n")
    md.append("| path | p50 | p95 | p99 | added p50 | added p95 | added p99 | added p50 / LiteLLM's | errors |")
    md.append("|---|---|---|---|---|---|---|---|---|")
    lite = t.get("litellm", {}).get("added_p50")
    for target in res["targets"]:
        row = t[target]
        added = [fmt(ms(row[f"added_p{p}"]) if row.get(f"added_p{p}") is not None else None, " ms", 2) for p in (50, 95, 99)] if target != "straight" else ["", "", ""]
        versus = ratio(row.get("added_p50"), lite) if target == "llmchat" else ""
        md.append(f"| {LABEL[target]} | {fmt(ms(row['p50']), ' ms', 2)} | {fmt(ms(row['p95']), ' ms', 2)} | {fmt(ms(row['p99']), ' ms', 2)} | "
                  + " | ".join(added) + f" | {versus} | {row['errors']} |")
    md.append("")
    md.append("DynamoDB Local round trips in the same run, straight from the benchmark's client (p50): "
              + ", ".join(f"{op} {fmt(ms(floor[op]), ' ms', 2)}" for op in Floor.OPS)
              + f" (a TransactWriteItems of one item). Before the model is called, the contract requires 3 requests: "
              f"the API key's GetItem, the session's Query and the exchange's TransactWriteItems (the code adds a fourth, "
              f"see docs/ARCHITECTURE.md, \"Reads and writes per request\", and the breakdown below); "
              f"the sum of those 3, the floor: {fmt(ms(floor['total']), ' ms', 2)}; with the key's GetItem and the Query made at once, "
              f"as LlmChat makes them, the floor's critical path is the longer of the two plus the TransactWriteItems: "
              f"{fmt(ms(critical_path(floor)), ' ms', 2)}. "
              f"LlmChat's added p50 is {ratio(t['llmchat'].get('added_p50'), floor['GetItem'], 1)} GetItem round trips, "
              f"{ratio(t['llmchat'].get('added_p50'), floor['total'])} × the contract's floor, "
              f"{ratio(t['llmchat'].get('added_p50'), critical_path(floor))} × its critical path.\n")
    b = res.get("breakdown")
    if b:
        md.append(f"### Where LlmChat's time to first token goes (traced stack, {b['sends']} sends, medians)\n")
        md.append(f"DynamoDB requests before the first token, as observed: {b['ops_before_first_token']} (the contract's 3 "
                  "and any the code adds; each is named by its operation and its key's prefixes). Each step is given by when it "
                  "started after the send and how long it took (medians of each); steps that overlap ran at the same time. "
                  "The traced stack reaches DynamoDB "
                  f"and the LLM through a timing relay, which adds about {fmt(ms(statistics.mean(b['relay_cost_per_op'].values())), ' ms', 2)} "
                  f"to each DynamoDB request (measured in the same pass); its TTFT p50 is {fmt(ms(b['ttft_p50']), ' ms', 2)}.\n")
        md.append("| step | starts at | takes | ends at | sends |")
        md.append("|---|---|---|---|---|")
        for name, t0, d, n in b["steps"]:
            md.append(f"| {name} | {fmt(ms(t0), ' ms', 2)} | {fmt(ms(d), ' ms', 2)} | {fmt(ms(t0 + d), ' ms', 2)} | {n} |")
        md.append("")
    md.append("### Relay throughput (tokens/s through the path ÷ tokens/s straight from the LLM, same run)\n")
    md.append("| LLM rate | tokens | " + " | ".join(f"{LABEL[x]} tok/s" for x in res["targets"])
              + " | " + " | ".join(f"{LABEL[x]} ratio | {LABEL[x]} added lateness p99" for x in res["targets"] if x != "straight") + " | errors |")
    md.append("|---" * (2 + len(res["targets"]) + 2 * (len(res["targets"]) - 1) + 1) + "|")
    for row in res["throughput"]:
        s = row["straight"]
        cells = [("unpaced" if row["rate"] == 0 else f"{row['rate']:,} tok/s"), f"{row['tokens']:,}"]
        cells += [fmt(row[x]["tokens_per_s"], "", 0) for x in res["targets"]]
        for x in res["targets"]:
            if x == "straight":
                continue
            cells.append(ratio(row[x]["tokens_per_s"], s["tokens_per_s"]))
            lag = None if row[x]["lag_p99"] is None or s["lag_p99"] is None else ms(row[x]["lag_p99"] - s["lag_p99"])
            cells.append(fmt(lag, " ms", 2) if row["rate"] else "")
        cells.append(str(sum(row[x]["errors"] for x in res["targets"])))
        md.append("| " + " | ".join(cells) + " |")
    md.append("")
    md.append("### Concurrency (simultaneous streams on different sessions of different owners, 8-token replies)\n")
    md.append("| streams | " + " | ".join(f"{LABEL[x]} TTFT p50 / p95" for x in res["targets"]) + " | "
              + " | ".join(f"{LABEL[x]} added p50 / p95 | {LABEL[x]} errors" for x in res["targets"] if x != "straight") + " |")
    md.append("|---" * (1 + len(res["targets"]) + 2 * (len(res["targets"]) - 1)) + "|")
    for row in res["concurrency"]:
        cells = [str(row["level"])]
        cells += [f"{fmt(ms(row[x]['p50']) if row[x]['p50'] is not None else None, '', 1)} / {fmt(ms(row[x]['p95']) if row[x]['p95'] is not None else None, ' ms', 1)}" for x in res["targets"]]
        for x in res["targets"]:
            if x == "straight":
                continue
            a50, a95 = row[x].get("added_p50"), row[x].get("added_p95")
            cells.append(f"{fmt(ms(a50) if a50 is not None else None, '', 1)} / {fmt(ms(a95) if a95 is not None else None, ' ms', 1)}")
            cells.append(f"{row[x]['errors']} of {row[x]['streams']}")
        md.append("| " + " | ".join(cells) + " |")
    md.append("")
    md.append("### Memory of the stream function (peak RSS, VmHWM, over one reply, of the instance that grew the most)\n")
    md.append("| reply | tokens received | RSS before | peak RSS | peak − before |")
    md.append("|---|---|---|---|---|")
    for m in res["memory"]:
        grow = None if m["peak_kb"] is None or m["rss_before_kb"] is None else (m["peak_kb"] - m["rss_before_kb"]) / 1024
        md.append(f"| {m['tokens']:,} tokens | {m['received']:,}{' (' + m['error'] + ')' if m['error'] else ''} | "
                  f"{fmt(m['rss_before_kb'] / 1024 if m['rss_before_kb'] else None, ' MiB')} | {fmt(m['peak_kb'] / 1024 if m['peak_kb'] else None, ' MiB')} | {fmt(grow, ' MiB', 2)} |")
    md.append("")
    md.append(f"### Cold start ({res['build']} build for this machine, process start to first poll of the runtime API, median of {res['cold_runs']})\n")
    md.append("| function | binary | cold start |")
    md.append("|---|---|---|")
    for c in res["cold_starts"]:
        md.append(f"| {c['function']} | {c['size_mib']:.1f} MiB | {fmt(c['cold_start_ms'], ' ms')} |")
    md.append("")
    return "\n".join(md)


def charts(res, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "llmchat-bench"
    meta = {"Date": None}
    colors = {"straight": "#888888", "llmchat": "#1f77b4", "litellm": "#ff7f0e"}
    files = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / name, metadata=meta)
        files.append(name)
        plt.close(fig)

    # Added time to first token, with the floor.
    t = res["ttft"]
    fig, ax = plt.subplots(figsize=(7, 4))
    peers = [x for x in res["targets"] if x != "straight"]
    width = 0.8 / len(peers)
    for i, x in enumerate(peers):
        vals = [ms(t[x].get(f"added_p{p}") or 0) for p in (50, 95, 99)]
        ax.bar([j + i * width for j in range(3)], vals, width, label=LABEL[x], color=colors[x])
    ax.axhline(ms(res["floor"]["total"]), color="#2ca02c", linestyle="--", label="contract floor: 3 DynamoDB round trips")
    ax.axhline(ms(res["floor"]["GetItem"]), color="#2ca02c", linestyle=":", label="one DynamoDB round trip")
    ax.set_xticks([j + width * (len(peers) - 1) / 2 for j in range(3)], ["p50", "p95", "p99"])
    ax.set_ylabel("added time to first token (ms)")
    ax.set_title("Time to first token added on top of the LLM")
    ax.legend(fontsize=8)
    save(fig, "ttft.svg")

    b = res.get("breakdown")
    if b:
        steps = b["steps"]
        fig, ax = plt.subplots(figsize=(8, 0.9 + 0.42 * len(steps)))
        cmap = plt.get_cmap("tab20")
        for i, (name, t0, d, _) in enumerate(steps):
            ax.barh([i], [ms(d)], left=ms(t0), color=cmap(i % 20))
            ax.text(ms(t0 + d) + 0.1, i, f"{ms(d):.2f} ms", va="center", fontsize=7)
        ax.set_yticks(range(len(steps)), [name for name, *_ in steps], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("ms after the send (medians)")
        ax.set_title("Where LlmChat's time to first token goes (traced stack)")
        save(fig, "breakdown.svg")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 4))
    rows = res["throughput"]
    names = ["unpaced" if r["rate"] == 0 else f"{r['rate']:,}/s" for r in rows]
    for i, x in enumerate(peers):
        vals = [(r[x]["tokens_per_s"] or 0) / r["straight"]["tokens_per_s"] if r["straight"]["tokens_per_s"] else 0 for r in rows]
        a1.bar([j + i * width for j in range(len(rows))], vals, width, label=LABEL[x], color=colors[x])
        lags = [ms((r[x]["lag_p99"] or 0) - (r["straight"]["lag_p99"] or 0)) if r["rate"] else 0 for r in rows]
        a2.bar([j + i * width for j in range(len(rows))], lags, width, label=LABEL[x], color=colors[x])
    for a in (a1, a2):
        a.set_xticks([j + width * (len(peers) - 1) / 2 for j in range(len(rows))], names)
        a.set_xlabel("LLM's rate")
    a1.axhline(1.0, color="#888888", linestyle="--")
    a1.set_ylabel("tokens/s through ÷ straight")
    a1.set_title("Relay throughput")
    a2.set_ylabel("ms")
    a2.set_title("Added per-token lateness, p99")
    a1.legend(fontsize=8)
    save(fig, "throughput.svg")

    fig, ax = plt.subplots(figsize=(7, 4))
    levels = [r["level"] for r in res["concurrency"]]
    for x in peers:
        ax.plot(levels, [ms(r[x].get("added_p50") or 0) for r in res["concurrency"]], marker="o", color=colors[x], label=f"{LABEL[x]} p50")
        ax.plot(levels, [ms(r[x].get("added_p95") or 0) for r in res["concurrency"]], marker="o", linestyle="--", color=colors[x], label=f"{LABEL[x]} p95")
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels, [str(v) for v in levels])
    ax.set_xlabel("simultaneous streams")
    ax.set_ylabel("added time to first token (ms)")
    ax.set_title("Added time to first token under load")
    ax.legend(fontsize=8)
    save(fig, "concurrency.svg")
    return files


async def run_main(args):
    import aiohttp

    cfg = json.loads(Path(args.config).read_text())
    short = cfg["short"]
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    ttft_sends = 20 if short else 200
    levels = [1, 8] if short else [1, 8, 32, 64]
    rounds, streams = (1, 8) if short else (3, 48)
    # (rate, tokens): about 2 s of reply at each rate (less in the short form).
    flows = [(100, 50), (1000, 300), (10000, 2000), (0, 2000)] if short else [(100, 200), (1000, 2000), (10000, 20000), (0, 20000)]
    repeats = 1 if short else 3
    res = {"short": short, "cold_runs": 3 if short else 10, "build": cfg.get("build", "release")}

    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0, force_close=True)) as llm_http, \
            aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as chat_http, \
            aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as lite_http:
        http = {"llm": llm_http, "llmchat": chat_http, "litellm": lite_http}
        bench = Bench(cfg, http)
        res["targets"] = bench.targets

        def step(what):
            print(f"[bench] {what}", file=sys.stderr, flush=True)

        step(f"warming up {max(levels)} instances of the stream function and each target")
        await bench.warm_up(max(levels))
        step(f"time to first token: {ttft_sends} sends to each of {', '.join(bench.targets)}")
        res["ttft"] = ttft_summary(await bench.ttft(ttft_sends))
        res["floor"] = {op: bench.floor.p50(op) for op in Floor.OPS}
        res["floor"]["total"] = bench.floor.total_p50()
        res["throughput"] = []
        for rate, tokens in flows:
            step(f"throughput: {tokens} tokens at {rate or 'unpaced'} tokens/s, {repeats}× each target")
            got = await bench.throughput(rate, tokens, repeats)
            res["throughput"].append({"rate": rate, "tokens": tokens, **{x: flow_summary(got[x], tokens, rate) for x in bench.targets}})
        res["concurrency"] = []
        for level in levels:
            # At least `streams` streams per level, so that its percentiles rest on more than a handful.
            n = max(rounds, -(-streams // level))
            step(f"concurrency: {level} streams at once, {n} round(s) per target")
            res["concurrency"].append({"level": level, **concurrency_summary(await bench.concurrency(level, n))})
        step("memory: peak RSS of the stream function over a short and a long reply")
        res["memory"] = [await bench.memory(8), await bench.memory(2000 if short else 30000)]
        if cfg.get("traced_base"):
            step("breakdown: sends through the traced stack")
            res["breakdown"] = await bench.breakdown(20 if short else 100)
    step("cold starts of every function")
    res["cold_starts"] = cold_starts(cfg["bin_dir"], cfg["functions"], res["cold_runs"])

    machine = f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), {platform.system()} {platform.release()}"
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "")
    res["meta"] = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "seconds": round(time.time() - cfg["started"]),
                   "machine": machine + (f", {cpu}" if cpu else ""), "load_before": cfg["load_before"], "commit": cfg.get("commit", "unknown"),
                   "litellm": cfg.get("litellm_version") or "not run"}
    # The raw figures first: a report that fails to render loses no measurement.
    (out / "results.json").write_text(json.dumps(json.loads(json.dumps(res, default=str)), indent=1) + "\n")
    write_report(res, out)


def write_report(res, out):
    """Prints the tables; writes them with the charts to `out` (README.md, *.svg)."""
    first, md = summary(res), tables(res)
    print(first + "\n" + md)
    files = charts(res, out)
    meta, short = res["meta"], res["short"]
    head = [
        "# Benchmark: what LlmChat adds on top of the model",
        "",
        first,
        "Written by `make bench` (scripts/bench.sh, scripts/bench.py); do not edit by hand. "
        f"{'Short form (BENCH_SHORT=1): too few sends for the tails. ' if short else ''}"
        f"{res['build'].capitalize()} builds of the functions under the local Lambda runtime (`llmchat-local`), DynamoDB Local, "
        "the scripted Ollama (`[bench N RATE]`: N tokens at RATE tokens/s, 0 for no pause) and LiteLLM's proxy "
        "in front of the same scripted Ollama, all on one machine and measured in one run; "
        "\"straight\" is the scripted Ollama read directly, the floor. Every figure is the benchmark's client's view.",
        "",
        "How to read it: *added* time to first token is each send's time minus that of the straight read just before it "
        "(percentiles of those differences). *Throughput* is tokens/s between a reply's first and last token as received. "
        "*Lateness* of token i is its arrival after the first token minus i/RATE, its due time; *added lateness p99* is the "
        "p99 through a path minus the p99 straight (negative: the path's first token came late and the rest caught up). "
        "Under concurrency, added is the p50 (p95) of the path minus the p50 (p95) of as many straight reads at once. "
        "Tokens arrive in bursts at 10,000 tokens/s (the scripted Ollama's timer ticks each millisecond).",
        "",
        "The client is one Python process (asyncio): at 64 streams its own share shows in the straight column, which is why "
        "every figure is given against straight reads made the same way at the same time.",
        "",
        "Open WebUI is not measured: `pip install open-webui` did not finish on this machine in 8 minutes "
        "(it resolves over 200 packages, among them a 539 MB PyTorch wheel); see docs/FIGURES.md.",
        "",
        f"Command: `{'BENCH_SHORT=1 ' if short else ''}make bench`, {meta['date']}, "
        f"{meta['seconds']} s from start to end (stacks started, measured, written). "
        f"Machine: {meta['machine']}, load average {meta['load_before']} before `make bench` started anything. "
        f"Commit: {meta['commit']}. LiteLLM {meta['litellm']}.",
        "",
    ]
    head += [f"![{f}]({f})" for f in files] + [""]
    (out / "README.md").write_text("\n".join(head) + md + "\n")
    print(f"[bench] wrote {out}/README.md, results.json and {', '.join(files)}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    relay = sub.add_parser("relay")
    relay.add_argument("--ddb-upstream", required=True)
    relay.add_argument("--llm-upstream", required=True)
    relay.add_argument("--events", required=True)
    relay.add_argument("--ports", required=True, help="file the relay writes its two ports to, as JSON")
    run = sub.add_parser("run")
    run.add_argument("--config", required=True)
    report = sub.add_parser("report", help="render README.md and the charts again from a run's results.json")
    report.add_argument("--results", required=True)
    args = parser.parse_args()
    if args.cmd == "report":
        write_report(json.loads(Path(args.results).read_text()), Path(args.results).parent)
    else:
        asyncio.run(relay_main(args) if args.cmd == "relay" else run_main(args))


if __name__ == "__main__":
    main()
