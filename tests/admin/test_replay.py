"""``replay``: the dead-letter queue shown with who, how old and why, and the chosen messages
sent back to the FIFO queue; against a moto server with the queues made as the stack makes
them, messages put on the dead-letter queue the way SQS does it, and the worker's record of
each event written through the bot's own ``Claims``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from admin.replay import ANSWER_READY, STALE
from handler.claims import Claims, Reply
from handler.events import Inbound
from handler.handoff import Handoff, body, dedupe_id
from local.aws import create_queues
from tests.admin.conftest import ALICE, BOB, CAROL, DAVE, make_function
from tests.conftest import new_table

MAX_RECEIVES = 5
PAGE_ID = "100000000000001"
HOUR_MS = 3_600_000
SECRET = "my private question"  # what a person wrote: personal data


@dataclass
class Bridge:
    """One stack's table and queues, and the clock the CLI runs at."""

    dynamodb: Any
    table: str
    sqs: Any
    queue_url: str
    dead_letter_url: str
    now: datetime

    @property
    def now_ms(self) -> int:
        return int(self.now.timestamp() * 1000)

    def where(self) -> list[str]:
        return ["--table", self.table, "--dead-letter-url", self.dead_letter_url]

    def event(self, psid: str, text: str = SECRET, hours_ago: float = 1) -> Inbound:
        """A message as the webhook parsed it, sent ``hours_ago``."""
        timestamp = self.now_ms - int(hours_ago * HOUR_MS)
        return Inbound(f"m_{uuid.uuid4().hex}", psid, PAGE_ID, timestamp, "text", text)

    def fail(self, *events: Inbound) -> None:
        """Hand the events to the queue as the webhook does, then let every receive fail
        until SQS (moto) moves them to the dead-letter queue after ``MAX_RECEIVES``."""
        Handoff(self.sqs, self.queue_url).enqueue(events)
        for _ in range(10 * MAX_RECEIVES):
            received = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
            )
            if not received.get("Messages"):
                return
        raise AssertionError("the messages did not reach the dead-letter queue")

    def record(self, event: Inbound, why: str, answer: str | None = None) -> None:
        """The worker's record of its attempts: the last error, and the answer if the model
        had given one before sending failed."""
        claims = Claims(self.dynamodb, self.table)
        claim = claims.claim(event.event_id, "attempt-5", self.now_ms, self.now_ms + 1_000)
        if answer is not None:
            claim = claims.record(claim, Reply(({"text": answer},), event.text, answer))
        claims.release(claim, why)

    def dead_letters(self) -> list[dict[str, Any]]:
        return _peek(self.sqs, self.dead_letter_url)

    def queued(self) -> list[dict[str, Any]]:
        return _peek(self.sqs, self.queue_url)


def _peek(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message on a queue, left where it is (visibility 0), each group in order."""
    return sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=0,
        MessageSystemAttributeNames=["All"],
    ).get("Messages", [])


@pytest.fixture
def bridge(aws_env: str) -> Bridge:
    dynamodb, table = new_table(aws_env)
    sqs = boto3.client("sqs", endpoint_url=aws_env, region_name="us-east-1")
    queue, dead = create_queues(
        sqs, f"bridge-{uuid.uuid4().hex[:12]}", visibility_timeout=30, max_receives=MAX_RECEIVES
    )
    return Bridge(dynamodb, table, sqs, queue, dead, datetime.now(UTC))


@dataclass
class Failed:
    """Three people's messages on the dead-letter queue."""

    alice: Inbound  # Send API down, nothing recorded
    bob: Inbound  # the page token expired after the model had answered
    carol: Inbound  # 30 hours old: outside Messenger's window


@pytest.fixture
def failed(bridge: Bridge) -> Failed:
    alice = bridge.event(ALICE, hours_ago=1)
    bob = bridge.event(BOB, "what is 6 times 7?", hours_ago=2)
    carol = bridge.event(CAROL, "hello?", hours_ago=30)
    bridge.fail(carol, bob, alice)
    bridge.record(alice, "send:graph_unavailable")
    bridge.record(bob, "send:page_token_invalid", answer="42.")
    bridge.record(carol, "model:timeout")
    return Failed(alice, bob, carol)


def _rows(out: str) -> dict[str, list[str]]:
    """Table rows by PSID, as cells: the lines under the header, up to the blank line."""
    table = out.split("\n\n")[0].splitlines()[1:]
    return {line.split()[1]: re.split(r"\s{2,}", line) for line in table}


def _result(out: str, psid: str) -> str:
    """The RESULT cell of a person's row."""
    return _rows(out)[psid][6]


def _json(result: Any) -> dict[str, Any]:
    assert result.code == 0, result.err
    return json.loads(result.out)


# -- looking ---------------------------------------------------------------------------------


def test_looking_shows_who_how_old_and_why_and_never_the_text(bridge: Bridge, failed: Failed, cli):
    result = cli("replay", *bridge.where(), now=bridge.now)
    assert result.code == 0, result.err
    header, *_ = result.out.splitlines()
    assert header.split() == ["MESSAGE", "PSID", "KIND", "AGE", "RECEIVES", "WHY", "RESULT"]
    rows = _rows(result.out)
    assert set(rows) == {ALICE, BOB, CAROL}
    assert rows[ALICE][1:] == [
        ALICE, "text", "1 h ago", str(MAX_RECEIVES), "send:graph_unavailable", "can be replayed"
    ]  # fmt: skip
    assert rows[BOB][3:] == [
        "2 h ago", str(MAX_RECEIVES), f"send:page_token_invalid; {ANSWER_READY}", "can be replayed"
    ]  # fmt: skip
    assert rows[CAROL][3:] == ["30 h ago", str(MAX_RECEIVES), "model:timeout", STALE]
    assert "3 messages: 2 can be replayed, 1 no longer answerable" in result.out
    # Without a choice nothing moves, and the owner is told how to replay.
    assert "python -m admin replay --all" in result.err
    assert "--drop-stale deletes the 1 message no longer answerable" in result.err
    assert len(bridge.dead_letters()) == 3 and bridge.queued() == []
    # What people wrote is personal data: not shown unless asked for.
    for text in (SECRET, failed.bob.text, failed.carol.text, "42."):
        assert text not in result.out + result.err


def test_json_and_csv_give_the_details_without_the_text(bridge: Bridge, failed: Failed, cli):
    data = _json(cli("replay", *bridge.where(), "--format", "json", now=bridge.now))
    assert data["dead_letter_queue"] == bridge.dead_letter_url and data["queue"] is None
    by_psid = {m["psid"]: m for m in data["messages"]}
    bob = by_psid[BOB]
    assert bob["event_id"] == failed.bob.event_id and bob["kind"] == "text"
    assert bob["last_error"] == "send:page_token_invalid"
    assert bob["answer_ready"] is True and by_psid[ALICE]["answer_ready"] is False
    assert bob["receives"] == MAX_RECEIVES and bob["attempts"] == 1
    assert bob["age_from"] == "event" and 2 * 3600 <= bob["age_seconds"] < 2 * 3600 + 60
    assert (bob["answerable"], by_psid[CAROL]["answerable"]) == (True, False)
    assert (bob["action"], bob["done"]) == ("keep", False)
    assert "text" not in bob and SECRET not in json.dumps(data)

    result = cli("replay", *bridge.where(), "--format", "csv", now=bridge.now)
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert {r["psid"] for r in rows} == {ALICE, BOB, CAROL}
    assert "text" not in rows[0] and SECRET not in result.out


def test_show_text_shows_what_people_wrote(bridge: Bridge, failed: Failed, cli):
    result = cli("replay", *bridge.where(), "--show-text", now=bridge.now)
    assert result.code == 0
    assert result.out.splitlines()[0].split()[-1] == "TEXT"
    assert _rows(result.out)[ALICE][-1] == f'"{SECRET}"'
    data = _json(cli("replay", *bridge.where(), "--show-text", "--format", "json", now=bridge.now))
    assert {m["psid"]: m["text"] for m in data["messages"]}[BOB] == "what is 6 times 7?"


def test_an_empty_dead_letter_queue(bridge: Bridge, cli):
    result = cli("replay", *bridge.where(), now=bridge.now)
    assert (result.code, result.out, result.err) == (0, "The dead-letter queue is empty.\n", "")


# -- replaying -------------------------------------------------------------------------------


def test_replay_all_sends_the_answerable_back_to_each_persons_group_in_order(bridge: Bridge, cli):
    first, second = bridge.event(ALICE, "first", 3), bridge.event(ALICE, "second", 2)
    bob, carol = bridge.event(BOB, hours_ago=1), bridge.event(CAROL, hours_ago=30)
    bridge.fail(first, second, bob, carol)
    result = cli("replay", *bridge.where(), "--all", now=bridge.now)
    assert result.code == 0, result.err
    assert "4 messages: 3 sent back, 1 not sent" in result.out
    assert _result(result.out, BOB) == "sent back to the queue"
    assert _result(result.out, CAROL) == f"not sent: {STALE}"

    queued = bridge.queued()
    events = {e.event_id: e for e in (first, second, bob)}
    # The same body, in the person's own group (so their order holds), under a new
    # deduplication id: SQS would drop one it saw from the webhook in the last 5 minutes.
    assert [m["Body"] for m in queued if m["Attributes"]["MessageGroupId"] == ALICE] == [
        body(first),
        body(second),
    ]
    for message in queued:
        event = events[json.loads(message["Body"])["event_id"]]
        assert message["Body"] == body(event)
        assert message["Attributes"]["MessageGroupId"] == event.psid
        assert message["Attributes"]["MessageDeduplicationId"] != dedupe_id(event)
    assert len(queued) == 3
    # Only the message nobody can answer any more is left on the dead-letter queue.
    assert [json.loads(m["Body"])["psid"] for m in bridge.dead_letters()] == [CAROL]


def test_a_replay_gets_through_while_sqs_remembers_the_webhooks_dedupe_id(bridge: Bridge, cli):
    event = bridge.event(ALICE)
    bridge.fail(event)
    # Facebook delivers the event again: the webhook hands it on with its own id...
    Handoff(bridge.sqs, bridge.queue_url).enqueue([event])
    # ...and within five minutes SQS drops any further send under that id.
    Handoff(bridge.sqs, bridge.queue_url).enqueue([event])
    assert len(bridge.queued()) == 1
    assert cli("replay", *bridge.where(), "--all", now=bridge.now).code == 0
    assert [m["Body"] for m in bridge.queued()] == [body(event), body(event)]


def test_a_recorded_answer_is_replayed_like_any_message(bridge: Bridge, failed: Failed, cli):
    """The worker finds the answer in its record and sends it; the CLI only says so."""
    result = cli("replay", *bridge.where(), "--psid", BOB, now=bridge.now)
    assert result.code == 0
    assert _rows(result.out)[BOB][5:] == [
        f"send:page_token_invalid; {ANSWER_READY}",
        "sent back to the queue",
    ]
    assert [m["Body"] for m in bridge.queued()] == [body(failed.bob)]


def test_stale_messages_are_reported_not_sent_and_dropped_with_drop_stale(
    bridge: Bridge, failed: Failed, cli
):
    # --drop-stale alone drops only what cannot be answered any more.
    result = cli("replay", *bridge.where(), "--drop-stale", now=bridge.now)
    assert result.code == 0
    assert _result(result.out, CAROL) == f"dropped: {STALE}"
    assert _result(result.out, ALICE) == "can be replayed"
    assert bridge.queued() == []
    assert sorted(json.loads(m["Body"])["psid"] for m in bridge.dead_letters()) == [ALICE, BOB]


def test_drop_stale_with_all_replays_the_rest(bridge: Bridge, failed: Failed, cli):
    result = cli("replay", *bridge.where(), "--all", "--drop-stale", now=bridge.now)
    assert result.code == 0
    assert "3 messages: 2 sent back, 1 dropped" in result.out
    assert bridge.dead_letters() == []
    assert sorted(json.loads(m["Body"])["psid"] for m in bridge.queued()) == [ALICE, BOB]


def test_dry_run_changes_nothing(bridge: Bridge, failed: Failed, cli):
    result = cli("replay", *bridge.where(), "--all", "--drop-stale", "--dry-run", now=bridge.now)
    assert result.code == 0
    assert _result(result.out, ALICE) == "would be sent back to the queue"
    assert _result(result.out, CAROL) == f"would be dropped: {STALE}"
    assert result.out.endswith("Dry run: nothing was changed.\n")
    assert bridge.queued() == [] and len(bridge.dead_letters()) == 3


# -- choosing --------------------------------------------------------------------------------


def test_choose_by_psid(bridge: Bridge, failed: Failed, cli):
    result = cli("replay", *bridge.where(), "--psid", ALICE, now=bridge.now)
    assert result.code == 0
    assert set(_rows(result.out)) == {ALICE}
    assert "2 other messages left on the dead-letter queue." in result.out
    assert [m["Body"] for m in bridge.queued()] == [body(failed.alice)]
    assert sorted(json.loads(m["Body"])["psid"] for m in bridge.dead_letters()) == [BOB, CAROL]


def test_choose_by_message_id_as_the_table_shows_it_or_by_event_id(
    bridge: Bridge, failed: Failed, cli
):
    looked = _json(cli("replay", *bridge.where(), "--format", "json", now=bridge.now))
    alice_id = next(m["message_id"] for m in looked["messages"] if m["psid"] == ALICE)
    result = cli("replay", *bridge.where(), alice_id[:8], failed.bob.event_id, now=bridge.now)
    assert result.code == 0, result.err
    assert set(_rows(result.out)) == {ALICE, BOB}
    assert sorted(json.loads(m["Body"])["psid"] for m in bridge.queued()) == [ALICE, BOB]


def test_an_id_not_on_the_queue_is_an_error(bridge: Bridge, failed: Failed, cli):
    result = cli("replay", *bridge.where(), "m_no_such_event", now=bridge.now)
    assert result.code == 1
    assert result.err.endswith("error: not on the dead-letter queue: m_no_such_event\n")
    assert bridge.queued() == [] and len(bridge.dead_letters()) == 3


def test_discard_deletes_without_answering(bridge: Bridge, failed: Failed, cli):
    result = cli("replay", *bridge.where(), "--psid", ALICE, "--discard", now=bridge.now)
    assert result.code == 0
    assert _result(result.out, ALICE) == "discarded"
    assert bridge.queued() == []
    assert sorted(json.loads(m["Body"])["psid"] for m in bridge.dead_letters()) == [BOB, CAROL]
    # Discarding needs a choice: it is never the default.
    result = cli("replay", *bridge.where(), "--discard", now=bridge.now)
    assert result.code == 2
    assert "say which messages to discard" in result.err


def test_all_of_a_persons_messages_are_replayed_in_order_however_many(bridge: Bridge, cli):
    """SQS hands out a group's messages ten at a time and none while one is in flight; the
    stale one kept at the head of the group does not hide those behind it."""
    stale = bridge.event(DAVE, "old", hours_ago=30)
    later = [bridge.event(DAVE, f"message {n}", hours_ago=2 - n / 100) for n in range(12)]
    for event in (stale, *later):  # put there directly, as SQS moves them
        bridge.sqs.send_message(
            QueueUrl=bridge.dead_letter_url,
            MessageBody=body(event),
            MessageGroupId=DAVE,
            MessageDeduplicationId=dedupe_id(event),
        )
    result = cli("replay", *bridge.where(), "--all", now=bridge.now)
    assert result.code == 0, result.err
    assert "13 messages: 12 sent back, 1 not sent" in result.out
    replayed: list[str] = []
    while batch := bridge.sqs.receive_message(
        QueueUrl=bridge.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30
    ).get("Messages"):  # as the worker takes them: a batch, done, deleted, the next
        replayed += [json.loads(m["Body"])["text"] for m in batch]
        for message in batch:
            bridge.sqs.delete_message(
                QueueUrl=bridge.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
    assert replayed == [f"message {n}" for n in range(12)]
    assert [json.loads(m["Body"])["text"] for m in bridge.dead_letters()] == ["old"]


def test_a_message_that_cannot_be_sent_back_stays_with_the_persons_later_ones(bridge: Bridge, cli):
    first, second = bridge.event(ALICE, "first", 3), bridge.event(ALICE, "second", 2)
    bridge.fail(first, second)
    nowhere = bridge.queue_url.replace(".fifo", "-gone.fifo")
    result = cli("replay", *bridge.where(), "--queue-url", nowhere, "--all", now=bridge.now)
    assert result.code == 1
    lines = [re.split(r"\s{2,}", line) for line in result.out.splitlines() if ALICE in line]
    assert lines[0][-1] == (
        "failed (AWS.SimpleQueueService.NonExistentQueue): could not be sent back"
    )
    assert lines[1][-1] == "not sent: an earlier message of this person could not be sent back"
    assert [json.loads(m["Body"])["text"] for m in bridge.dead_letters()] == ["first", "second"]


# -- where the queues come from --------------------------------------------------------------


def test_dead_letter_queue_from_the_queues_redrive_policy(bridge: Bridge, failed: Failed, cli):
    result = cli(
        "replay", "--table", bridge.table, "--queue-url", bridge.queue_url, "--psid", ALICE,
        "--format", "json", now=bridge.now,
    )  # fmt: skip
    data = _json(result)
    assert data["dead_letter_queue"] == bridge.dead_letter_url
    assert data["queue"] == bridge.queue_url
    assert [m["Body"] for m in bridge.queued()] == [body(failed.alice)]


def test_queue_from_the_dead_letter_queues_source(bridge: Bridge, failed: Failed, cli):
    data = _json(cli("replay", *bridge.where(), "--all", "--format", "json", now=bridge.now))
    assert data["queue"] == bridge.queue_url
    assert len(bridge.queued()) == 2


def test_queues_from_environment_variables(
    bridge: Bridge, failed: Failed, cli, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("BRIDGE_TABLE", bridge.table)
    monkeypatch.setenv("BRIDGE_DLQ_URL", bridge.dead_letter_url)
    assert set(_rows(cli("replay", now=bridge.now).out)) == {ALICE, BOB, CAROL}
    # A queue's name will do too: SQS knows its URL in this account and region.
    monkeypatch.setenv("BRIDGE_DLQ_URL", bridge.dead_letter_url.rsplit("/", 1)[1])
    assert set(_rows(cli("replay", now=bridge.now).out)) == {ALICE, BOB, CAROL}
    monkeypatch.delenv("BRIDGE_DLQ_URL")
    monkeypatch.setenv("BRIDGE_QUEUE_URL", bridge.queue_url)
    assert cli("replay", "--psid", BOB, now=bridge.now).code == 0
    assert [m["Body"] for m in bridge.queued()] == [body(failed.bob)]


def test_queues_from_the_function(bridge: Bridge, failed: Failed, cli, aws_env: str):
    function = make_function(aws_env, {"TABLE_NAME": bridge.table, "QUEUE_URL": bridge.queue_url})
    data = _json(cli("replay", "--function", function, "--format", "json", now=bridge.now))
    assert data["dead_letter_queue"] == bridge.dead_letter_url
    assert len(data["messages"]) == 3


def test_queues_from_the_pulumi_stack(bridge: Bridge, failed: Failed, cli, fake_pulumi):
    calls = fake_pulumi(
        table=bridge.table, queue=bridge.queue_url, dead_letter=bridge.dead_letter_url
    )
    data = _json(cli("replay", "--stack", "prod", "--all", "--format", "json", now=bridge.now))
    assert (data["dead_letter_queue"], data["queue"]) == (bridge.dead_letter_url, bridge.queue_url)
    assert calls.read_text().splitlines()[:2] == [
        "stack output tableName --non-interactive --stack prod",
        "stack output deadLetterQueueUrl --non-interactive --stack prod",
    ]


def test_no_queue_anywhere_says_what_to_pass(
    bridge: Bridge, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi either
    result = cli("replay", "--table", bridge.table, now=bridge.now)
    assert result.code == 1
    assert result.err == (
        "error: no dead-letter queue given: pass --dead-letter-url, --queue-url or --function, "
        "or set BRIDGE_DLQ_URL or BRIDGE_QUEUE_URL\n"
    )


def test_a_wrong_queue_url(bridge: Bridge, cli):
    wrong = bridge.dead_letter_url.replace("-dead.fifo", "-nope.fifo")
    result = cli("replay", "--table", bridge.table, "--dead-letter-url", wrong, now=bridge.now)
    assert result.code == 1
    assert result.err.startswith("error: queue not found in region us-east-1")
    assert "--dead-letter-url" in result.err


def test_a_message_another_reader_holds_is_not_shown_and_the_cli_says_so(
    bridge: Bridge, failed: Failed, cli
):
    bridge.sqs.receive_message(
        QueueUrl=bridge.dead_letter_url, MaxNumberOfMessages=1, VisibilityTimeout=60
    )
    result = cli("replay", *bridge.where(), now=bridge.now)
    assert result.code == 0
    assert len(_rows(result.out)) == 2
    assert "not shown: 1 message that another reader of the dead-letter queue holds" in result.err


def test_a_body_the_bot_did_not_write_is_never_replayed(bridge: Bridge, cli):
    bridge.sqs.send_message(
        QueueUrl=bridge.dead_letter_url,
        MessageBody="not json",
        MessageGroupId=ALICE,
        MessageDeduplicationId="stray",
    )
    result = cli("replay", *bridge.where(), "--all", now=bridge.now)
    assert result.code == 0
    assert (
        _result(result.out, ALICE) == "not sent: not a message of this bot: it cannot be replayed"
    )
    assert bridge.queued() == []
    assert cli("replay", *bridge.where(), "--psid", ALICE, "--discard", now=bridge.now).code == 0
    assert bridge.dead_letters() == []
