"""The soak's clients and its auditor (scripts/soak.sh starts the stack).

Clients send through both send routes with faults asked of the scripted LLM
(`[soak N FAULT]`, see tests/src/bin/scripted-ollama.rs), drop their
connections at random, retry with the same client_message_id until the send
is acknowledged, and mix in rejoins and cancels; halfway, DynamoDB Local is
restarted (the command in --restart-dynamodb). Then the auditor reads every
session back and checks each acknowledged send: stored exactly once and in
the client's order, `seq` strictly increasing, every reply in a final state,
a complete reply's text what the model sent and what its reader received, a
partial reply's text a prefix of what the model sent, and no server error
anywhere. Exit status 1 on any loss, duplicate or server error.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx

FAULTS = ["none", "none", "none", "cut", "error", "hang", "slow"]
FINAL = {"complete", "incomplete", "failed", "cancelled"}
# Problem codes of a send whose failure is the model's (the message is stored):
# a retry with the same client_message_id answers the stored exchange.
LLM_CODES = {"llm_error", "llm_timeout", "llm_unavailable", "llm_busy"}
# How long a client keeps retrying one send before it counts as lost.
SEND_DEADLINE_S = 120
# How long the auditor waits for replies still being generated.
SETTLE_S = 60


def expected_text(tokens: int) -> str:
    return "".join(f"w{i} " for i in range(tokens))


@dataclass
class Sent:
    session: str
    client_message_id: str
    content: str
    tokens: int
    fault: str
    route: str
    reply_id: str | None = None
    # The text a reader received through a completed reply, if one did.
    received_complete: str | None = None


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: collections.Counter = field(default_factory=collections.Counter)
    server_errors: list = field(default_factory=list)
    lost: list = field(default_factory=list)

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n

    def server_error(self, what: str) -> None:
        with self.lock:
            self.server_errors.append(what)


def problem_code(res: httpx.Response) -> str | None:
    try:
        body = res.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def is_server_error(res: httpx.Response) -> bool:
    """A 5xx that is not one of the API's own answers about the model or
    the store (problem+json with an llm_* or storage_unavailable code)."""
    if res.status_code < 500:
        return False
    return problem_code(res) not in LLM_CODES | {"storage_unavailable"}


class Client:
    def __init__(self, base: str, key: str, tally: Tally, rng: random.Random, name: str):
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        self.tally = tally
        self.rng = rng
        self.name = name

    def request(self, method: str, path: str, **kw) -> httpx.Response | None:
        """One request; None when the connection failed (counted, retried by the caller)."""
        try:
            res = self.http.request(method, path, **kw)
        except httpx.HTTPError:
            self.tally.add("transport errors")
            return None
        if is_server_error(res):
            self.tally.server_error(f"{method} {path}: {res.status_code} {res.text[:200]}")
        return res

    def new_session(self) -> str:
        while True:
            res = self.request("POST", "/sessions", json={"title": f"soak {self.name}"})
            if res is not None and res.status_code == 201:
                return res.json()["id"]
            time.sleep(0.5)

    def pause_for(self, res: httpx.Response | None) -> None:
        if res is not None:
            self.tally.add(f"answers {res.status_code} {problem_code(res) or ''}".rstrip())
        if res is not None and res.status_code == 429:
            time.sleep(min(float(res.headers.get("retry-after", "1")), 5))
        else:
            time.sleep(0.2 + self.rng.random() * 0.3)

    def send(self, sent: Sent) -> bool:
        """Sends until acknowledged; False if it never was."""
        body = {"content": sent.content, "client_message_id": sent.client_message_id}
        deadline = time.monotonic() + SEND_DEADLINE_S
        while time.monotonic() < deadline:
            if sent.route == "stream" and self.rng.random() < 0.85:
                done = self.send_streamed(sent, body)
            else:
                done = self.send_buffered(sent, body)
            if done:
                return True
        return False

    def send_buffered(self, sent: Sent, body: dict) -> bool:
        # Now and then the client gives up waiting, as a dropped connection would.
        drop = self.rng.random() < 0.1
        try:
            res = self.http.post(f"/sessions/{sent.session}/messages", json=body, timeout=0.05 if drop else 30)
        except httpx.HTTPError:
            self.tally.add("client disconnects" if drop else "transport errors")
            time.sleep(0.2)
            return False
        if is_server_error(res):
            self.tally.server_error(f"POST messages: {res.status_code} {res.text[:200]}")
        if res.status_code in (200, 201):
            exchange = res.json()
            reply = exchange["reply"]
            sent.reply_id = reply["id"]
            if reply["status"] == "complete" and res.status_code == 201:
                sent.received_complete = reply["content"]
            return True
        if problem_code(res) in LLM_CODES:
            self.tally.add(f"answers {res.status_code} {problem_code(res)}")
            return False  # stored; the retry answers the exchange
        if res.status_code in (409, 429, 503):
            self.pause_for(res)
            return False
        self.tally.server_error(f"unexpected answer to a send: {res.status_code} {res.text[:200]}")
        time.sleep(0.5)
        return False

    def read_events(self, res: httpx.Response, sent: Sent, drop_after: int | None):
        """Reads SSE events; returns (acknowledged, last id, text, final event).
        The text is None when no delta came (a repeat of a send that has
        ended: its stream is the two events `message.created` and the end)."""
        acked, last_id, text, final = False, None, None, None
        event, data, ident, count = None, [], None, 0
        for line in res.iter_lines():
            if line.startswith(":"):
                continue
            if line == "":
                if event is None:
                    continue
                payload = json.loads("\n".join(data)) if data else {}
                count += 1
                if event == "message.created":
                    acked = True
                    sent.reply_id = payload["reply_id"]
                elif event == "reply.delta":
                    text = (text or "") + payload["delta"]
                elif event in ("reply.completed", "reply.cancelled", "error"):
                    final = (event, payload)
                if ident is not None:
                    last_id = ident
                if final or (drop_after is not None and count >= drop_after):
                    break
                event, data, ident = None, [], None
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                ident = value
        return acked, last_id, text, final

    def send_streamed(self, sent: Sent, body: dict) -> bool:
        drop_after = self.rng.randint(1, 4) if self.rng.random() < 0.3 else None
        try:
            with self.http.stream("POST", f"/sessions/{sent.session}/messages/stream", json=body) as res:
                if res.status_code != 200:
                    res.read()
                    if is_server_error(res):
                        self.tally.server_error(f"POST stream: {res.status_code} {res.text[:200]}")
                    if res.status_code not in (409, 429, 503) and problem_code(res) not in LLM_CODES:
                        self.tally.server_error(f"unexpected answer to a streamed send: {res.status_code} {res.text[:200]}")
                    self.pause_for(res)
                    return False
                acked, last_id, text, final = self.read_events(res, sent, drop_after)
        except httpx.HTTPError:
            self.tally.add("transport errors")
            return False
        if drop_after is not None and not final:
            self.tally.add("client disconnects")
        if not acked:
            return False
        if final is not None:
            self.finish(sent, text, final)
            return True
        # Dropped mid-reply: rejoin from the last event, cancel it, or leave it.
        choice = self.rng.random()
        if choice < 0.5:
            self.tally.add("rejoins")
            self.rejoin(sent, last_id, text)
        elif choice < 0.7:
            self.tally.add("cancels")
            self.cancel(sent)
        return True

    def cancel(self, sent: Sent) -> None:
        """Stops the reply, trying again while the store is unavailable (a
        documented answer, as when DynamoDB Local restarts) or the wire fails."""
        for _ in range(20):
            res = self.request("POST", f"/sessions/{sent.session}/messages/{sent.reply_id}/cancel")
            if res is not None and res.status_code in (200, 202):
                return
            if res is not None and not (res.status_code in (429, 503) and not is_server_error(res)):
                self.tally.server_error(f"unexpected answer to a cancel: {res.status_code} {res.text[:200]}")
                return
            self.pause_for(res)

    def rejoin(self, sent: Sent, last_id: str | None, text: str) -> None:
        headers = {"Last-Event-ID": last_id} if last_id and last_id != "0" else {}
        for _ in range(5):
            try:
                with self.http.stream("GET", f"/sessions/{sent.session}/messages/{sent.reply_id}/stream", headers=headers) as res:
                    if res.status_code == 204:
                        return
                    if res.status_code != 200:
                        res.read()
                        if is_server_error(res):
                            self.tally.server_error(f"rejoin: {res.status_code} {res.text[:200]}")
                        time.sleep(0.3)
                        continue
                    _, _, more, final = self.read_events(res, sent, None)
                    if final is not None:
                        self.finish(sent, None if text is None and more is None else (text or "") + (more or ""), final)
                    return
            except httpx.HTTPError:
                self.tally.add("transport errors")
                time.sleep(0.3)

    def finish(self, sent: Sent, text: str | None, final) -> None:
        """Records what the reader received of a complete reply: its deltas,
        or, from a repeat that carried no delta, the reply in the end event."""
        event, payload = final
        if event == "reply.completed" and payload["reply"]["status"] == "complete":
            sent.received_complete = text if text is not None else payload["reply"]["content"]


def history(client: Client, session: str) -> list[dict] | None:
    items, cursor = [], None
    while True:
        params = {"limit": 100, "order": "asc"}
        if cursor:
            params["cursor"] = cursor
        res = client.request("GET", f"/sessions/{session}/messages", params=params)
        if res is None or res.status_code != 200:
            return None
        page = res.json()
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def audit(client: Client, sessions: dict[str, list[Sent]], tally: Tally) -> dict:
    problems = collections.Counter()
    notes: list[str] = []
    deadline = time.monotonic() + SETTLE_S
    histories: dict[str, list[dict]] = {}
    for session in sessions:
        while True:
            items = history(client, session)
            if items is None:
                time.sleep(1)
                continue
            if all(m["status"] in FINAL for m in items) or time.monotonic() > deadline:
                histories[session] = items
                break
            time.sleep(0.5)
    for session, sends in sessions.items():
        items = histories[session]
        seqs = [m["seq"] for m in items]
        if seqs != sorted(set(seqs)):
            problems["seq not strictly increasing"] += 1
            notes.append(f"{session}: seqs {seqs}")
        by_cmid = collections.defaultdict(list)
        for m in items:
            if m["role"] == "user" and m.get("client_message_id"):
                by_cmid[m["client_message_id"]].append(m)
            if m["status"] not in FINAL:
                problems["replies not in a final state"] += 1
                notes.append(f"{session}: message {m['id']} is {m['status']}")
        replies = {m["seq"]: m for m in items if m["role"] == "assistant"}
        order = []
        for sent in sends:
            stored = by_cmid.get(sent.client_message_id, [])
            if not stored:
                problems["lost"] += 1
                notes.append(f"{session}: {sent.client_message_id} acknowledged but not stored")
                continue
            if len(stored) > 1:
                problems["duplicated"] += 1
                notes.append(f"{session}: {sent.client_message_id} stored {len(stored)} times")
            user = stored[0]
            order.append(user["seq"])
            if user["content"] != sent.content:
                problems["lost"] += 1
                notes.append(f"{session}: {sent.client_message_id} stored with other content")
            reply = replies.get(user["seq"] + 1)
            if reply is None:
                problems["lost"] += 1
                notes.append(f"{session}: no reply after {sent.client_message_id}")
                continue
            full = expected_text(sent.tokens)
            text = reply["content"] or ""
            if reply["status"] == "complete":
                if text != full:
                    problems["complete reply not what the model sent"] += 1
                    notes.append(f"{session}: complete reply {reply['id']} is {text!r}, the model sent {full!r}")
                if sent.received_complete is not None and sent.received_complete != text:
                    problems["complete reply not what its reader received"] += 1
                    notes.append(f"{session}: reader of {reply['id']} received {sent.received_complete!r}, stored {text!r}")
                if sent.fault in ("cut", "error", "hang"):
                    problems["a faulty reply stored as complete"] += 1
                    notes.append(f"{session}: reply {reply['id']} with fault {sent.fault} is complete")
            elif not full.startswith(text):
                problems["partial reply not a prefix of what the model sent"] += 1
                notes.append(f"{session}: {reply['status']} reply {reply['id']} is {text!r}, not a prefix of {full!r}")
            tally.add(f"replies {reply['status']}")
        if order != sorted(order):
            problems["out of order"] += 1
            notes.append(f"{session}: the client's sends are stored at seqs {order}")
    return {"problems": problems, "notes": notes}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--sends", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=12)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--restart-dynamodb", default=None, help="shell command run once halfway")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    print(f"soak: {args.sends} sends, {args.clients} clients, seed {seed}", flush=True)

    tally = Tally()
    sessions: dict[str, list[Sent]] = {}
    sessions_lock = threading.Lock()
    next_send = iter(range(args.sends))
    next_lock = threading.Lock()
    started = time.monotonic()
    restarted = threading.Event()

    def take() -> int | None:
        with next_lock:
            return next(next_send, None)

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        client = Client(args.base, args.key, tally, rng, f"client {index}")
        session = client.new_session()
        with sessions_lock:
            sessions[session] = []
        while (n := take()) is not None:
            if args.restart_dynamodb and n == args.sends // 2 and not restarted.is_set():
                restarted.set()
                threading.Thread(target=restart, daemon=True).start()
            if rng.random() < 0.05:
                # A new conversation now and then.
                session = client.new_session()
                with sessions_lock:
                    sessions[session] = []
            tokens = rng.randint(4, 40)
            fault = rng.choice(FAULTS)
            route = rng.choice(["buffered", "stream"])
            sent = Sent(session, str(uuid.uuid4()), f"send {n} [soak {tokens} {fault}]", tokens, fault, route)
            tally.add(f"faults {fault}")
            tally.add(f"sends {route}")
            if client.send(sent):
                with sessions_lock:
                    sessions[session].append(sent)
                tally.add("acknowledged")
            else:
                with tally.lock:
                    tally.lost.append(sent.client_message_id)

    def restart() -> None:
        print("soak: restarting DynamoDB Local", flush=True)
        at = time.monotonic()
        subprocess.run(args.restart_dynamodb, shell=True, check=True)
        tally.add("DynamoDB Local restarts")
        print(f"soak: DynamoDB Local back after {time.monotonic() - at:.1f}s", flush=True)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    auditor = Client(args.base, args.key, tally, random.Random(seed), "auditor")
    result = audit(auditor, sessions, tally)
    problems = result["problems"]
    lost = problems["lost"] + len(tally.lost)
    duplicated = problems["duplicated"]
    errors = len(tally.server_errors)
    print(f"soak: {elapsed:.0f}s, seed {seed}")
    for key in sorted(tally.counts):
        print(f"  {key}: {tally.counts[key]}")
    print(f"  lost: {lost}")
    print(f"  duplicated: {duplicated}")
    print(f"  server errors: {errors}")
    for key in sorted(problems):
        if key not in ("lost", "duplicated"):
            print(f"  {key}: {problems[key]}")
    for line in (result["notes"] + tally.server_errors)[:30]:
        print(f"  ! {line}")
    for cmid in tally.lost[:10]:
        print(f"  ! never acknowledged: {cmid}")
    bad = lost or duplicated or errors or sum(problems.values())
    print("soak: FAILED" if bad else "soak: passed (0 lost, 0 duplicated, 0 server errors)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
