"""AWS on loopback: moto's server (embedded in this process, or as a child process) and the
bridge's resources in it, made as the Pulumi stack makes them.

moto 5.2 lets a later message of a FIFO group overtake an earlier one when several of the
group's in-flight messages become visible together, two concurrent receives can take one
group's messages at once, and it stores bodies SQS refuses (U+0000, U+FFFF...). SQS never
does any of it, and the bridge rests on that: ``fix_moto_sqs`` mends all three.
``python -m local.aws -p PORT`` runs moto's server with the fixes, for tests that want AWS
in another process.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from typing import Any, Self

from handler import schema

REGION = "us-east-1"


_RECEIVE_LOCK = threading.Lock()
# Characters outside https://www.w3.org/TR/REC-xml/#charsets, which SQS refuses in a body.
_REFUSED_BY_SQS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LONG_POLL_STEP = 0.05


def fix_moto_sqs() -> None:
    """Three fixes that make moto's queues hold SQS's promises:

    - in flight means invisible: a message whose visibility ran out holds its group no more;
    - ReceiveMessage is atomic: between its look at a message (visible? group free?) and
      marking it received, another receive could take the same message or the group's next
      one, so two invocations worked on one person at once. A long poll waits outside the
      lock, looking again every 50 ms;
    - a body with a character outside SQS's set is refused with ``InvalidMessageContents``.
    """
    from moto.sqs.exceptions import SQSException
    from moto.sqs.models import Queue, SQSBackend

    def pending_message_groups(self: Any) -> set[str]:
        return {
            message.group_id
            for message in self._pending_messages
            if message.group_id is not None and not message.visible
        }

    Queue.pending_message_groups = property(pending_message_groups)  # type: ignore[assignment]
    if getattr(SQSBackend.receive_message, "_atomic", False):
        return
    validate = SQSBackend._validate_message

    def validate_contents(self: Any, queue: Any, message_body: str, *args: Any, **kw: Any) -> None:
        found = _REFUSED_BY_SQS.search(message_body)
        if found:
            raise SQSException(
                "InvalidMessageContents",
                f"Invalid binary character '#x{ord(found.group()):X}' was found in the message "
                "body, the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | "
                "#xE000 to #xFFFD | #x10000 to #x10FFFF",
            )
        validate(self, queue, message_body, *args, **kw)

    SQSBackend._validate_message = validate_contents  # type: ignore[method-assign]
    receive = SQSBackend.receive_message

    def atomic_receive(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> Any:
        deadline = time.monotonic() + (wait_seconds_timeout or 0)
        while True:
            with _RECEIVE_LOCK:
                found = receive(
                    self, queue_name, count, 0, visibility_timeout, message_attribute_names
                )
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(_LONG_POLL_STEP)

    atomic_receive._atomic = True  # type: ignore[attr-defined]
    SQSBackend.receive_message = atomic_receive  # type: ignore[method-assign]


class EmbeddedAWS:
    """moto's server in a thread of this process, on loopback: AWS with no account.

    moto's own ``ThreadedMotoServer`` never closes its listening socket; this one does.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = (host, port)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        fix_moto_sqs()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self._server = make_server(
            *self._address,
            DomainDispatcherApplication(create_backend_app),
            threaded=True,
            request_handler=MotoRequestHandler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="moto",
            daemon=True,
        )
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("embedded AWS is not running")
        return f"http://{self._address[0]}:{self._server.server_port}"

    def stop(self, timeout: float = 2.0) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout)
        self._server = None
        self._thread = None


# -- the bridge's resources ---------------------------------------------------------------


def create_table(client: Any, table_name: str) -> None:
    """The table as the Pulumi stack makes it: same keys and index, TTL on."""
    client.create_table(**schema.create_table_request(table_name))
    client.get_waiter("table_exists").wait(
        TableName=table_name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 300}
    )
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": schema.TTL_ATTRIBUTE},
    )


def queue_attributes(
    *, visibility_timeout: int, dead_letter_arn: str | None = None, max_receives: int = 5
) -> dict[str, str]:
    """A FIFO queue's attributes as the stack sets them (high-throughput FIFO, SSE on)."""
    attributes = {
        "FifoQueue": "true",
        "ContentBasedDeduplication": "false",
        "DeduplicationScope": "messageGroup",
        "FifoThroughputLimit": "perMessageGroupId",
        "SqsManagedSseEnabled": "true",
        "VisibilityTimeout": str(visibility_timeout),
    }
    if dead_letter_arn is not None:
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receives}
        )
    return attributes


def create_queues(
    client: Any, name: str, *, visibility_timeout: int, max_receives: int
) -> tuple[str, str]:
    """The FIFO queue and its FIFO dead-letter queue; returns both URLs."""
    dead = client.create_queue(
        QueueName=f"{name}-dead.fifo",
        Attributes={
            **queue_attributes(visibility_timeout=30),
            "MessageRetentionPeriod": str(14 * 24 * 3600),
        },
    )["QueueUrl"]
    dead_arn = client.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    queue = client.create_queue(
        QueueName=f"{name}.fifo",
        Attributes=queue_attributes(
            visibility_timeout=visibility_timeout,
            dead_letter_arn=dead_arn,
            max_receives=max_receives,
        ),
    )["QueueUrl"]
    return queue, dead


def create_topic(sns: Any, sqs: Any, name: str) -> tuple[str, str]:
    """The owner's SNS topic, as the stack makes it, and a queue subscribed to it that reads
    what an e-mail subscription (``ownerEmail``) would get; returns (topic ARN, queue URL)."""
    topic = sns.create_topic(Name=f"{name}-owner")["TopicArn"]
    inbox = sqs.create_queue(QueueName=f"{name}-mail")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
    return topic, inbox


def read_mail(sqs: Any, inbox: str) -> list[dict[str, str]]:
    """What the owner's topic published since the last read: each ``subject`` and ``body``."""
    found: list[dict[str, str]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return found
        for message in messages:
            envelope = json.loads(message["Body"])
            found.append({"subject": envelope.get("Subject", ""), "body": envelope["Message"]})
            sqs.delete_message(QueueUrl=inbox, ReceiptHandle=message["ReceiptHandle"])


def store_secrets(client: Any, names: Mapping[str, str], values: Mapping[str, str]) -> None:
    """SSM SecureString parameters: ``names`` and ``values`` are keyed by secret name."""
    for secret, name in names.items():
        client.put_parameter(Name=name, Value=values[secret], Type="SecureString", Overwrite=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto's server, with the FIFO fix")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    fix_moto_sqs()
    from moto.server import main as moto_main

    moto_main(["-H", args.host, "-p", str(args.port)])


if __name__ == "__main__":
    main()
