"""``LocalStack`` in this process: the queue, the poller and the dead-letter queue it wires.

The other tests here see ``make local`` from outside, as a person does; these look inside,
at what the harness started: the FIFO queue and its redrive policy, the poller's
invocations, a failure tried again within seconds, and a message that ends on the
dead-letter queue and is said so in the terminal.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

import local.stack
from handler.profile import messenger_profile
from handler.replies import WELCOME_OPENING
from local.harness import PAGE_ID
from local.stack import LocalStack, Options, StackError
from tests.make_local.conftest import CLEARED, OWNER

QUIET = Options(port=0, echo=True, model_latency=0, log_level="WARNING")


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What a developer's shell may hold is gone; returns the environment before start.

    moto keeps its state per process, not per server: each stack here gets its own names
    (``make local`` runs one stack per process and takes the default).
    """
    for name in [*CLEARED, *(n for n in os.environ if n.endswith("_PARAMETER"))]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TABLE_NAME", f"local-{uuid.uuid4().hex[:8]}")
    return environment()


@pytest.fixture
def start_stack(clean_env: dict[str, str]) -> Iterator[Callable[..., LocalStack]]:
    started: list[LocalStack] = []

    def start(options: Options = QUIET) -> LocalStack:
        stack = LocalStack(options)
        started.append(stack)
        return stack.start()

    yield start
    for stack in started:
        stack.stop()


def refused(url: str) -> bool:
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def queue_attributes(stack: LocalStack, url: str) -> dict[str, str]:
    assert stack.harness is not None
    return stack.harness.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
        "Attributes"
    ]


def test_the_queue_and_its_dead_letter_queue_are_made_as_deployed_with_local_retries(
    start_stack: Callable[..., LocalStack],
):
    stack = start_stack()
    harness = stack.harness
    assert harness is not None and harness.poller is not None
    assert os.environ["QUEUE_URL"] == harness.queue_url
    name = os.environ["TABLE_NAME"]
    assert harness.table == name and harness.queue_url.endswith(f"/{name}.fifo")
    assert os.environ["RETRY_DELAY_SECONDS"] == "1"
    assert os.environ["MAX_RECEIVES"] == "5"
    queue = queue_attributes(stack, harness.queue_url)
    dead = queue_attributes(stack, harness.dead_letter_url)
    assert queue["FifoQueue"] == dead["FifoQueue"] == "true"
    assert json.loads(queue["RedrivePolicy"]) == {
        "deadLetterTargetArn": dead["QueueArn"],
        "maxReceiveCount": 5,
    }
    # Lambda refuses a mapping whose queue hides messages for less than the function runs.
    assert int(queue["VisibilityTimeout"]) >= harness.poller.timeout_seconds
    assert harness.poller.max_concurrency >= 2  # Lambda's MaximumConcurrency is 2 at least

    summary = "\n".join(stack.summary())
    assert (
        "Queue:        FIFO queue (moto) + queue poller standing in for Lambda's event source "
        "mapping" in summary
    )
    assert f"{name}.fifo, one message group per person" in summary
    assert "tried again after 1 s, 3 s, 9 s and 27 s" in summary
    assert f"Dead letters: FIFO dead-letter queue {name}-dead.fifo, after 5 receives" in summary


def test_a_message_goes_through_the_queue_and_the_poller_to_the_worker(
    start_stack: Callable[..., LocalStack],
):
    stack = start_stack()
    assert stack.chat is not None and stack.graph is not None and stack.poller is not None
    psid = stack.chat.add_person()["psid"]
    assert stack.chat.send(psid, "Hello, queue")["status"] == 200
    welcome, reply = stack.graph.wait_for_texts(psid, 2, timeout=10)  # a new person
    assert welcome.startswith(WELCOME_OPENING)
    assert reply.startswith("Echo: Hello, queue")
    stack.poller.wait_idle(10)
    [record] = [r for i in stack.poller.invocations for r in i.records]
    assert record["attributes"]["MessageGroupId"] == psid  # one message group per person
    assert record["eventSource"] == "aws:sqs"
    assert {i.outcome for i in stack.poller.invocations} == {"succeeded"}
    assert stack.harness is not None and stack.harness.dead_letters() == []


def test_a_failed_send_is_tried_again_a_second_later_without_asking_the_model_twice(
    start_stack: Callable[..., LocalStack],
):
    stack = start_stack()
    assert stack.chat is not None and stack.graph is not None and stack.poller is not None
    assert stack.model is not None
    psid = stack.chat.add_person()["psid"]
    stack.chat.send(psid, "Hello")  # a known person from here: their welcome is behind them
    stack.graph.wait_for_texts(psid, 2, timeout=10)
    stack.poller.wait_idle(10)
    stack.graph.fail_next(400, 190, only="message", psid=psid)  # the page token, say
    sent = time.monotonic()
    stack.chat.send(psid, "Try me twice")
    [reply] = stack.graph.wait_for_texts(psid, 3, timeout=10)[2:]
    assert reply.startswith("Echo: Try me twice")
    assert 1.0 <= time.monotonic() - sent < 5  # RETRY_DELAY_SECONDS, not Lambda's minutes
    stack.poller.wait_idle(10)
    outcomes = [i.outcome for i in stack.poller.invocations]
    assert outcomes == ["succeeded", "partial", "succeeded"]
    again = stack.poller.invocations[2].records[0]
    assert again["attributes"]["ApproximateReceiveCount"] == "2"
    asked = [r for r in stack.model.requests if "Try me twice" in json.dumps(r)]
    assert len(asked) == 1  # the answer was recorded before sending: the retry resends it


def test_a_message_that_keeps_failing_ends_on_the_dead_letter_queue_and_is_said_so(
    start_stack: Callable[..., LocalStack],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.setattr(local.stack, "MAX_RECEIVES", 2)  # 5 would take 1 + 3 + 9 + 27 s
    stack = start_stack()
    assert stack.chat is not None and stack.graph is not None and stack.poller is not None
    assert stack.harness is not None
    psid = stack.chat.add_person()["psid"]
    stack.graph.fail_next(400, 190, times=10, only="message", psid=psid)
    stack.chat.send(psid, "Nobody can send this")

    deadline = time.monotonic() + 15
    while not stack.harness.dead_letters():
        assert time.monotonic() < deadline, "nothing reached the dead-letter queue"
        time.sleep(0.1)
    [dead] = stack.harness.dead_letters()
    assert json.loads(dead["Body"])["psid"] == psid
    assert [i.outcome for i in stack.poller.invocations] == ["partial", "partial"]
    deadline = time.monotonic() + 5
    while "dead-letter queue" not in capsys.readouterr().err:
        assert time.monotonic() < deadline, "the terminal was not told"
        time.sleep(0.2)
    stack.poller.wait_idle(10)  # the person's queue is free for their next message
    stack.graph.clear()  # the faults left, and what was sent
    stack.chat.send(psid, "And this one?")
    assert stack.graph.wait_for_texts(psid, 1, timeout=10)[0].startswith("Echo: And this one?")


def test_stop_ends_every_part_and_puts_the_environment_back(
    clean_env: dict[str, str],
):
    stack = LocalStack(QUIET).start()
    assert stack.harness is not None and stack.chat is not None and stack.graph is not None
    assert stack.model is not None and stack.poller is not None
    urls = [stack.chat.url, stack.harness.aws_url, stack.graph.url, stack.model.url]
    pollers = [t for t in threading.enumerate() if t.name.startswith("poller-")]
    assert len(pollers) == stack.poller.max_concurrency
    assert os.environ["ADMIN_PSIDS"] == OWNER and "APP_SECRET" in os.environ
    stack.stop()
    assert all(refused(url) for url in urls)
    assert not any(thread.is_alive() for thread in pollers)
    assert environment() == clean_env
    stack.stop()  # idempotent


def test_a_failed_start_stops_what_started_and_puts_the_environment_back(
    clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
):
    with monkeypatch.context() as patch:
        patch.setenv("TABLE_NAME", "has.dots.and/slashes")  # cannot name a queue
        with pytest.raises(StackError, match="TABLE_NAME names the queues too"):
            LocalStack(QUIET).start()
    with monkeypatch.context() as patch:
        patch.setenv("HISTORY_TURNS", "many")
        with pytest.raises(StackError, match="HISTORY_TURNS"):
            LocalStack(QUIET).start()
    assert environment() == clean_env


def test_the_admin_command_it_prints_works_against_this_run_as_printed(
    start_stack: Callable[..., LocalStack],
):
    import shlex
    import subprocess
    from datetime import UTC, datetime

    from handler.store import Store

    stack = start_stack()
    assert stack.harness is not None and stack.settings is not None
    Store(stack.harness.dynamodb, stack.settings.table_name).create_user(OWNER, datetime.now(UTC))
    command = stack.admin_command("users")
    assert command in "\n".join(stack.summary())
    words = shlex.split(command)
    env = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
    argv = [w for w in words if w not in {f"{k}={v}" for k, v in env.items()}]
    # A shell with nothing of AWS's in it, as a person's may be: the command brings it all.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        argv, env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert OWNER in done.stdout


def test_the_pages_messenger_profile_is_set_on_the_simulator_as_the_stack_sets_it(
    start_stack: Callable[..., LocalStack], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("ICE_BREAKERS", '["What can you do?"]')
    stack = start_stack()
    assert stack.graph is not None and stack.chat is not None
    expected = messenger_profile({}, ["What can you do?"], ())
    # One POST /me/messenger_profile with the page token (the simulator refuses any other).
    assert stack.graph.profile_calls == [{"method": "POST", **expected}]
    assert (
        "  Page profile: Get Started, greeting, 1 ice breaker (shown instead of Get Started), "
        "menu (Help, Usage, New conversation, Talk to a person): the stack's, set on the "
        "simulator"
    ) in stack.summary()
    # The page reads it back from the simulator, over HTTP: not a copy of its own.
    page = {"id": PAGE_ID, "name": "Local Page"}
    assert stack.chat.profile() == {"page": page, "profile": expected}
    stack.graph.clear()
    assert stack.chat.profile() == {"page": page, "profile": {}}


def test_the_greetings_and_menu_links_are_the_stacks_settings_too(
    start_stack: Callable[..., LocalStack], monkeypatch: pytest.MonkeyPatch
):
    """What `pulumi up` gives a real page from greeting, greetings and menuLinks, `make local`
    gives the simulator from GREETING, GREETINGS and MENU_LINKS (the same shapes)."""
    monkeypatch.setenv("GREETING", "Hi {{user_first_name}}! Ask about our opening hours.")
    monkeypatch.setenv("GREETINGS", '["fr_FR=Bonjour ! Posez vos questions."]')
    monkeypatch.setenv("MENU_LINKS", '["Our site=https://example.com/a=b"]')
    stack = start_stack()
    assert stack.graph is not None and stack.chat is not None
    expected = messenger_profile(
        {
            "default": "Hi {{user_first_name}}! Ask about our opening hours.",
            "fr_FR": "Bonjour ! Posez vos questions.",
        },
        (),
        [("Our site", "https://example.com/a=b")],
    )
    assert stack.graph.profile_calls == [{"method": "POST", **expected}]
    assert stack.chat.profile()["profile"] == expected  # what the page shows
    assert (
        "  Page profile: Get Started, greeting (2 locales), menu (Help, Usage, New conversation, "
        "Talk to a person, Our site): the stack's, set on the simulator"
    ) in stack.summary()


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("GREETING", "x" * 161, "GREETING: greeting for default is 161 characters, over 160"),
        ("GREETINGS", '["Bonjour"]', "GREETINGS: each item is locale=text; got 'Bonjour'"),
        ("GREETINGS", '["french=Bonjour"]', "GREETINGS: 'french' is not a Messenger locale"),
        ("GREETINGS", "fr_FR=Bonjour", "GREETINGS must be a JSON list of locale=text items"),
        ("MENU_LINKS", '["Site=http://example.com"]', "must be https"),
    ],
)
def test_greetings_or_menu_links_messenger_would_refuse_stop_the_start(
    clean_env: dict[str, str], name: str, value: str, said: str
):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(name, value)
        with pytest.raises(StackError) as raised:
            LocalStack(QUIET).start()
    assert said in str(raised.value)
    assert environment() == clean_env


def test_a_profile_messenger_would_refuse_stops_the_start(clean_env: dict[str, str]):
    questions = [f"Question {n}?" for n in range(5)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ICE_BREAKERS", json.dumps(questions))
        with pytest.raises(StackError, match="ICE_BREAKERS: 5 ice breakers, over Messenger's 4"):
            LocalStack(QUIET).start()
    assert environment() == clean_env
