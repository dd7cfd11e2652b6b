"""Local stand-ins for the services the bridge talks to, for tests and ``make local``.

Each is a small HTTP server on 127.0.0.1 speaking the real wire format, so the handler runs
its real clients (requests, boto3, the openai SDK) with nothing but an endpoint URL changed.
"""

from local.graph import MessengerSimulator
from local.invoke import LambdaInvokeStandIn
from local.model import FakeOpenAI

__all__ = ["FakeOpenAI", "LambdaInvokeStandIn", "MessengerSimulator"]
