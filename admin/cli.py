"""``python -m admin``: the command line, where it finds the table, and the exit codes.

Exit codes: 0 done, 1 failed (unknown table, PSID or message, AWS refused, cancelled), 2 the
command line is wrong. Known failures end in one ``error:`` line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from handler.claims import Claims
from handler.commands import MAX_LIMIT
from handler.quota import STATUSES
from handler.store import Store

from . import commands
from .commands import CLEAR_LIMIT, Context
from .errors import EXIT_ERROR, EXIT_USAGE, AdminError, UsageError, explain_aws_error
from .queries import Reader
from .queues import Sqs
from .target import AWS_CONFIG, aws_session, resolve

PROG = "python -m admin"
EXIT_INTERRUPTED = 130
DAY_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")

DESCRIPTION = """\
Look after a deployed bridge: its users, their limits, how much they ask, and the messages
that failed for good.

The table is --table, else $BRIDGE_TABLE, else the TABLE_NAME of --function, else
`pulumi stack output tableName` (run in this project, for --stack or the selected stack).
The queues (for replay) come the same way: --dead-letter-url / --queue-url, else
$BRIDGE_DLQ_URL / $BRIDGE_QUEUE_URL, else the QUEUE_URL of --function (its dead-letter
queue from its redrive policy), else the stack outputs deadLetterQueueUrl and queueUrl.
AWS credentials, region and endpoint come from the usual places (--profile, AWS_PROFILE,
AWS_REGION, AWS_ENDPOINT_URL, ~/.aws); with the table from Pulumi, so may the region."""

EPILOG = """\
examples:
  python -m admin users --limit 20
  python -m admin --stack prod show 1234567890123456
  python -m admin set 1234567890123456 --status unlimited
  python -m admin set 1234567890123456 --limit 50
  python -m admin usage --from 2026-11-01 --to 2026-11-30 --format csv > november.csv
  python -m admin forget 1234567890123456 --yes
  python -m admin replay                    # what is on the dead-letter queue, and why
  python -m admin replay --all --dry-run    # what replaying would do
  python -m admin replay --psid 1234567890123456

exit codes: 0 done, 1 failed, 2 wrong command line. See docs/ADMIN.md."""


# -- argument types --------------------------------------------------------------------------


def _psid(raw: str) -> str:
    if not raw.isdigit():
        raise argparse.ArgumentTypeError(f"{raw!r} is not a PSID (a PSID is digits only)")
    return raw


def _day(raw: str) -> date:
    try:
        if not DAY_PATTERN.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a date like 2026-11-25") from None


def _whole(raw: str, low: int, high: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise argparse.ArgumentTypeError(f"{value} is out of range: use a number {span}")
    return value


def _daily_limit(raw: str) -> int:
    return _whole(raw, 0)


def _count(raw: str) -> int:
    return _whole(raw, 1)


def _own_limit(raw: str) -> int | str:
    """A number of questions a day, or ``default`` to go back to the configured default."""
    if raw.strip().lower() == CLEAR_LIMIT:
        return CLEAR_LIMIT
    return _whole(raw, 0, MAX_LIMIT)


# -- the parser ------------------------------------------------------------------------------


def _common_options(parser: argparse.ArgumentParser, *, in_command: bool) -> None:
    """Options allowed before or after the command: ``--table T users`` = ``users --table T``.

    In a command they default to SUPPRESS, so leaving them out there keeps what was given
    before the command instead of resetting it.
    """
    unset: Any = argparse.SUPPRESS if in_command else None
    where = parser.add_argument_group("table and AWS")
    where.add_argument("--table", default=unset, help="DynamoDB table name (env BRIDGE_TABLE)")
    where.add_argument(
        "--stack", default=unset, help="Pulumi stack to read tableName (and queue URLs) from"
    )
    where.add_argument(
        "--function",
        default=unset,
        metavar="NAME",
        help="read TABLE_NAME, DAILY_LIMIT, QUOTA_TIMEZONE and QUEUE_URL from this Lambda function",
    )
    where.add_argument(
        "--region",
        default=unset,
        help="AWS region (else AWS_REGION, AWS_DEFAULT_REGION, the profile's, the stack's)",
    )
    where.add_argument("--profile", default=unset, help="AWS profile (else AWS_PROFILE)")
    quota = parser.add_argument_group("quota settings, for display")
    quota.add_argument(
        "--daily-limit",
        type=_daily_limit,
        default=unset,
        metavar="N",
        help="the bot's default daily limit (else env DAILY_LIMIT, else 10)",
    )
    quota.add_argument(
        "--timezone",
        default=unset,
        metavar="ZONE",
        help="zone whose midnight starts a quota day (else env QUOTA_TIMEZONE, else UTC)",
    )


def _queue_options(parser: argparse.ArgumentParser, *, in_command: bool) -> None:
    """Where ``replay`` finds the queues; before or after the command, as the others."""
    unset: Any = argparse.SUPPRESS if in_command else None
    queues = parser.add_argument_group("queues (replay)")
    queues.add_argument(
        "--queue-url",
        default=unset,
        metavar="URL",
        help="the FIFO queue the function reads, by URL or name (env BRIDGE_QUEUE_URL)",
    )
    queues.add_argument(
        "--dead-letter-url",
        default=unset,
        metavar="URL",
        help="its dead-letter queue, by URL or name (env BRIDGE_DLQ_URL; else from the "
        "queue's redrive policy)",
    )


def _format_option(parser: argparse.ArgumentParser, choices: Sequence[str]) -> None:
    parser.add_argument(
        "--format",
        choices=choices,
        default="table",
        help="table for people (default); " + ", ".join(c for c in choices if c != "table"),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common_options(parser, in_command=False)
    _queue_options(parser, in_command=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        child = sub.add_parser(name, help=summary, description=summary)
        _common_options(child, in_command=True)
        return child

    users = command("users", "List users, most recently active first, with today's count.")
    users.add_argument("--limit", type=_count, metavar="N", help="only the N most recent")
    _format_option(users, ("table", "csv", "json"))
    users.set_defaults(run=commands.users)

    show = command("show", "One user: profile, today's usage and limit, the last 7 days.")
    show.add_argument("psid", type=_psid, help="the user's page-scoped id")
    _format_option(show, ("table", "json"))
    show.set_defaults(run=commands.show)

    change = command("set", "Change a user's status or own daily limit.")
    change.add_argument("psid", type=_psid, help="the user's page-scoped id")
    change.add_argument("--status", choices=STATUSES, help="default, unlimited or blocked")
    change.add_argument(
        "--limit",
        type=_own_limit,
        metavar="N|default",
        help=f"own daily limit (0 to {MAX_LIMIT}), or 'default' to clear it",
    )
    change.add_argument(
        "--create", action="store_true", help="create the user if the PSID is unknown"
    )
    _format_option(change, ("table", "json"))
    change.set_defaults(run=commands.set_user)

    usage = command("usage", "Questions per user per day over a date range, with totals.")
    usage.add_argument(
        "--from",
        dest="first",
        type=_day,
        metavar="YYYY-MM-DD",
        help="first day (default: 6 days before --to)",
    )
    usage.add_argument(
        "--to", dest="last", type=_day, metavar="YYYY-MM-DD", help="last day (default: today)"
    )
    _format_option(usage, ("table", "csv", "json"))
    usage.set_defaults(run=commands.usage)

    forget = command("forget", "Delete everything stored about a user, for good.")
    forget.add_argument("psid", type=_psid, help="the user's page-scoped id")
    forget.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    _format_option(forget, ("table", "json"))
    forget.set_defaults(run=commands.forget)

    replay = command(
        "replay", "Show the dead-letter queue and why; send chosen messages back to the queue."
    )
    _queue_options(replay, in_command=True)
    replay.add_argument(
        "ids",
        nargs="*",
        metavar="ID",
        help="a message id (or its first 8 characters, as the table shows) or an event id",
    )
    replay.add_argument("--all", action="store_true", help="every message still answerable")
    replay.add_argument(
        "--psid",
        action="append",
        type=_psid,
        metavar="PSID",
        help="this person's messages; repeat for more people",
    )
    replay.add_argument(
        "--dry-run", action="store_true", help="show what would be done; change nothing"
    )
    replay.add_argument(
        "--drop-stale",
        action="store_true",
        help="delete messages outside Messenger's 24-hour window (the chosen ones; all of "
        "them when none are chosen)",
    )
    replay.add_argument(
        "--discard",
        action="store_true",
        help="delete the chosen messages without answering them",
    )
    replay.add_argument(
        "--show-text",
        action="store_true",
        help="also show what people wrote (personal data: keep it out of logs and tickets)",
    )
    _format_option(replay, ("table", "csv", "json"))
    replay.set_defaults(run=commands.replay)
    return parser


# -- running ---------------------------------------------------------------------------------


def _exit_code(stop: SystemExit) -> int:
    code = stop.code
    if code is None:
        return 0
    return code if isinstance(code, int) else EXIT_ERROR


def main(argv: Sequence[str] | None = None, *, now: datetime | None = None) -> int:
    """Run one command; the exit code is returned, not raised, so tests can call this."""
    err = sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or argparse already printed what is wrong
        return _exit_code(stop)
    table, region = args.table or "(unknown)", args.region
    try:
        session = aws_session(args.profile, args.region, os.environ)
        region = session.region_name
        target = resolve(args, session, os.environ)
        table, region = target.table, target.region
        client = session.client("dynamodb", region_name=target.region, config=AWS_CONFIG)
        region = client.meta.region_name
        context = Context(
            args=args,
            target=target,
            store=Store(client, target.table),
            reader=Reader(client, target.table),
            claims=Claims(client, target.table),
            sqs=Sqs(session.client("sqs", region_name=target.region, config=AWS_CONFIG)),
            now=now or datetime.now(UTC),
            out=sys.stdout,
            err=err,
            stdin=sys.stdin,
        )
        return args.run(context)
    except UsageError as error:
        print(f"{PROG} {args.command}: error: {error}", file=err)
        return EXIT_USAGE
    except AdminError as error:
        print(f"error: {error}", file=err)
        return error.exit_code
    except (BotoCoreError, ClientError) as error:
        print(f"error: {explain_aws_error(error, table, region)}", file=err)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted", file=err)
        return EXIT_INTERRUPTED
