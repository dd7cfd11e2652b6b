"""What the simulation does with the stood-up stack, as Facebook and EventBridge would, and
the checks made afterwards. Each step raises AssertionError with what went wrong.

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

from local.invoke import Invocation
from tests.deploy import iam
from tests.deploy.simulation import Operator, RuntimeFiles, Simulation, stand_up
from tests.deploy.stack import TABLE, TARGET, Declaration

USER = "2000000000000001"
LOG_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
WRITES = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "lambda:Invoke",
    "sqs:SendMessage",
}


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


def delivery(psid: str, text: str, page_id: str) -> bytes:
    now = int(time.time() * 1000)
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
                            "message": {"mid": f"m_{uuid.uuid4().hex}", "text": text},
                        }
                    ],
                }
            ],
        }
    ).encode()


def deliver(sim: Simulation, body: bytes, secret: str) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, secret)}
    return http("POST", f"{sim.url.url}/", body, headers)


def settle(sim: Simulation) -> None:
    sim.invoke.wait_idle(timeout=60)


def the_invocation_of(sim: Simulation, event: Any) -> Invocation:
    found = [i for i in sim.invoke.invocations if i.event == event]
    assert len(found) == 1, f"{len(found)} invocations with that event; {sim.diagnosis()}"
    return found[0]


def table_items(sim: Simulation) -> list[dict[str, Any]]:
    name = sim.declaration.one(TABLE).inputs["name"]
    return sim.operator_client("dynamodb").scan(TableName=name)["Items"]


def admins(sim: Simulation) -> list[str]:
    return [str(a) for a in sim.operator.config.get("adminPsids", [])]


# --- the scenarios -------------------------------------------------------------------------


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
    mark, invocations = sim.log.mark(), len(sim.invoke.invocations)
    graph_calls, model_calls = len(sim.graph.calls), len(sim.model.requests)
    body = delivery(USER, "let me in", sim.graph.page_id)
    status, text = deliver(sim, body, sim.operator.app_secret + "-forged")
    assert status == 403, f"a forged delivery got {status} {text!r}; {sim.diagnosis()}"
    settle(sim)
    writes = [c.iam_action for c in sim.function_calls(mark) if c.iam_action in WRITES]
    assert writes == [], f"a forged delivery made the function write: {writes}"
    assert len(sim.invoke.invocations) == invocations, "a forged delivery was handed off"
    assert table_items(sim) == before, "the table changed"
    assert len(sim.graph.calls) == graph_calls, "a forged delivery made Graph API calls"
    assert len(sim.model.requests) == model_calls, "a forged delivery reached the model"


def new_user_message(sim: Simulation) -> None:
    """A signed message from someone new: answered through the Graph API, admins told, and
    every setting the operator chose visible in what the function did."""
    config = sim.operator.config
    started = datetime.now(UTC)
    status, text = deliver(
        sim, delivery(USER, "What is the answer?", sim.graph.page_id), sim.operator.app_secret
    )
    assert (status, text) == (200, "EVENT_RECEIVED"), f"{status} {text!r}; {sim.diagnosis()}"
    settle(sim)
    handed_off = [c for c in sim.function_calls() if c.iam_action == "lambda:Invoke"]
    assert handed_off and handed_off[-1].status == 202, f"no self-invocation; {sim.diagnosis()}"
    texts = sim.graph.texts_to(USER)
    assert texts == ["Deployed and answering: 42."], f"the user got {texts}; {sim.diagnosis()}"
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
    days = {f"DAY#{started.astimezone(zone).date()}", f"DAY#{datetime.now(zone).date()}"}
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
    status, _ = deliver(sim, delivery(admin, "/users", sim.graph.page_id), sim.operator.app_secret)
    assert status == 200, f"{status}; {sim.diagnosis()}"
    settle(sim)
    texts = sim.graph.texts_to(admin)
    assert texts and texts[-1].startswith("Recent users ("), (
        f"the admin got {texts}; {sim.diagnosis()}"
    )
    assert USER in texts[-1], f"{USER} is not among {texts[-1]!r}"


def keep_warm(sim: Simulation) -> None:
    """The declared schedule fires at the function, with EventBridge's own event."""
    function = sim.declaration.function
    rules = [
        t.inputs["rule"] for t in sim.declaration.of_type(TARGET) if t.inputs["arn"] == function.arn
    ]
    assert rules, "no schedule targets the function"
    mark, graph_calls = sim.log.mark(), len(sim.graph.calls)
    event = sim.scheduler.fire(sim.invoke, rules[0])
    settle(sim)
    invocation = the_invocation_of(sim, event)
    assert invocation.kind == "Event", f"EventBridge invoked {invocation.kind}"
    assert invocation.outcome == "succeeded", f"{invocation.errors}; {sim.diagnosis()}"
    assert invocation.result == {"warm": True}, f"the ping returned {invocation.result}"
    assert sim.function_calls(mark) == [], "a keep-warm ping called AWS"
    assert len(sim.graph.calls) == graph_calls, "a keep-warm ping called the Graph API"


def failure_parked(sim: Simulation) -> None:
    """An asynchronous invocation that fails every attempt (here a work event the handler
    cannot read) ends, after the declared retries, in the declared failure queue."""
    event = {"messenger_bridge_work": 1, "events": [{"psid": USER}]}
    client = sim.plane.function.client("lambda", sim.invoke.url, sim.plane.region)
    answer = client.invoke(
        FunctionName=sim.declaration.function.name,
        InvocationType="Event",
        Payload=json.dumps(event).encode(),
    )
    assert answer["StatusCode"] == 202, f"the Invoke API answered {answer['StatusCode']}"
    settle(sim)
    invocation = the_invocation_of(sim, event)
    assert invocation.outcome == "failed", f"the broken event {invocation.outcome}"
    attempts = 1 + sim.invoke.max_retry_attempts
    assert invocation.attempts == attempts, f"{invocation.attempts} attempts, not {attempts}"
    assert sim.destination_errors == [], f"Lambda could not park it: {sim.destination_errors}"
    queue_url = sim.failure_queue_url()
    assert queue_url is not None, "no on-failure destination queue is declared"
    messages = (
        sim.operator_client("sqs")
        .receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        .get("Messages", [])
    )
    records = [json.loads(m["Body"]) for m in messages]
    assert [r["requestPayload"] for r in records] == [event], f"the queue holds {records}"
    condition = records[0]["requestContext"]["condition"]
    assert condition == "RetriesExhausted", f"parked because {condition}"


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
    secrets = {
        sim.operator.app_secret,
        sim.operator.page_token,
        sim.operator.openai_key,
        sim.declaration.outputs["verifyToken"],
    }
    for e in events:
        leaked = [s for s in secrets if s in e["message"]]
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


def iam_audit(sim: Simulation) -> None:
    """Every call the function's principal made, checked against the exact declared policy
    (resources included: see iam.py for what moto itself did not check)."""
    violations, _needs = iam.audit(
        sim.function_calls(), sim.plane.policy, sim.plane.account, sim.plane.key_of
    )
    assert not violations, "the declared policy does not allow: " + "; ".join(
        sorted({str(v) for v in violations})
    )
    denied = [f"{c.iam_action} ({c.error})" for c in sim.function_calls() if c.status >= 400]
    assert not denied, f"calls refused: {denied}"


def every_statement_exercised(sim: Simulation) -> None:
    """Each declared statement allowed something the scenarios needed: no permission goes
    untested (and so, without any one of them, some step above fails)."""
    _violations, needs = iam.audit(
        sim.function_calls(), sim.plane.policy, sim.plane.account, sim.plane.key_of
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
    verify_challenge,
    forged_signature_refused,
    new_user_message,
    admin_lists_users,
    keep_warm,
    failure_parked,
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
