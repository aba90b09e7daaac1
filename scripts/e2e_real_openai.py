"""`make e2e-real`, the OpenAI SDK part: the official `openai` package,
unchanged but for `base_url` and `api_key`, against the running stack and a
real model: a chat completion, plain and streamed, and the Responses API
(create, chain, stream, retrieve). Runs in the dev tools' venv, where
scripts/requirements-dev.txt pins `openai`.

usage: e2e_real_openai.py BASE_URL API_KEY MODEL
"""

import sys

from openai import OpenAI

BASE, KEY, MODEL = sys.argv[1], sys.argv[2], sys.argv[3]
client = OpenAI(base_url=f"{BASE}/v1", api_key=KEY, timeout=300)
failures = []


def check(ok, what):
    print(("  ok    " if ok else "  FAIL  ") + what)
    if not ok:
        failures.append(what)


print(f"e2e-real, OpenAI SDK: {BASE}/v1 with {MODEL}")
bounded = {"max_tokens": 48, "temperature": 0, "seed": 7}
ask = [{"role": "user", "content": "Name three colours of the rainbow."}]

completion = client.chat.completions.create(model=MODEL, messages=ask, **bounded)
check(bool(completion.choices[0].message.content.strip()), "chat completion: the model answered")
check(completion.usage.completion_tokens > 0, "chat completion: usage counts the reply")

pieces, usage = [], None
for chunk in client.chat.completions.create(model=MODEL, messages=ask, stream=True, stream_options={"include_usage": True}, **bounded):
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
    if chunk.usage:
        usage = chunk.usage
check(len(pieces) >= 2, f"streamed chat completion: tokens arrive one by one ({len(pieces)} chunks)")
check(usage is not None and usage.completion_tokens > 0, "streamed chat completion: a usage chunk at the end")

check(any(m.id == MODEL for m in client.models.list()), f"models list {MODEL}")

first = client.responses.create(model=MODEL, input="Name a colour.", max_output_tokens=32, temperature=0)
check(first.status in ("completed", "incomplete") and first.output_text.strip() != "", "response: the model answered")
second = client.responses.create(model=MODEL, input="And another one?", previous_response_id=first.id, max_output_tokens=32)
check(second.conversation.id == first.conversation.id, "response: previous_response_id continues the conversation")
kinds = [e.type for e in client.responses.create(model=MODEL, input="Say hi.", stream=True, max_output_tokens=16)]
check(kinds[0] == "response.created" and kinds.count("response.output_text.delta") >= 1, "streamed response: created, then text deltas")
check(kinds[-1] in ("response.completed", "response.incomplete"), f"streamed response ends with {kinds[-1]}")
check(client.responses.retrieve(second.id).output_text == second.output_text, "retrieve gives the stored response")

if failures:
    print(f"\n{len(failures)} OpenAI SDK check(s) failed")
    sys.exit(1)
print("all OpenAI SDK checks passed")
