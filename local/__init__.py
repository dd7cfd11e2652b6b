"""Local stand-ins for the services the bridge talks to, for tests and ``make local``.

Each server is a small HTTP server on 127.0.0.1 speaking the real wire format, so the handler
runs its real clients (requests, boto3, the openai SDK) with nothing but an endpoint URL
changed; AWS itself is moto (``local.aws``), and ``local.event_source.QueuePoller`` plays
Lambda's SQS event source mapping. ``local.harness`` wires them together.
"""

from local.event_source import QueuePoller
from local.graph import MessengerSimulator
from local.model import FakeOpenAI

__all__ = ["FakeOpenAI", "MessengerSimulator", "QueuePoller"]
