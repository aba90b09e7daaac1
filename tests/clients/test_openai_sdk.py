"""The official OpenAI Python SDK, unchanged, against LlmChat's /v1 routes.

Written against OpenAI's documented API: whatever an application does with
the SDK and OpenAI here must work the same against LlmChat. The model is the
stack's scripted Ollama (see conftest.py): a short reply, or a slow one (50
tokens, 100 ms apart) for a user message holding `[slow]`.
"""

import json
import time

import openai
import pytest
from openai._streaming import SSEDecoder

from conftest import DEADLINE, MODEL, SLOW, read_events, sdk_client

TERMINAL = ("completed", "failed", "cancelled", "incomplete")


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def assert_usage_adds_up(usage, prompt: str, completion: str) -> None:
    assert usage is not None, "usage is missing"
    counts = {name: getattr(usage, name) for name in (prompt, completion, "total_tokens")}
    assert all(isinstance(n, int) and n >= 0 for n in counts.values()), counts
    assert counts[completion] > 0, counts
    assert counts["total_tokens"] == counts[prompt] + counts[completion], counts


def assert_openai_error(err: openai.APIStatusError) -> None:
    """The body is OpenAI's `{"error": {"message", "type", "param", "code"}}`:
    the SDK hands over what is inside `error` as `.body`."""
    assert isinstance(err.body, dict), f"the error body is not OpenAI's {{'error': {{...}}}}: {err.body!r}"
    assert isinstance(err.body.get("message"), str) and err.body["message"], err.body
    assert isinstance(err.body.get("type"), str) and err.body["type"], err.body


def deltas(events) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def poll(client: openai.OpenAI, response_id: str, until=lambda r: r.status in TERMINAL):
    deadline = time.monotonic() + DEADLINE
    while True:
        response = client.responses.retrieve(response_id)
        if until(response):
            return response
        assert time.monotonic() < deadline, f"{response_id} still {response.status} after {DEADLINE}s"
        time.sleep(0.2)


def history(http, session_id: str) -> list[dict]:
    """The LlmChat session's messages, oldest first, through its own route."""
    response = http.get(f"/sessions/{session_id}/messages", params={"limit": 100})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def sse_events(raw: bytes) -> list:
    """The events in a response body as the SDK's own decoder splits them."""
    return list(SSEDecoder().iter_bytes(iter([raw])))


def assert_sdk_can_read(events) -> list:
    """Every event must carry data the SDK can parse: JSON, or `[DONE]`. An
    event without data (a lone `id:`, `retry:` or `event:` field, or a
    keep-alive comment or blank line after an `id:` field, which the SDK's
    decoder then dispatches again) breaks the SDK's stream with a
    JSONDecodeError. A JSON object with a top-level `error` makes it raise."""
    parsed = []
    for i, event in enumerate(events):
        if event.data.startswith("[DONE]"):
            parsed.append("[DONE]")
            continue
        try:
            data = json.loads(event.data)
        except ValueError:
            pytest.fail(f"SSE event {i} has data the SDK cannot parse: {event!r} (after {parsed[-1:]!r})")
        assert isinstance(data, dict), f"SSE event {i} is not a JSON object: {event!r}"
        parsed.append(data)
    return parsed


def post_raw_stream(http, path: str, body: dict) -> tuple:
    with http.stream("POST", f"/v1{path}", json=body, headers={"Accept": "application/json"}) as response:
        raw = response.read()
    assert response.status_code == 200, raw[:2000]
    assert response.headers.get("content-type", "").startswith("text/event-stream"), response.headers
    return response, raw


# ---------------------------------------------------------------- chat completions


def test_chat_completion(client):
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": "How are you?"},
        ],
    )
    assert completion.object == "chat.completion"
    assert completion.id
    assert completion.model == MODEL
    assert isinstance(completion.created, int) and completion.created > 1_600_000_000
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert choice.finish_reason == "stop"
    assert_usage_adds_up(completion.usage, "prompt_tokens", "completion_tokens")


def test_chat_completion_stream_with_usage(client):
    stream = client.chat.completions.create(
        model=MODEL, messages=user("Hello"), stream=True, stream_options={"include_usage": True}
    )
    chunks = read_events(stream)
    assert chunks, "no chunks"
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1, "every chunk of one completion has its id"
    assert {c.model for c in chunks} == {MODEL}
    *body, last = chunks
    # include_usage: one more chunk, with empty choices and the usage; the
    # others have usage null.
    assert last.choices == [], last
    assert_usage_adds_up(last.usage, "prompt_tokens", "completion_tokens")
    assert all(c.usage is None for c in body)
    assert all(len(c.choices) == 1 and c.choices[0].index == 0 for c in body)
    text = "".join(c.choices[0].delta.content or "" for c in body)
    assert text.strip(), "the deltas hold no text"
    assert body[0].choices[0].delta.role == "assistant", "the first delta names the role"
    finishes = [c.choices[0].finish_reason for c in body]
    assert finishes[-1] == "stop" and not any(finishes[:-1]), finishes


def test_chat_completion_stream_without_usage(client):
    chunks = read_events(client.chat.completions.create(model=MODEL, messages=user("Hello"), stream=True))
    assert chunks and all(len(c.choices) == 1 and c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks).strip()
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_chat_completion_stream_framing(http):
    """On the wire: `data: {json}` events the SDK can read, the last `data: [DONE]`."""
    _, raw = post_raw_stream(
        http,
        "/chat/completions",
        {"model": MODEL, "messages": user("Hello"), "stream": True, "stream_options": {"include_usage": True}},
    )
    parsed = assert_sdk_can_read(sse_events(raw))
    assert parsed and parsed[-1] == "[DONE]", f"the stream does not end with data: [DONE]: {raw[-300:]!r}"
    assert parsed.count("[DONE]") == 1
    assert all(p["object"] == "chat.completion.chunk" for p in parsed[:-1])


def test_chat_completion_slow_stream(client, http):
    """A long reply (50 tokens over 5 s) streams through the SDK to its end,
    whatever fills the pauses (keep-alives come every 50 ms on this stack)."""
    _, raw = post_raw_stream(http, "/chat/completions", {"model": MODEL, "messages": user(f"Go on {SLOW}"), "stream": True})
    assert assert_sdk_can_read(sse_events(raw))[-1] == "[DONE]"
    chunks = read_events(client.chat.completions.create(model=MODEL, messages=user(f"Tell me more {SLOW}"), stream=True))
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) >= 10, f"only {len(content)} deltas"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_chat_completion_stream_helper(client):
    """The SDK's own accumulator (`client.chat.completions.stream`)."""
    with client.chat.completions.stream(model=MODEL, messages=user("Hello")) as stream:
        events = read_events(stream)
        final = stream.get_final_completion()
    text = "".join(e.delta for e in events if e.type == "content.delta")
    assert text.strip()
    assert final.choices[0].message.content == text
    assert final.choices[0].finish_reason == "stop"


# ---------------------------------------------------------------- models


def test_models(client):
    # Ids are backend/model; the scripted Ollama is the default backend, `ollama`.
    qualified = f"ollama/{MODEL}"
    models = list(client.models.list())
    assert qualified in [m.id for m in models]
    assert all(m.object == "model" and isinstance(m.owned_by, str) and isinstance(m.created, int) for m in models)
    for name in (MODEL, qualified):
        model = client.models.retrieve(name)
        assert model.id == qualified
        assert model.object == "model"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.models.list(), id="models.list"),
        pytest.param(lambda c: c.models.retrieve(MODEL), id="models.retrieve"),
        pytest.param(lambda c: c.chat.completions.create(model=MODEL, messages=user("Hi")), id="chat.completions"),
        pytest.param(
            lambda c: c.chat.completions.create(model=MODEL, messages=user("Hi"), stream=True), id="chat.completions-stream"
        ),
        pytest.param(lambda c: c.responses.create(model=MODEL, input="Hi"), id="responses.create"),
        pytest.param(lambda c: c.responses.retrieve("resp_0123456789"), id="responses.retrieve"),
    ],
)
def test_bad_key_is_authentication_error(stack, call):
    bad = sdk_client(stack.base, "lck_nosuchkey_0123456789abcdef")
    with pytest.raises(openai.AuthenticationError) as err:
        call(bad)
    assert err.value.status_code == 401
    assert_openai_error(err.value)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.chat.completions.create(model="no-such-model", messages=user("Hi")), id="chat.completions"),
        pytest.param(
            lambda c: c.chat.completions.create(model="no-such-model", messages=user("Hi"), stream=True),
            id="chat.completions-stream",
        ),
        pytest.param(lambda c: c.models.retrieve("no-such-model"), id="models.retrieve"),
        pytest.param(lambda c: c.responses.create(model="no-such-model", input="Hi"), id="responses.create"),
        pytest.param(
            lambda c: c.responses.create(model="no-such-model", input="Hi", stream=True), id="responses.create-stream"
        ),
    ],
)
def test_unknown_model_is_not_found(client, call):
    with pytest.raises(openai.NotFoundError) as err:
        call(client)
    assert_openai_error(err.value)
    assert err.value.code == "model_not_found", err.value.body


@pytest.mark.parametrize(
    "param, call",
    [
        pytest.param(
            "temperature",
            lambda c: c.chat.completions.create(model=MODEL, messages=user("Hi"), temperature=5),
            id="chat-temperature",
        ),
        pytest.param(
            "logit_bias",
            lambda c: c.chat.completions.create(model=MODEL, messages=user("Hi"), extra_body={"logit_bias": {"50256": -100}}),
            id="chat-logit_bias",
        ),
        pytest.param("n", lambda c: c.chat.completions.create(model=MODEL, messages=user("Hi"), n=2), id="chat-n"),
        pytest.param("messages", lambda c: c.chat.completions.create(model=MODEL, messages=[]), id="chat-messages"),
        pytest.param(
            "temperature",
            lambda c: c.chat.completions.create(model=MODEL, messages=user("Hi"), temperature=5, stream=True),
            id="chat-stream-temperature",
        ),
        pytest.param(
            "temperature", lambda c: c.responses.create(model=MODEL, input="Hi", temperature=5), id="responses-temperature"
        ),
        pytest.param(
            "logit_bias",
            lambda c: c.responses.create(model=MODEL, input="Hi", extra_body={"logit_bias": {"50256": -100}}),
            id="responses-logit_bias",
        ),
    ],
)
def test_bad_parameter_is_bad_request(client, param, call):
    with pytest.raises(openai.BadRequestError) as err:
        call(client)
    assert_openai_error(err.value)
    assert err.value.param == param, err.value.body
    assert err.value.type == "invalid_request_error", err.value.body


# ---------------------------------------------------------------- responses


def test_response(client):
    response = client.responses.create(model=MODEL, input="Hello")
    assert response.object == "response"
    assert response.id
    assert response.model == MODEL
    assert response.status == "completed"
    assert response.output_text.strip()
    message = response.output[-1]
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert_usage_adds_up(response.usage, "input_tokens", "output_tokens")
    again = client.responses.retrieve(response.id)
    assert (again.id, again.status, again.output_text) == (response.id, "completed", response.output_text)


def test_response_with_instructions_and_message_input(client):
    response = client.responses.create(
        model=MODEL,
        instructions="You are terse.",
        input=[{"role": "user", "content": "Hello"}],
    )
    assert response.status == "completed"
    assert response.output_text.strip()


def test_response_stream(client):
    events = read_events(client.responses.create(model=MODEL, input="Hello", stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created", types
    assert types[-1] == "response.completed", types
    assert "response.output_text.delta" in types, types
    sequence = [e.sequence_number for e in events]
    assert all(isinstance(n, int) for n in sequence), sequence
    assert all(a < b for a, b in zip(sequence, sequence[1:])), f"sequence numbers do not increase: {sequence}"
    final = events[-1].response
    assert final.id == events[0].response.id
    assert final.status == "completed"
    assert final.output_text == deltas(events)
    assert_usage_adds_up(final.usage, "input_tokens", "output_tokens")
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_response_stream_follows_openai_event_order(client):
    """OpenAI's events for one text message, in order: what the SDK's
    accumulator (`client.responses.stream`) expects. (OpenAI numbers them
    0, 1, 2, ...; the SDK needs them only to increase.)"""
    events = read_events(client.responses.create(model=MODEL, input="Hello", stream=True))
    types = [e.type for e in events]
    collapsed = [t for i, t in enumerate(types) if not (t == "response.output_text.delta" and types[i - 1] == t)]
    assert collapsed == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ], types
    item_id = events[2].item.id
    assert item_id and events[-2].item.id == item_id
    for e in events[2:-1]:
        assert e.output_index == 0, e
        if e.type not in ("response.output_item.added", "response.output_item.done"):
            assert (e.item_id, e.content_index) == (item_id, 0), e
    text = deltas(events)
    assert events[-4].text == text  # response.output_text.done
    assert events[-3].part.text == text  # response.content_part.done
    assert events[-2].item.content[0].text == text  # response.output_item.done
    assert events[0].response.status in ("queued", "in_progress")
    assert events[1].response.status == "in_progress"


def test_response_stream_framing(http):
    """On the wire: events the SDK can read, each with its `type` and
    `sequence_number`; an `event:` field, where there is one, names the type."""
    _, raw = post_raw_stream(http, "/responses", {"model": MODEL, "input": f"Hello {SLOW}", "stream": True})
    events = sse_events(raw)
    parsed = assert_sdk_can_read(events)
    for event, data in zip(events, parsed):
        if data == "[DONE]":
            continue
        assert isinstance(data.get("type"), str) and isinstance(data.get("sequence_number"), int), data
        assert event.event in (None, data["type"]), f"event: {event.event} but type {data['type']}"
    assert parsed[-1] == "[DONE]" or parsed[-1]["type"] == "response.completed"


def test_response_stream_helper(client):
    """The SDK's own accumulator (`client.responses.stream`)."""
    with client.responses.stream(model=MODEL, input="Hello") as stream:
        events = read_events(stream)
        final = stream.get_final_response()
    assert final.status == "completed"
    assert final.output_text == deltas(events) and final.output_text.strip()


def test_previous_response_id_continues_the_conversation(client, http):
    first = client.responses.create(model=MODEL, input="My name is Ada.")
    second = client.responses.create(model=MODEL, input="What is my name?", previous_response_id=first.id)
    assert second.status == "completed"
    assert second.previous_response_id == first.id
    again = client.responses.retrieve(second.id)
    assert (again.id, again.output_text, again.previous_response_id) == (second.id, second.output_text, first.id)
    assert second.conversation is not None, "the response names no conversation (the LlmChat session)"
    messages = history(http, second.conversation.id)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"], messages
    assert [m["content"] for m in messages] == [
        "My name is Ada.", first.output_text, "What is my name?", second.output_text
    ], messages


def test_conversation_appends_to_a_session(client, http):
    created = http.post("/sessions", json={"title": "client tests: conversation"})
    assert created.status_code == 201, created.text
    session = created.json()["id"]
    first = client.responses.create(model=MODEL, input="One", conversation=session)
    assert first.status == "completed"
    assert first.conversation is not None and first.conversation.id == session
    assert len(history(http, session)) == 2
    # The object form of the parameter, as the SDK also takes it.
    second = client.responses.create(model=MODEL, input="Two", conversation={"id": session})
    assert second.conversation.id == session
    messages = history(http, session)
    assert len(messages) == 4, messages
    assert [m["content"] for m in messages[2:]] == ["Two", second.output_text]


def test_background_response(client):
    response = client.responses.create(model=MODEL, input=f"Take your time {SLOW}", background=True)
    assert response.status in ("queued", "in_progress"), response.status
    assert response.background is True
    done = poll(client, response.id)
    assert done.status == "completed", done.status
    assert done.output_text.strip()
    assert_usage_adds_up(done.usage, "input_tokens", "output_tokens")


def test_resume_a_background_stream(client):
    """Read a few events of a slow background stream, drop it, then rejoin
    after the last one seen: the rest follows with no gap and no repeat."""
    stream = client.responses.create(model=MODEL, input=f"Count {SLOW}", background=True, stream=True)
    seen_deltas = []

    def third_delta(event) -> bool:
        if event.type == "response.output_text.delta":
            seen_deltas.append(event)
        return len(seen_deltas) == 3

    first = read_events(stream, stop=third_delta)
    stream.close()
    assert first[0].type == "response.created"
    response_id = first[0].response.id
    last = first[-1].sequence_number
    rest = read_events(client.responses.retrieve(response_id, stream=True, starting_after=last))
    assert rest, "nothing after the events already seen"
    assert rest[-1].type == "response.completed", [e.type for e in rest]
    sequence = [e.sequence_number for e in first + rest]
    assert all(a < b for a, b in zip(sequence, sequence[1:])), f"repeat or disorder: {sequence}"
    final = rest[-1].response
    # No gap and no repeat: the text seen before and after the break is the whole text, once.
    assert deltas(first) + deltas(rest) == final.output_text
    assert len(final.output_text.split()) > len(deltas(first).split()), "the reply had ended before the stream was dropped"
    assert client.responses.retrieve(response_id).output_text == final.output_text


def test_replay_a_background_stream_with_the_stream_helper(client):
    """`client.responses.stream(response_id=...)` fetches the events from the
    start (`stream=true`, no `starting_after`) and skips the ones up to
    `starting_after` itself."""
    response = client.responses.create(model=MODEL, input="Hello", background=True)
    done = poll(client, response.id)
    with client.responses.stream(response_id=response.id, starting_after=2) as stream:
        events = read_events(stream)
        final = stream.get_final_response()
    assert events and all(e.sequence_number > 2 for e in events)
    assert final.output_text == done.output_text


def test_cancel_a_background_response(client):
    response = client.responses.create(model=MODEL, input=f"Go on and on {SLOW}", background=True)
    poll(client, response.id, until=lambda r: r.status != "queued")
    time.sleep(0.5)
    cancelled = client.responses.cancel(response.id)
    assert cancelled.id == response.id
    assert cancelled.status == "cancelled", cancelled.status
    settled = poll(client, response.id)
    assert settled.status == "cancelled", settled.status


def test_delete_a_response(client):
    response = client.responses.create(model=MODEL, input="Forget this")
    assert client.responses.delete(response.id) is None
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.retrieve(response.id)
    assert_openai_error(err.value)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(response.id)


# ---------------------------------------------------------------- isolation


def test_another_owner_cannot_reach_a_response(client, other_client):
    response = client.responses.create(model=MODEL, input="Mine")
    for name, call in [
        ("retrieve", lambda: other_client.responses.retrieve(response.id)),
        ("retrieve stream", lambda: read_events(other_client.responses.retrieve(response.id, stream=True))),
        ("cancel", lambda: other_client.responses.cancel(response.id)),
        ("delete", lambda: other_client.responses.delete(response.id)),
    ]:
        with pytest.raises(openai.NotFoundError) as err:
            call()
        assert_openai_error(err.value)
    assert client.responses.retrieve(response.id).status == "completed", "another owner changed the response"


def test_another_owner_cannot_continue_a_conversation(client, other_client, http):
    """Refused as if it did not exist: the same error as for an unknown id."""
    response = client.responses.create(model=MODEL, input="Mine")
    session = http.post("/sessions", json={}).json()["id"]

    def refusal(**kwargs):
        with pytest.raises(openai.APIStatusError) as err:
            other_client.responses.create(model=MODEL, input="Theirs", **kwargs)
        assert err.value.status_code in (400, 404), err.value.body
        return type(err.value), err.value.param

    assert refusal(previous_response_id=response.id) == refusal(previous_response_id="resp_" + "0" * 48)
    assert refusal(conversation=session) == refusal(conversation="00000000-0000-4000-8000-000000000000")
    assert len(history(http, session)) == 0


# ---------------------------------------------------------------- strict schemas


def test_strict_chat_completion(strict_client):
    strict_client.chat.completions.create(model=MODEL, messages=user("Hello"))


def test_strict_chat_completion_chunks(strict_client):
    read_events(
        strict_client.chat.completions.create(
            model=MODEL, messages=user("Hello"), stream=True, stream_options={"include_usage": True}
        )
    )


def test_strict_models(strict_client):
    list(strict_client.models.list())
    strict_client.models.retrieve(MODEL)


def test_strict_response_and_events(strict_client):
    response = strict_client.responses.create(model=MODEL, input="Hello")
    strict_client.responses.retrieve(response.id)
    read_events(strict_client.responses.create(model=MODEL, input="Hello", stream=True))
    background = strict_client.responses.create(model=MODEL, input=f"Slowly {SLOW}", background=True)
    strict_client.responses.cancel(background.id)
