"""A Python client generated from openapi.yaml (openapi-python-client), used
as an application would, against LlmChat's own routes: it must send what the
routes take and parse what they answer into its models (its enums and
required fields are strict: an undocumented value or a missing field fails).

scripts/client-tests.sh generates it into the directory LLMCHAT_GENERATED_CLIENT
(package `llmchat_client`) before running this.
"""

import datetime
import importlib
import os
import pkgutil
import sys
import uuid

import pytest

from conftest import MODEL, issue_key


@pytest.fixture(scope="module")
def generated():
    where = os.environ.get("LLMCHAT_GENERATED_CLIENT")
    if not where:
        pytest.fail("LLMCHAT_GENERATED_CLIENT is not set: run this through scripts/client-tests.sh")
    sys.path.insert(0, where)
    return importlib.import_module("llmchat_client")


def operation(generated, operation_id: str):
    """The module of an operation, wherever its tag put it (api/<tag>/<operationId>.py)."""
    api = importlib.import_module(f"{generated.__name__}.api")
    for tag in pkgutil.iter_modules(api.__path__):
        try:
            return importlib.import_module(f"{api.__name__}.{tag.name}.{operation_id}")
        except ModuleNotFoundError:
            continue
    pytest.fail(f"the generated client has no operation {operation_id}")


def model(generated, name: str):
    return getattr(importlib.import_module(f"{generated.__name__}.models"), name)


@pytest.fixture(scope="module")
def api(generated, stack):
    # An owner of its own: its lists hold only what this test made, not the
    # contract test's thousand sessions on the stack's key.
    key = issue_key(stack, f"generated-client-{uuid.uuid4().hex[:8]}")
    with generated.AuthenticatedClient(base_url=stack.base, token=key, raise_on_unexpected_status=True) as c:
        yield c


def test_sessions_and_messages(generated, api):
    create_session = operation(generated, "create_session")
    list_sessions = operation(generated, "list_sessions")
    get_session = operation(generated, "get_session")
    send_message = operation(generated, "send_message")
    list_messages = operation(generated, "list_messages")
    delete_session = operation(generated, "delete_session")
    Session, Problem = model(generated, "Session"), model(generated, "Problem")

    title = f"generated client {uuid.uuid4()}"
    created = create_session.sync_detailed(
        client=api, body=model(generated, "CreateSession")(title=title, model=MODEL, system_prompt="Be brief.")
    )
    assert created.status_code == 201, created.content
    session = created.parsed
    assert isinstance(session, Session), session
    assert isinstance(session.id, uuid.UUID)
    assert (session.title, session.model, session.system_prompt) == (title, MODEL, "Be brief.")
    assert isinstance(session.created_at, datetime.datetime)

    listed = list_sessions.sync_detailed(client=api, limit=100)
    assert listed.status_code == 200, listed.content
    assert session.id in [s.id for s in listed.parsed.items], "the new session is not on the first page"
    assert all(isinstance(s, Session) for s in listed.parsed.items), "a listed session is the same type as a fetched one"

    got = get_session.sync(session.id, client=api)
    assert isinstance(got, Session) and got.id == session.id

    sent = send_message.sync_detailed(session.id, client=api, body=model(generated, "SendMessage")(content="Hello"))
    assert sent.status_code in (200, 201), sent.content
    exchange = sent.parsed
    assert exchange.user_message.content == "Hello"
    assert exchange.reply.content.strip()
    assert exchange.reply.role.value == "assistant"
    assert exchange.reply.status.value == "complete"

    page = list_messages.sync(session.id, client=api)
    assert [m.id for m in page.items] == [exchange.user_message.id, exchange.reply.id]

    deleted = delete_session.sync_detailed(session.id, client=api)
    assert deleted.status_code == 204, deleted.content
    gone = get_session.sync_detailed(session.id, client=api)
    assert gone.status_code == 404
    assert isinstance(gone.parsed, Problem) and gone.parsed.status == 404


def test_problems_parse(generated, stack):
    """Errors come back as the document's Problem (its `code` is an enum)."""
    list_sessions = operation(generated, "list_sessions")
    Problem = model(generated, "Problem")
    with generated.AuthenticatedClient(base_url=stack.base, token="lck_nosuchkey_0123456789abcdef") as bad:
        unauthorized = list_sessions.sync_detailed(client=bad)
    assert unauthorized.status_code == 401
    assert isinstance(unauthorized.parsed, Problem) and unauthorized.parsed.code.value == "unauthorized"
