"""``python -m local`` (``make local``): the whole bridge on 127.0.0.1 and a chat page.

Runs until Ctrl-C (or SIGTERM), then stops every server it started and exits 0. Every
option has an environment default so that plain ``make local`` can be configured too.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from local.stack import (
    DEFAULT_MODEL_LATENCY,
    DEFAULT_PORT,
    OWNER_PSID,
    LocalStack,
    Options,
    StackError,
)


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m local",
        description=(
            "Run the Messenger bridge on this machine: the real handler with embedded AWS "
            "(DynamoDB and an SQS FIFO queue on moto, a poller in place of Lambda's event "
            "source mapping), a Messenger simulator and a chat page. No account needed."
        ),
        epilog="See docs/LOCAL.md for tunnels and the real Graph API.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("LOCAL_PORT") or DEFAULT_PORT),
        help="port of the chat page and webhook on 127.0.0.1; 0 picks a free one "
        f"(default: $LOCAL_PORT or {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--daily-limit",
        type=int,
        default=None,
        help="questions a day for ordinary users (default: $DAILY_LIMIT or the handler's 10)",
    )
    parser.add_argument(
        "--admin",
        action="append",
        default=[],
        metavar="PSID",
        help=f"an owner PSID; repeat for more (default: $ADMIN_PSIDS or {OWNER_PSID}, "
        "shown as Owner on the page)",
    )
    parser.add_argument(
        "--model-latency",
        type=float,
        default=DEFAULT_MODEL_LATENCY,
        metavar="SECONDS",
        help="how long the offline echo model thinks, so typing shows "
        f"(default: {DEFAULT_MODEL_LATENCY})",
    )
    parser.add_argument(
        "--echo",
        action="store_true",
        help="use the offline echo model even if OPENAI_API_KEY or OPENAI_BASE_URL is set",
    )
    parser.add_argument(
        "--graph",
        choices=("simulator", "real"),
        default=None,
        help="simulator: replies go to the chat page; real: to graph.facebook.com with your "
        "page's secrets (default: real if $GRAPH_API_URL is set, else simulator)",
    )
    parser.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        type=str.upper,
        default=None,
        help="the handler's log level (default: $LOG_LEVEL or INFO)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    if args.model_latency < 0:
        parser.error("--model-latency must not be negative")
    return Options(
        port=args.port,
        daily_limit=args.daily_limit,
        admins=tuple(args.admin),
        model_latency=args.model_latency,
        echo=args.echo,
        graph=args.graph,
        log_level=args.log_level,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    stopping = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        # A second Ctrl-C while stopping interrupts at once.
        signal.signal(signal.SIGINT, signal.default_int_handler)

    # Installed before starting, so Ctrl-C during start-up still stops cleanly.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    stack = LocalStack(options)
    try:
        stack.start()
    except StackError as error:
        print(f"local: {error}", file=sys.stderr)
        return 2
    try:
        print("\n".join(stack.summary()), flush=True)
        while not stopping.wait(0.5):
            pass
        print("Stopping...", flush=True)
    finally:
        stack.stop()
    print("Stopped: every local server is closed.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
