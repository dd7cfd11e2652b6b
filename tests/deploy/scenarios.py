"""What the simulation does with the stood-up stack, as Facebook, EventBridge and Lambda's
event source mapping would, and the checks made afterwards. Each step raises AssertionError
with what went wrong.

``run_steps`` runs them in order and returns each step's outcome, so one stand-up serves
every test of ``test_deploy.py`` and the meta-tests can see which step caught a mutation.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from handler import schema
from local.aws import read_mail
from local.event_source import Invocation
from tests.deploy import iam
from tests.deploy.simulation import Operator, RuntimeFiles, Simulation, stand_up
from tests.deploy.stack import TABLE, TARGET, Declaration

USER = "2000000000000001"
UNREACHABLE = "2000000000000002"  # every Send API call for this person is refused
NEWCOMER = "2000000000000003"  # taps Get Started
ANSWER = "Deployed and answering: 42."
# Python's level names and Lambda's (WARN, FATAL), which the handler writes.
LOG_LEVELS = {
    "DEBUG": 10,
    "INFO": 20,
    "WARN": 30,
    "WARNING": 30,
    "ERROR": 40,
    "FATAL": 50,
    "CRITICAL": 50,
}
WRITES = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:TransactWriteItems",
    "sqs:SendMessage",
    "sqs:SendMessageBatch",
}
# How long a message may take from the webhook to its answer (a cold start included).
ANSWER_SECONDS = 60.0
# Leeway on top of a backoff: moto notices a message become visible again within a second,
# and the next receive has to run.
BACKOFF_LEEWAY_SECONDS = 15.0


# --- Facebook ------------------------------------------------------------------------------


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def sign(body: bytes, secret: str) -> str:
    """Facebook's X-Hub-Signature-256, computed here rather than by the handler's helper."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery(
    psid: str, text: str, page_id: str, mid: str | None = None, payload: str | None = None
) -> bytes:
    """A message, or with ``payload`` a postback (a button tap, titled ``text``)."""
    now = int(time.time() * 1000)
    event: dict[str, Any] = {"mid": mid or f"m_{uuid.uuid4().hex}", "text": text}
    if payload is not None:
        event = {"mid": event["mid"], "payload": payload, "title": text}
    return json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": page_id,
                    "time": now,
                    "messaging": [
                        {
                            "sender": {"id": psid},
                            "recipient": {"id": page_id},
                            "timestamp": now,
                            ("message" if payload is None else "postback"): event,
                        }
                    ],
                }
            ],
        }
    ).encode()


def deliver(sim: Simulation, body: bytes, secret: str) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, secret)}
    return http("POST", f"{sim.url.url}/", body, headers)


def message(sim: Simulation, psid: str, text: str) -> tuple[int, str, str]:
    """A signed delivery of one message: (status, body, the message's mid)."""
    mid = f"m_{uuid.uuid4().hex}"
    status, answer = deliver(
        sim, delivery(psid, text, sim.graph.page_id, mid), sim.operator.app_secret
    )
    return status, answer, mid


# --- the queue, as Lambda's event source mapping handed it to the function ------------------


def event_id(record: dict[str, Any]) -> str | None:
    """The webhook event a queued record carries (its body is the handler's, not ours)."""
    try:
        body = json.loads(record["body"])
    except ValueError:
        return None
    return body.get("event_id") if isinstance(body, dict) else None


def record_of(invocation: Invocation, mid: str) -> dict[str, Any]:
    (record,) = [r for r in invocation.records if event_id(r) == mid]
    return record


def receives(sim: Simulation, mid: str, count: int = 1, timeout: float = ANSWER_SECONDS):
    """The finished batches that held message ``mid``, once there are ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        done = [
            i
            for i in sim.invocations()
            if i.finished is not None and any(event_id(r) == mid for r in i.records)
        ]
        if len(done) >= count:
            return done
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the mapping handed message {mid} to the function {len(done)} times in "
                f"{timeout:.0f} s, not {count}; {sim.diagnosis()}"
            )
        time.sleep(0.05)


def log_lines(
    sim: Simulation, name: str, expected: int = 0, timeout: float = 10.0, **fields: Any
) -> list[dict[str, Any]]:
    """The function's JSON log lines called ``name`` (with ``fields``), from its output;
    once there are ``expected`` of them (its output is read by a thread of its own)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = []
        for line in sim.environment.output():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if (
                isinstance(entry, dict)
                and entry.get("message") == name
                and all(entry.get(k) == v for k, v in fields.items())
            ):
                lines.append(entry)
        if len(lines) >= expected or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def logged_at(line: dict[str, Any]) -> float:
    """A log line's ``timestamp`` (``2026-11-30T16:29:49.384Z``), in seconds since the epoch."""
    moment = datetime.strptime(line["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return moment.timestamp()


def wall_clock(monotonic: float) -> float:
    return time.time() - (time.monotonic() - monotonic)


def table_items(sim: Simulation) -> list[dict[str, Any]]:
    name = sim.declaration.one(TABLE).inputs["name"]
    return sim.operator_client("dynamodb").scan(TableName=name)["Items"]


def admins(sim: Simulation) -> list[str]:
    return [str(a) for a in sim.operator.config.get("adminPsids", [])]


def secrets(sim: Simulation) -> set[str]:
    """What must never be seen: what Facebook and OpenAI issued, and the verify token."""
    return {
        sim.operator.app_secret,
        sim.operator.page_token,
        sim.operator.openai_key,
        sim.declaration.outputs["verifyToken"],
    }


# --- the scenarios -------------------------------------------------------------------------


def no_secret_in_the_environment(sim: Simulation) -> None:
    """The function's environment holds no secret, only the names of the parameters that
    hold them (the function reads them itself, with its role)."""
    env = sim.environment.env
    leaked = sorted(name for name, value in env.items() if any(s in value for s in secrets(sim)))
    assert not leaked, f"secret values in the function's environment: {leaked}"
    stored = sim.declaration.parameter_values()
    named = {stored[value] for value in env.values() if value in stored}
    missing = len(secrets(sim) - named)
    assert not missing, f"{missing} secrets are in no parameter the environment names"


def verify_challenge(sim: Simulation) -> None:
    """Facebook's subscription check, with the token the stack generated (read, as the
    operator does, from the ``verifyToken`` output)."""
    token = sim.declaration.outputs["verifyToken"]
    query = {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1158201444"}
    status, body = http("GET", f"{sim.url.url}/?{urlencode(query)}")
    assert (status, body) == (200, "1158201444"), f"{status} {body!r}; {sim.diagnosis()}"
    wrong = {**query, "hub.verify_token": token + "x"}
    status, _ = http("GET", f"{sim.url.url}/?{urlencode(wrong)}")
    assert status == 403, f"a wrong verify token got {status}"


def forged_signature_refused(sim: Simulation) -> None:
    """A delivery signed with another secret: 403, and nothing anywhere is written."""
    before = table_items(sim)
    mark, batches = sim.log.mark(), len(sim.invocations())
    graph_calls, model_calls = len(sim.graph.calls), len(sim.model.requests)
    body = delivery(USER, "let me in", sim.graph.page_id)
    status, text = deliver(sim, body, sim.operator.app_secret + "-forged")
    assert status == 403, f"a forged delivery got {status} {text!r}; {sim.diagnosis()}"
    sim.settle()
    writes = [c.iam_action for c in sim.function_calls(mark) if c.iam_action in WRITES]
    assert writes == [], f"a forged delivery made the function write: {writes}"
    assert len(sim.invocations()) == batches, "a forged delivery was handed off"
    assert table_items(sim) == before, "the table changed"
    assert len(sim.graph.calls) == graph_calls, "a forged delivery made Graph API calls"
    assert len(sim.model.requests) == model_calls, "a forged delivery reached the model"


def new_user_message(sim: Simulation) -> None:
    """A signed message from someone new: answered through the Graph API, admins told, and
    every setting the operator chose visible in what the function did."""
    config = sim.operator.config
    for admin in admins(sim):  # the admins wrote: inside Messenger's 24-hour window
        status, text, _ = message(sim, admin, "/help")
        assert status == 200, (
            f"an admin's message was answered {status} {text!r}; {sim.diagnosis()}"
        )
    sim.settle()
    started = datetime.now(UTC)
    mark = sim.log.mark()
    status, text, mid = message(sim, USER, "What is the answer?")
    assert (status, text) == (200, "EVENT_RECEIVED"), f"{status} {text!r}; {sim.diagnosis()}"
    handed_off = [c for c in sim.function_calls(mark) if c.iam_action == "sqs:SendMessageBatch"]
    assert [c.status for c in handed_off] == [200], f"not handed to the queue; {sim.diagnosis()}"
    batch = receives(sim, mid)[0]
    assert batch.outcome == "succeeded", (
        f"the first receive of the message ended {batch.outcome}; {sim.diagnosis()}"
    )
    record = record_of(batch, mid)
    group = record["attributes"].get("MessageGroupId")
    assert group == USER, f"queued in message group {group!r}, not the person's"
    sim.settle()
    texts = sim.graph.texts_to(USER)
    # Someone new is welcomed before their first answer, as Get Started would have: with the
    # configured welcome, from its parameter.
    assert texts == [config["welcomeMessage"], ANSWER], (
        f"the user got {[t[:80] for t in texts]}; {sim.diagnosis()}"
    )
    actions = sim.graph.actions_to(USER)
    assert {"mark_seen", "typing_on"} <= set(actions), f"sender actions: {actions}"

    for admin in admins(sim):
        notices = [
            m["attachment"]["payload"]["text"]
            for m in sim.graph.messages_to(admin)
            if "attachment" in m
        ]
        assert any(USER in n for n in notices), f"admin {admin} was not told: {notices}"
        limit = f"{config['dailyLimit']}/day"
        assert any(limit in n for n in notices), f"the notice does not say {limit}: {notices}"

    requests = sim.model.requests
    assert len(requests) == 1, f"the model was asked {len(requests)} times"
    request = requests[0]
    asked = {
        "model": request.get("model"),
        "system": request["messages"][0],
        "question": request["messages"][-1],
        "temperature": request.get("temperature"),
        "max_completion_tokens": request.get("max_completion_tokens"),
    }
    configured = {
        "model": config["model"],
        "system": {"role": "system", "content": config["systemPrompt"]},
        "question": {"role": "user", "content": "What is the answer?"},
        "temperature": float(config["temperature"]),
        "max_completion_tokens": int(config["maxTokens"]),
    }
    wrong = {k: (asked[k], v) for k, v in configured.items() if asked[k] != v}
    assert not wrong, f"the model was not asked as configured (asked, configured): {wrong}"

    items = table_items(sim)
    zone = ZoneInfo(config["quotaTimezone"])
    days = {
        schema.day_sk(str(d)) for d in (started.astimezone(zone).date(), datetime.now(zone).date())
    }
    sort_key = sim.declaration.one(TABLE).inputs["rangeKey"]
    counted = [i for i in items if i.get(sort_key, {}).get("S") in days]
    assert counted, f"no quota counter for {sorted(days)} ({config['quotaTimezone']})"
    ttl = sim.operator_client("dynamodb").describe_time_to_live(
        TableName=sim.declaration.one(TABLE).inputs["name"]
    )["TimeToLiveDescription"]
    attribute = ttl.get("AttributeName")
    expiries = [int(i[attribute]["N"]) for i in items if attribute in i]
    assert expiries, f"no item carries the table's TTL attribute {attribute!r}"
    kept_until = started.timestamp() + int(config["historyTtlHours"]) * 3600
    assert any(abs(e - kept_until) < 300 for e in expiries), (
        f"nothing expires {config['historyTtlHours']} h from now: {expiries}"
    )


def admin_lists_users(sim: Simulation) -> None:
    """An admin's /users: read from the table's index."""
    admin = admins(sim)[0]
    status, _, mid = message(sim, admin, "/users")
    assert status == 200, f"{status}; {sim.diagnosis()}"
    receives(sim, mid)
    sim.settle()
    texts = sim.graph.texts_to(admin)
    assert texts and texts[-1].startswith("Recent users ("), (
        f"the admin got {texts}; {sim.diagnosis()}"
    )
    assert USER in texts[-1], f"{USER} is not among {texts[-1]!r}"


def get_started_welcome(sim: Simulation) -> None:
    """Someone new taps Get Started: the configured welcome (2,000 Cyrillic characters, which
    the environment's 4 KB could not hold) and ice breakers, read from their SSM parameters in
    the one GetParameters call the policy allows, are what they get."""
    config = sim.operator.config
    mid = f"m_{uuid.uuid4().hex}"
    body = delivery(NEWCOMER, "Get Started", sim.graph.page_id, mid, payload="GET_STARTED")
    status, text = deliver(sim, body, sim.operator.app_secret)
    assert (status, text) == (200, "EVENT_RECEIVED"), f"{status} {text!r}; {sim.diagnosis()}"
    receives(sim, mid)
    sim.settle()
    messages = sim.graph.messages_to(NEWCOMER)
    texts = [m.get("text") for m in messages]
    assert texts == [config["welcomeMessage"]], (
        f"the newcomer got {[t and t[:80] for t in texts]}; {sim.diagnosis()}"
    )
    offered = [q.get("payload") for q in messages[0].get("quick_replies", [])]
    asked = [f"ASK:{q}" for q in config["iceBreakers"]]
    assert offered == asked, f"the welcome offered {offered}, not the ice breakers {asked}"


def keep_warm(sim: Simulation) -> None:
    """The declared schedule fires at the function, with EventBridge's own event."""
    function = sim.declaration.function
    rules = [
        t.inputs["rule"] for t in sim.declaration.of_type(TARGET) if t.inputs["arn"] == function.arn
    ]
    assert rules, "no schedule targets the function"
    mark, graph_calls = sim.log.mark(), len(sim.graph.calls)
    (fired,) = sim.scheduler.fire(rules[0])
    assert fired.error is None, f"EventBridge's invocation failed: {fired.error}"
    assert fired.result == {"warm": True}, f"the ping returned {fired.result}"
    assert sim.function_calls(mark) == [], "a keep-warm ping called AWS"
    assert len(sim.graph.calls) == graph_calls, "a keep-warm ping called the Graph API"


def send_api_outage_backed_off(sim: Simulation) -> None:
    """The Send API refuses the answer (its rate limit, which the client leaves to the queue):
    the worker reports the record failed and backs it off for the configured
    retryDelaySeconds (ChangeMessageVisibility, with the function's role); the mapping keeps
    it; the next receive, no sooner, sends the recorded answer, once, without asking the
    model again."""
    delay = int(sim.operator.config["retryDelaySeconds"])
    asked, answered = len(sim.model.requests), len(sim.graph.texts_to(USER))
    mark = sim.log.mark()
    sim.graph.fail_next(400, 613, only="message", psid=USER)  # one send, rate-limited
    status, _, mid = message(sim, USER, "And the question?")
    assert status == 200, f"{status}; {sim.diagnosis()}"
    first = receives(sim, mid)[0]
    message_id = record_of(first, mid)["messageId"]
    assert first.outcome == "partial" and first.failed_ids == [message_id], (
        f"the batch whose answer could not be sent ended {first.outcome} "
        f"(failed: {first.failed_ids}), not partial with that record: it would be lost; "
        f"{sim.diagnosis()}"
    )
    backoffs = [
        c for c in sim.function_calls(mark) if c.iam_action == "sqs:ChangeMessageVisibilityBatch"
    ]
    assert backoffs and all(c.status == 200 for c in backoffs), (
        f"the worker could not back the message off: "
        f"{[f'{c.iam_action} {c.status} {c.error}' for c in backoffs]}; {sim.diagnosis()}"
    )
    waits = [e.get("VisibilityTimeout") for c in backoffs for e in c.body.get("Entries", [])]
    assert waits == [delay], f"backed off {waits} s, not the configured {delay} s"
    (retry,) = log_lines(sim, "record.retry", 1, message_id=message_id)

    second = receives(sim, mid, 2, timeout=delay + BACKOFF_LEEWAY_SECONDS)[1]
    assert second.outcome == "succeeded", f"the retry ended {second.outcome}; {sim.diagnosis()}"
    count = record_of(second, mid)["attributes"].get("ApproximateReceiveCount")
    assert count == "2", f"the retry was receive {count}"
    # The retry was logged before the visibility changed: a lower bound on the wait.
    waited = wall_clock(second.started) - logged_at(retry)
    assert waited >= delay, f"received again {waited:.2f} s after the failure, not {delay} s"
    sim.settle()
    texts = sim.graph.texts_to(USER)[answered:]
    assert texts == [ANSWER], f"after the refusal the user got {texts}; {sim.diagnosis()}"
    assert len(sim.model.requests) == asked + 1, "the model was asked again for the same message"


def subscribe_to_owner_topic(sim: Simulation) -> str:
    """A queue subscribed to the declared owner topic, as ``ownerEmail``'s address would be;
    returns its URL."""
    topic = sim.plane.resolve(sim.declaration.outputs["ownerTopicArn"])
    sqs = sim.operator_client("sqs")
    inbox = sqs.create_queue(QueueName="owner-mailbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]
    sim.operator_client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["QueueArn"])
    return inbox


def dead_lettered(sim: Simulation) -> None:
    """A message that keeps failing (the Send API refuses the page's token whenever this
    person is written to) is received maxReceiveCount times, backed off between them, and
    then moved by SQS to the declared dead-letter queue, where the owner finds it. The last
    receive knows it is the last: the handler's MAX_RECEIVES and the queue's redrive policy
    say the same number."""
    config = sim.operator.config
    tries, delay = int(config["maxReceiveCount"]), int(config["retryDelaySeconds"])
    mailbox = subscribe_to_owner_topic(sim)
    sim.graph.fail_next(400, 190, times=1000, psid=UNREACHABLE)
    status, _, mid = message(sim, UNREACHABLE, "Is anyone there?")
    assert status == 200, f"{status}; {sim.diagnosis()}"
    waits = sum(delay * 3**n for n in range(tries - 1))
    batches = receives(sim, mid, tries, timeout=waits + tries * BACKOFF_LEEWAY_SECONDS)
    message_id = record_of(batches[0], mid)["messageId"]  # the same on every receive
    retries = log_lines(sim, "record.retry", tries, message_id=message_id)
    lasts = [(r.get("receive"), r.get("last")) for r in retries]
    expected = [(n, n == tries) for n in range(1, tries + 1)]
    assert lasts == expected, (
        f"(receive, last) of the failing message's tries: {lasts}, not {expected}: the "
        "handler's last try is not the queue's"
    )

    dead_letter_url = sim.plane.resolve(sim.declaration.outputs["deadLetterQueueUrl"])
    deadline = time.monotonic() + BACKOFF_LEEWAY_SECONDS
    while sim.queue_depth(dead_letter_url)[0] < 1:
        assert time.monotonic() < deadline, (
            f"nothing reached the dead-letter queue after {tries} receives; {sim.diagnosis()}"
        )
        time.sleep(0.1)
    sim.settle()
    outcomes = [b.outcome for b in receives(sim, mid, tries)]
    assert outcomes == ["partial"] * tries, f"the failing message's batches: {outcomes}"
    parked = (
        sim.operator_client("sqs")
        .receive_message(
            QueueUrl=dead_letter_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        .get("Messages", [])
    )
    assert [event_id({"body": m["Body"]}) for m in parked] == [mid], f"parked: {parked}"
    count = parked[0]["Attributes"]["ApproximateReceiveCount"]
    assert count == str(tries + 1), f"parked after {count} receives (ours included)"
    assert sim.graph.texts_to(UNREACHABLE) == [], "the unreachable person got a message"

    # The owner must act: the page token refused and a message dead-lettered are e-mailed at
    # once through the stack's topic (with the function's role), without anyone's words.
    mail = read_mail(sim.operator_client("sqs"), mailbox)
    subjects = [m["subject"] for m in mail]
    assert any("token" in s.lower() for s in subjects), f"no token e-mail: {subjects}"
    assert any("dead-letter" in s.lower() for s in subjects), f"no dead-letter e-mail: {subjects}"
    assert not any("Is anyone there?" in m["body"] for m in mail), "an e-mail holds the text"


# --- afterwards ----------------------------------------------------------------------------


def logs_delivered(sim: Simulation) -> None:
    """The environment's output reaches the declared log group with the function's role:
    at the configured level and above only, and without a secret in it."""
    shipped = sim.ship_logs()
    group = sim.declaration.function.log_group
    events = sim.operator_client("logs").get_log_events(
        logGroupName=group, logStreamName=sim.log_stream, startFromHead=True
    )["events"]
    assert len(events) == shipped > 0, f"{shipped} lines shipped, {len(events)} in the group"
    for e in events:
        leaked = [s for s in secrets(sim) if s in e["message"]]
        assert not leaked, f"a secret in the logs: {e['message']}"
    floor = LOG_LEVELS[sim.operator.config["logLevel"].upper()]
    lines = []
    for e in events:
        try:
            lines.append(json.loads(e["message"]))
        except ValueError:
            continue  # a traceback line, written by the runtime
    below = [line for line in lines if LOG_LEVELS.get(line.get("level"), 100) < floor]
    assert not below, f"lines below {sim.operator.config['logLevel']}: {below[:3]}"
    names = [line.get("message") for line in lines]
    assert "webhook.bad_signature" in names, f"the refused delivery is not logged: {names}"
    assert "record.retry" in names, f"the backed-off message is not logged: {names}"


def iam_audit(sim: Simulation) -> None:
    """Every call made with the function's role (by its code, and by Lambda's pollers of the
    queue), checked against the exact declared policy (resources and the items of each
    transaction included: see iam.py for what moto itself did not check)."""
    violations, _needs = iam.audit(
        sim.role_calls(), sim.plane.policy, sim.plane.account, sim.plane.key_of
    )
    assert not violations, "the declared policy does not allow: " + "; ".join(
        sorted({str(v) for v in violations})
    )
    denied = sorted({f"{c.iam_action} ({c.error})" for c in sim.role_calls() if c.status >= 400})
    assert not denied, f"calls refused: {denied}"


def every_statement_exercised(sim: Simulation) -> None:
    """Each declared statement allowed something the scenarios needed: no permission goes
    untested (and so, without any one of them, some step above fails)."""
    _violations, needs = iam.audit(
        sim.role_calls(), sim.plane.policy, sim.plane.account, sim.plane.key_of
    )
    unused = iam.unused_statements(sim.plane.policy, needs)
    assert not unused, f"statements no scenario used: {unused}"


def unread_variables(declaration: Declaration, task_root: Path) -> list[str]:
    """Declared variables whose name is no string anywhere in the archive's handler package."""
    package = declaration.function.handler.split(".", 1)[0]
    strings: set[str] = set()
    for path in sorted((task_root / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.add(node.value)
    return sorted(set(declaration.function.environment) - strings)


def declared_names_read_by_the_code(sim: Simulation) -> None:
    """Each declared variable's name appears as a string in the archive's handler package.

    The steps above notice a renamed variable by its effect, which shows only where the
    value differs from the handler's default: OPENAI_TIMEOUT_SECONDS and OPENAI_MAX_RETRIES
    are set to the handler's defaults, HISTORY_TURNS and HISTORY_MAX_CHARS have no effect
    one message shows. This static look at the code that ran covers every name."""
    unread = unread_variables(sim.declaration, Path(sim.environment.env["LAMBDA_TASK_ROOT"]))
    assert not unread, f"declared variables the handler never names: {unread}"


Step = Callable[[Simulation], None]
STEPS: tuple[Step, ...] = (
    no_secret_in_the_environment,
    verify_challenge,
    forged_signature_refused,
    new_user_message,
    admin_lists_users,
    get_started_welcome,
    keep_warm,
    send_api_outage_backed_off,
    dead_lettered,
    logs_delivered,
    iam_audit,
    every_statement_exercised,
    declared_names_read_by_the_code,
)


@dataclass
class Outcome:
    """Each step's error (None: it passed); steps after a fail-fast stop are missing."""

    errors: dict[str, BaseException | None] = field(default_factory=dict)
    output: str = ""

    def check(self, step: str) -> None:
        if step not in self.errors:
            raise AssertionError(f"{step} did not run: {self.first_failure()}")
        error = self.errors[step]
        if error is not None:
            raise error

    def first_failure(self) -> tuple[str, BaseException] | None:
        for step, error in self.errors.items():
            if error is not None:
                return step, error
        return None


def run_steps(sim: Simulation, outcome: Outcome, *, fail_fast: bool) -> None:
    for step in STEPS:
        try:
            step(sim)
        except Exception as error:  # recorded: the test of that step re-raises it
            outcome.errors[step.__name__] = error
            if fail_fast:
                break
        else:
            outcome.errors[step.__name__] = None
    outcome.output = sim.output()


def run(
    declaration: Declaration,
    files: RuntimeFiles,
    operator: Operator,
    moto_url: str,
    *,
    fail_fast: bool,
) -> Outcome:
    """Stand the declaration up, run the steps, tear it all down; never raises."""
    outcome = Outcome()
    stood_up = False
    try:
        with stand_up(declaration, files, operator, moto_url) as sim:
            stood_up = True
            run_steps(sim, outcome, fail_fast=fail_fast)
    except Exception as error:
        outcome.errors["tear_down" if stood_up else "stand_up"] = error
    return outcome
