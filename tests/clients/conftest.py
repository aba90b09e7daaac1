"""Fixtures of the client tests (scripts/client-tests.sh runs them).

They test a running local stack, named by the variables that
`scripts/local-stack.sh env DIR` prints: STACK_BASE, STACK_KEY, STACK_TABLE
and STACK_DYNAMODB. The model is the scripted Ollama's (smollm2:135m), which
replies slowly (50 tokens, 100 ms apart) when the last user message holds
`[slow]`.
"""

import dataclasses
import os
import pathlib
import subprocess
import threading

import httpx
import openai
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = os.environ.get("LLMCHAT_CLIENT_TESTS_MODEL", "smollm2:135m")
# In a user message, asks the scripted Ollama for a slow reply.
SLOW = "[slow]"
# The longest any stream or poll of a test may take, in seconds.
DEADLINE = 60


@dataclasses.dataclass(frozen=True)
class Stack:
    base: str
    key: str
    table: str
    dynamodb: str


@pytest.fixture(scope="session")
def stack() -> Stack:
    names = ("STACK_BASE", "STACK_KEY", "STACK_TABLE", "STACK_DYNAMODB")
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.exit(
            f"{', '.join(missing)} not set: run these through scripts/client-tests.sh, "
            "or export what `scripts/local-stack.sh env DIR` prints",
            returncode=2,
        )
    return Stack(*(os.environ[n] for n in names))


def sdk_client(base: str, key: str, **options) -> openai.OpenAI:
    """The OpenAI SDK as an application would set it up for LlmChat. No
    retries: a retried request would hide the failure of the first one."""
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=30, **options)


@pytest.fixture(scope="session")
def client(stack: Stack) -> openai.OpenAI:
    return sdk_client(stack.base, stack.key)


@pytest.fixture(scope="session")
def strict_client(stack: Stack) -> openai.OpenAI:
    """The SDK validating every response and event against its pydantic
    models, as its own test suite does: a required field missing, or of
    another type, is an APIResponseValidationError naming it."""
    return sdk_client(stack.base, stack.key, _strict_response_validation=True)


def issue_key(stack: Stack, owner: str) -> str:
    """A key for `owner`, issued with the admin CLI in the stack's table."""
    env = {
        **os.environ,
        "LLMCHAT_TABLE_NAME": stack.table,
        "DYNAMODB_ENDPOINT": stack.dynamodb,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        # Where the local stack built the admin tool: nothing to compile.
        "CARGO_TARGET_DIR": os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target" / "local-stack")),
    }
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    out = subprocess.run(
        ["cargo", "run", "-q", "--bin", "llmchat-admin", "--", "issue-key", "--owner", owner],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, f"llmchat-admin issue-key failed:\n{out.stderr}"
    key = out.stdout.strip().splitlines()[-1]
    assert key.startswith("lck_"), f"llmchat-admin issue-key printed no key: {out.stdout!r}"
    return key


@pytest.fixture(scope="session")
def other_key(stack: Stack) -> str:
    """A key of another owner: STACK_OTHER_KEY, or one issued with the admin CLI."""
    return os.environ.get("STACK_OTHER_KEY") or issue_key(stack, "client-tests-other")


@pytest.fixture(scope="session")
def other_client(stack: Stack, other_key: str) -> openai.OpenAI:
    return sdk_client(stack.base, other_key)


@pytest.fixture(scope="session")
def http(stack: Stack):
    """Plain HTTP to the stack with the key: LlmChat's own routes, raw SSE."""
    with httpx.Client(base_url=stack.base, headers={"Authorization": f"Bearer {stack.key}"}, timeout=30) as c:
        yield c


def read_events(stream, stop=None, seconds=DEADLINE) -> list:
    """The items of an SDK stream, read to its end, or up to and including
    the first for which stop(item) is true. A stream that runs longer than
    `seconds` (keep-alives alone keep a read from timing out) is closed and
    fails the test."""
    expired = threading.Event()

    def expire():
        expired.set()
        stream.close()

    timer = threading.Timer(seconds, expire)
    timer.start()
    items = []
    try:
        for item in stream:
            items.append(item)
            if stop is not None and stop(item):
                break
    except Exception:
        if not expired.is_set():
            raise
    finally:
        timer.cancel()
    if expired.is_set():
        pytest.fail(f"the stream did not end within {seconds}s; {len(items)} items read")
    return items
