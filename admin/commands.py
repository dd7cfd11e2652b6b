"""The six commands. Each reads through ``Reader``, writes through the bot's own ``Store``
(``replay`` reads the bot's ``Claims`` and works on the queues through ``admin.queues``),
and prints one result on stdout in the asked format; notes and progress go to stderr.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TextIO

from handler import schema
from handler.claims import Claims
from handler.quota import (
    COUNTER_RETENTION,
    STATUS_BLOCKED,
    STATUS_DEFAULT,
    STATUS_UNLIMITED,
    day_key,
    effective_limit,
)
from handler.store import Store, User

from . import render
from .errors import AdminError, UsageError
from .progress import Progress
from .queries import Reader
from .queues import Sqs
from .render import Column, plural
from .replay import STALE, Action, Outcome, Plan, Replayer, Selection
from .reports import UsageReport, build_report, check_range
from .target import Target, find_dead_letter_queue, find_queue

CLEAR_LIMIT = "default"  # ``set --limit default``: back to the configured default
SHOW_DAYS = 7
# Parallel per-user queries for the usage report: enough to hide latency, far below any
# throttling for an on-demand table.
USAGE_WORKERS = 8


@dataclass
class Context:
    """What every command gets; the streams and clock are here so tests can swap them."""

    args: argparse.Namespace
    target: Target
    store: Store
    reader: Reader
    claims: Claims
    sqs: Sqs
    now: datetime
    out: TextIO
    err: TextIO
    stdin: TextIO

    @property
    def today(self) -> date:
        return date.fromisoformat(day_key(self.now, self.target.timezone))

    @property
    def zone(self) -> str:
        return self.target.timezone.key

    def note(self, text: str) -> None:
        print(f"note: {text}", file=self.err)


def _limit(user: User, ctx: Context) -> int | None:
    return effective_limit(user.status, user.daily_limit, ctx.target.daily_limit)


def _user_record(user: User, ctx: Context) -> dict[str, Any]:
    return {
        "psid": user.psid,
        "status": user.status,
        "own_limit": user.daily_limit,
        "daily_limit": _limit(user, ctx),
        "first_seen": render.iso_stamp(user.first_seen),
        "last_active": render.iso_stamp(user.active_at),
    }


def _read_users(ctx: Context, progress: Progress, limit: int | None = None) -> list[User]:
    found: list[User] = []
    for user in ctx.reader.users(limit):
        found.append(user)
        progress.show(f"Scanning… {plural(len(found), 'user')}")
    progress.show(f"Scanning… {plural(len(found), 'user')}", force=True)  # the final count
    return found


# -- users -----------------------------------------------------------------------------------


def users(ctx: Context) -> int:
    """Everyone, newest activity first, with today's count from one batch read per 100."""
    today = ctx.today.isoformat()
    with Progress(ctx.err) as progress:
        found = _read_users(ctx, progress, ctx.args.limit)
        counts = ctx.reader.counts_on(
            [u.psid for u in found],
            today,
            on_batch=lambda done: progress.show(
                f"Reading today's counts… {done}/{len(found)}", force=done == len(found)
            ),
        )
    records = [{**_user_record(u, ctx), "today": counts[u.psid]} for u in found]
    fmt = ctx.args.format
    if fmt == "json":
        ctx.out.write(
            render.to_json(
                {
                    "date": today,
                    "timezone": ctx.zone,
                    "default_daily_limit": ctx.target.daily_limit,
                    "users": records,
                }
            )
        )
    elif fmt == "csv":
        header = [
            "psid",
            "status",
            "own_limit",
            "daily_limit",
            "today",
            "first_seen",
            "last_active",
        ]
        ctx.out.write(render.to_csv(header, [[r[h] for h in header] for r in records]))
    elif not found:
        ctx.out.write("No users yet.\n")
    else:
        columns = [
            Column("PSID"),
            Column("STATUS"),
            Column("OWN LIMIT", right=True),
            Column("DAILY LIMIT", right=True),
            Column("TODAY", right=True),
            Column("FIRST SEEN"),
            Column("LAST ACTIVE"),
        ]
        rows = [
            [
                u.psid,
                u.status,
                render.MISSING if u.daily_limit is None else u.daily_limit,
                render.limit_text(_limit(u, ctx)),
                counts[u.psid],
                render.human_date(u.first_seen, ctx.target.timezone),
                render.human_time(u.active_at, ctx.now, ctx.target.timezone),
            ]
            for u in found
        ]
        ctx.out.write(render.table(columns, rows))
        most = " most recently active" if ctx.args.limit and len(found) == ctx.args.limit else ""
        ctx.out.write(
            f"\n{plural(len(found), 'user' + most, 'users' + most)}; today is {today} "
            f"({ctx.zone}); default daily limit {ctx.target.daily_limit}\n"
        )
    return 0


# -- show ------------------------------------------------------------------------------------


def _known(ctx: Context, psid: str) -> User:
    user = ctx.store.get_user(psid)
    if user is None:
        raise AdminError(f"unknown PSID {psid}: no such user in table {ctx.target.table}")
    return user


def _limit_story(user: User, ctx: Context) -> str:
    if user.status == STATUS_UNLIMITED:
        return "unlimited (status unlimited)"
    if user.status == STATUS_BLOCKED:
        return "0 (blocked)"
    if user.daily_limit is not None:
        return f"{user.daily_limit} (own limit; default {ctx.target.daily_limit})"
    return f"{ctx.target.daily_limit} (default)"


def _today_story(used: int, limit: int | None) -> str:
    if limit is None:
        return f"{plural(used, 'question')} (no limit)"
    return f"{used} of {limit} questions, {max(0, limit - used)} left"


def show(ctx: Context) -> int:
    """A user's profile and last week: what the owner needs before changing anything."""
    user = _known(ctx, ctx.args.psid)
    today = ctx.today
    first = today - timedelta(days=SHOW_DAYS - 1)
    counts = ctx.reader.counts_between(user.psid, first, today)
    days = [first + timedelta(days=n) for n in range(SHOW_DAYS)]
    week = [(d, counts.get(d.isoformat(), 0)) for d in days]
    used, limit = counts.get(today.isoformat(), 0), _limit(user, ctx)
    turns = len(ctx.store.load_history(user.psid))
    if ctx.args.format == "json":
        record = {
            **_user_record(user, ctx),
            "default_daily_limit": ctx.target.daily_limit,
            "timezone": ctx.zone,
            "today": {
                "date": today.isoformat(),
                "questions": used,
                "limit": limit,
                "left": None if limit is None else max(0, limit - used),
            },
            "last_7_days": [{"date": d.isoformat(), "questions": n} for d, n in week],
            "history_turns": turns,
        }
        ctx.out.write(render.to_json(record))
        return 0
    tz = ctx.target.timezone
    ctx.out.write(
        render.fields(
            [
                ("PSID", user.psid),
                ("Status", user.status),
                ("Daily limit", _limit_story(user, ctx)),
                ("Today", f"{_today_story(used, limit)} ({today}, {ctx.zone})"),
                ("First seen", render.human_time(user.first_seen, ctx.now, tz)),
                ("Last active", render.human_time(user.active_at, ctx.now, tz)),
                ("Conversation", f"{plural(turns, 'turn')} kept"),
            ]
        )
    )
    rows: list[Sequence[Any]] = [[f"{d:%a %Y-%m-%d}", n] for d, n in week]
    rows.append(["Total", sum(n for _, n in week)])
    ctx.out.write(f"\nLast {SHOW_DAYS} days\n")
    ctx.out.write(render.table([Column("DATE"), Column("QUESTIONS", right=True)], rows))
    return 0


# -- set -------------------------------------------------------------------------------------


def set_user(ctx: Context) -> int:
    """Change status and/or own limit; an unknown PSID is a typo unless ``--create`` says not."""
    args = ctx.args
    if args.status is None and args.limit is None:
        raise UsageError("say what to set: --status default|unlimited|blocked and/or --limit N")
    before = ctx.store.get_user(args.psid)
    if before is None and not args.create:
        raise AdminError(
            f"unknown PSID {args.psid}: no such user in table {ctx.target.table}; "
            "pass --create to add it with these settings"
        )
    after = before
    if args.status is not None:
        after = ctx.store.set_status(args.psid, args.status, ctx.now)
    if args.limit is not None:
        own = None if args.limit == CLEAR_LIMIT else int(args.limit)
        after = ctx.store.set_limit(args.psid, own, ctx.now)
    assert after is not None  # at least one of the two writes ran
    if args.limit not in (None, CLEAR_LIMIT) and after.status != STATUS_DEFAULT:
        ctx.note(f"status is {after.status}, so the own limit applies only after --status default")
    if args.format == "json":
        previous = (
            None if before is None else {"status": before.status, "own_limit": before.daily_limit}
        )
        record = {**_user_record(after, ctx), "created": before is None, "previous": previous}
        ctx.out.write(render.to_json(record))
        return 0

    def own(user: User | None) -> str:
        return render.MISSING if user is None or user.daily_limit is None else str(user.daily_limit)

    def change(old: str | None, new: str) -> str:
        return new if old is None or old == new else f"{old} -> {new}"

    ctx.out.write(f"{'Created' if before is None else 'Updated'} {after.psid}\n")
    ctx.out.write(
        render.fields(
            [
                ("Status", change(before.status if before else None, after.status)),
                ("Own limit", change(own(before) if before else None, own(after))),
                ("Daily limit", _limit_story(after, ctx)),
            ]
        )
    )
    return 0


# -- usage -----------------------------------------------------------------------------------


def _report_range(ctx: Context) -> tuple[date, date]:
    last = ctx.args.last or ctx.today
    first = ctx.args.first or last - timedelta(days=SHOW_DAYS - 1)
    try:
        check_range(first, last)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return first, last


def usage(ctx: Context) -> int:
    """Per-user, per-day question counts over a range.

    Cost: one Query of the users index, then one Query per user for the user's partition
    with the sort key between the counters of ``from`` and ``to``: 1 + users requests
    whatever the length of the range, each reading only the counters it reports. A Scan
    with a filter would be a single call in the code but would read (and bill) every item
    of the table, conversation histories included, for any range; with counters kept only
    35 days, per-user queries stay cheaper until most users have counters every day.
    The queries run a few at a time, so latency is not paid once per user.
    """
    first, last = _report_range(ctx)
    kept_from = ctx.today - timedelta(days=COUNTER_RETENTION.days)
    if first < kept_from:
        ctx.note(
            f"daily counters are kept {COUNTER_RETENTION.days} days; "
            f"days before {kept_from} may be missing or incomplete"
        )
    with Progress(ctx.err) as progress:
        found = _read_users(ctx, progress)
        counts: dict[str, dict[str, int]] = {}
        with ThreadPoolExecutor(USAGE_WORKERS) as pool:
            results = pool.map(lambda u: ctx.reader.counts_between(u.psid, first, last), found)
            for done, (user, by_day) in enumerate(zip(found, results, strict=True), start=1):
                counts[user.psid] = by_day
                progress.show(
                    f"Reading counters… {done}/{len(found)} users", force=done == len(found)
                )
    report = build_report(first, last, counts)
    if ctx.args.format == "json":
        ctx.out.write(render.to_json(_report_json(report, ctx)))
    elif ctx.args.format == "csv":
        ctx.out.write(_report_csv(report))
    else:
        ctx.out.write(_report_table(report, ctx))
    return 0


def _report_json(report: UsageReport, ctx: Context) -> dict[str, Any]:
    return {
        "from": report.first.isoformat(),
        "to": report.last.isoformat(),
        "timezone": ctx.zone,
        "total": {
            "questions": report.questions,
            "users": report.users,
            "active_days": report.active_days,
            "days": len(report.per_day),
        },
        "per_day": [
            {"date": d.day, "questions": d.questions, "users": d.users} for d in report.per_day
        ],
        "per_user": [
            {"psid": u.psid, "questions": u.questions, "active_days": u.active_days}
            for u in report.per_user
        ],
        "counts": [{"date": r.day, "psid": r.psid, "questions": r.questions} for r in report.rows],
    }


def _report_csv(report: UsageReport) -> str:
    """One sheet: ``kind`` tells a user's day, a user's total, a day's total, the total."""
    rows: list[list[Any]] = [["user-day", r.day, r.psid, r.questions] for r in report.rows]
    rows += [["user", None, u.psid, u.questions] for u in report.per_user]
    rows += [["day", d.day, None, d.questions] for d in report.per_day]
    rows.append(["total", None, None, report.questions])
    return render.to_csv(["kind", "date", "psid", "questions"], rows)


def _report_table(report: UsageReport, ctx: Context) -> str:
    days = len(report.per_day)
    title = (
        f"Usage {report.first} to {report.last} ({plural(days, 'day')}, quota days in {ctx.zone})"
    )
    parts = [title, ""]
    if not report.rows:
        parts.append("No questions in this range.")
        return "\n".join(parts) + "\n"
    active = [d for d in report.per_day if d.questions]
    parts.append("By day")
    parts.append(
        render.table(
            [Column("DATE"), Column("USERS", right=True), Column("QUESTIONS", right=True)],
            [[_weekday(d.day), d.users, d.questions] for d in active],
        )
    )
    if len(active) < days:
        parts[-1] += f"({plural(days - len(active), 'day')} without questions not shown)\n"
    parts.append("By user")
    parts.append(
        render.table(
            [Column("PSID"), Column("QUESTIONS", right=True), Column("DAYS", right=True)],
            [[u.psid, u.questions, u.active_days] for u in report.per_user],
        )
    )
    parts.append("By user and day")
    parts.append(
        render.table(
            [Column("DATE"), Column("PSID"), Column("QUESTIONS", right=True)],
            [[_weekday(r.day), r.psid, r.questions] for r in report.rows],
        )
    )
    parts.append(
        f"Total: {plural(report.questions, 'question')} from {plural(report.users, 'user')} "
        f"on {report.active_days} of {plural(days, 'day')}"
    )
    return "\n".join(parts) + "\n"


def _weekday(day: str) -> str:
    return f"{date.fromisoformat(day):%a %Y-%m-%d}"


# -- forget ----------------------------------------------------------------------------------


def _describe(keys: Sequence[str]) -> str:
    """'profile, 2 daily counters, conversation history': what forget is about to delete."""
    days = sum(1 for key in keys if key.startswith(schema.DAY_PREFIX))
    profile, history = schema.PROFILE in keys, schema.HISTORY in keys
    outbox, pause = schema.OUTBOX in keys, schema.PAUSE in keys
    parts = []
    if profile:
        parts.append("profile")
    if days:
        parts.append(plural(days, "daily counter"))
    if history:
        parts.append("conversation history")
    if outbox:
        parts.append("notices kept for an owner")
    if pause:
        parts.append("a takeover's pause")
    others = len(keys) - days - profile - history - outbox - pause
    if others:
        parts.append(plural(others, "other item"))
    return ", ".join(parts)


def _confirmed(ctx: Context, question: str) -> bool:
    """Ask on the terminal; without one, refuse rather than guess (see ``--yes``)."""
    isatty = getattr(ctx.stdin, "isatty", None)
    if not (isatty and isatty()):
        raise UsageError(
            "forget deletes data for good and there is no terminal to ask for confirmation; "
            "pass --yes to confirm"
        )
    ctx.err.write(f"{question} [y/N] ")
    ctx.err.flush()
    answer = ctx.stdin.readline()
    if not answer.endswith("\n"):
        ctx.err.write("\n")
    return answer.strip().lower() in {"y", "yes"}


def forget(ctx: Context) -> int:
    """Delete a user's profile, counters and history (the bot's own ``forget_user``)."""
    psid = ctx.args.psid
    keys = ctx.reader.sort_keys(psid)
    if not keys:
        raise AdminError(f"unknown PSID {psid}: nothing stored about it in {ctx.target.table}")
    what = _describe(keys)
    user = ctx.store.get_user(psid)
    if user is not None and user.status == STATUS_BLOCKED:
        ctx.note(f"{psid} is blocked: forgetting also lifts the block if they write again")
    if not ctx.args.yes and not _confirmed(
        ctx, f"Delete everything stored about {psid} ({what})? This cannot be undone."
    ):
        print("Cancelled; nothing deleted.", file=ctx.err)
        return 1
    deleted = ctx.store.forget_user(psid)
    if ctx.args.format == "json":
        ctx.out.write(render.to_json({"psid": psid, "deleted": deleted, "what": what}))
    else:
        ctx.out.write(f"Forgot {psid}: deleted {plural(deleted, 'item')} ({what}).\n")
    # Messages that failed for good wait on the dead-letter queue, not in the table.
    ctx.note(
        f"messages of {psid} still on the dead-letter queue are not in the table: "
        f"`python -m admin replay --psid {psid} --discard` deletes them"
    )
    return 0


# -- replay ----------------------------------------------------------------------------------

LOOK_HINT = (
    "nothing was sent back. To replay: python -m admin replay --all (or message ids, or "
    "--psid PSID); add --dry-run to see what it would do first"
)


def _replay_plan(args: argparse.Namespace) -> Plan:
    selection = Selection(
        everything=args.all, ids=frozenset(args.ids), psids=frozenset(args.psid or ())
    )
    if args.discard and not selection.named:
        raise UsageError("say which messages to discard: message ids, --psid PSID or --all")
    return Plan(selection, drop_stale=args.drop_stale, discard=args.discard, dry_run=args.dry_run)


def replay(ctx: Context) -> int:
    """The dead-letter queue, each message with who, how old and why it failed; the chosen
    ones sent back to the queue (or dropped). Message text only with ``--show-text``."""
    plan = _replay_plan(ctx.args)
    hints, stack = ctx.target.queues, ctx.args.stack
    dead_letter_url, _source = find_dead_letter_queue(hints, ctx.sqs, stack)
    waiting, in_flight = ctx.sqs.depth(dead_letter_url)  # also: is it there at all
    queue_url = None
    if plan.selection.named and not plan.discard:
        queue_url, _source = find_queue(hints, dead_letter_url, ctx.sqs, stack)
    with Progress(ctx.err) as progress:
        replayer = Replayer(
            sqs=ctx.sqs,
            event_item=ctx.claims.get,
            dead_letter_url=dead_letter_url,
            queue_url=queue_url,
            plan=plan,
            now_ms=int(ctx.now.timestamp() * 1000),
            on_message=lambda n: progress.show(
                f"Reading the dead-letter queue… {plural(n, 'message')}"
            ),
        )
        outcomes = replayer.run()
    show_text = ctx.args.show_text
    records = [_outcome_record(o, plan, ctx, show_text) for o in outcomes]
    if ctx.args.format == "json":
        ctx.out.write(
            render.to_json(
                {
                    "dead_letter_queue": dead_letter_url,
                    "queue": queue_url,
                    "dry_run": plan.dry_run,
                    "messages": records,
                    "other_messages": replayer.others,
                }
            )
        )
    elif ctx.args.format == "csv":
        header = _replay_header(show_text)
        ctx.out.write(render.to_csv(header, [[r[h] for h in header] for r in records]))
    else:
        ctx.out.write(_replay_table(outcomes, records, plan, replayer.others, show_text))
    _replay_notes(ctx, plan, outcomes, waiting, in_flight, len(outcomes) + replayer.others)
    unknown = replayer.unknown_ids()
    if unknown:
        raise AdminError(f"not on the dead-letter queue: {', '.join(unknown)}")
    return 1 if any(o.error for o in outcomes) else 0


def _result(outcome: Outcome, plan: Plan) -> str:
    """What happened to the message, or what would, in words."""
    if outcome.error:
        return f"failed ({outcome.error}): {outcome.reason}"
    if outcome.action is Action.KEEP:
        if not plan.selection.named:
            return outcome.reason or "can be replayed"
        return f"not sent: {outcome.reason}"
    done = {
        Action.REPLAY: ("sent back to the queue", "would be sent back to the queue"),
        Action.DROP: (f"dropped: {STALE}", f"would be dropped: {STALE}"),
        Action.DISCARD: ("discarded", "would be discarded"),
    }[outcome.action]
    return done[0] if outcome.done else done[1]


_SUMMARY_ORDER = (
    "can be replayed",
    "no longer answerable",
    "cannot be replayed",
    "sent back",
    "would be sent back",
    "dropped",
    "would be dropped",
    "discarded",
    "would be discarded",
    "not sent",
    "failed",
)


def _short_result(outcome: Outcome, plan: Plan) -> str:
    """The result in a few words, for the summary line."""
    if outcome.error:
        return "failed"
    if outcome.action is Action.KEEP:
        if plan.selection.named:
            return "not sent"
        if outcome.dead.event is None:
            return "cannot be replayed"
        return "no longer answerable" if outcome.dead.stale else "can be replayed"
    verb = {Action.REPLAY: "sent back", Action.DROP: "dropped", Action.DISCARD: "discarded"}
    return verb[outcome.action] if outcome.done else f"would be {verb[outcome.action]}"


def _stamp(ms: int) -> str | None:
    if ms <= 0:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _outcome_record(outcome: Outcome, plan: Plan, ctx: Context, show_text: bool) -> dict[str, Any]:
    dead, attempts = outcome.dead, outcome.dead.attempts
    now_ms = int(ctx.now.timestamp() * 1000)
    record: dict[str, Any] = {
        "message_id": dead.letter.message_id,
        "event_id": dead.event_id,
        "psid": dead.psid,
        "kind": dead.event.kind if dead.event else None,
        "sent_at": _stamp(dead.sent_ms),
        "age_from": dead.age_from,
        "age_seconds": (now_ms - dead.sent_ms) // 1000 if dead.sent_ms > 0 else None,
        "receives": dead.receives,
        "attempts": attempts.count,
        "last_error": attempts.last_error,
        "answer_ready": attempts.answer_ready,
        "answered": attempts.answered,
        "answerable": dead.event is not None and not dead.stale,
        "why": attempts.why,
        "action": outcome.action.value,
        "done": outcome.done,
        "result": _result(outcome, plan),
        "error": outcome.error,
        "new_message_id": outcome.new_message_id,
    }
    if show_text:
        record["text"] = dead.event.text if dead.event else None
        record["payload"] = dead.event.payload if dead.event else None
    return record


def _replay_header(show_text: bool) -> list[str]:
    header = [
        "message_id", "event_id", "psid", "kind", "sent_at", "age_from", "age_seconds",
        "receives", "attempts", "last_error", "answer_ready", "answered", "answerable", "why",
        "action", "done", "result", "error", "new_message_id",
    ]  # fmt: skip
    return [*header, "text", "payload"] if show_text else header


def _text_cell(record: dict[str, Any]) -> str:
    """What the person wrote, quoted and escaped (no line breaks or control characters)."""
    if record["text"] is None:
        return render.MISSING
    cell = json.dumps(record["text"], ensure_ascii=False)
    return f"{cell} [{record['payload']}]" if record["payload"] else cell


def _age_cell(record: dict[str, Any]) -> str:
    seconds = record["age_seconds"]
    return render.MISSING if seconds is None else render.ago(timedelta(seconds=seconds))


def _replay_rows(records: Sequence[dict[str, Any]], show_text: bool) -> str:
    columns = [
        Column("MESSAGE"),
        Column("PSID"),
        Column("KIND"),
        Column("AGE"),
        Column("RECEIVES", right=True),
        Column("WHY"),
        Column("RESULT"),
        *([Column("TEXT")] if show_text else []),
    ]
    rows = [
        [
            r["message_id"][:8],
            r["psid"],
            r["kind"] or render.MISSING,
            _age_cell(r),
            r["receives"],
            r["why"],
            r["result"],
            *([_text_cell(r)] if show_text else []),
        ]
        for r in records
    ]
    return render.table(columns, rows)


def _replay_table(
    outcomes: Sequence[Outcome],
    records: Sequence[dict[str, Any]],
    plan: Plan,
    others: int,
    show_text: bool,
) -> str:
    """The messages, then one line of totals: '3 messages: 2 sent back, 1 not sent'."""
    if outcomes:
        tally = Counter(_short_result(o, plan) for o in outcomes)
        ordered = sorted(tally.items(), key=lambda item: _SUMMARY_ORDER.index(item[0]))
        totals = ", ".join(f"{count} {what}" for what, count in ordered)
        parts = [_replay_rows(records, show_text), f"{plural(len(outcomes), 'message')}: {totals}"]
    elif plan.selection.named or others:
        parts = ["No message on the dead-letter queue matches."]
    else:
        parts = ["The dead-letter queue is empty."]
    if others:
        parts.append(f"{plural(others, 'other message')} left on the dead-letter queue.")
    if plan.dry_run:
        parts.append("Dry run: nothing was changed.")
    return "\n".join(parts) + "\n"


def _replay_notes(
    ctx: Context,
    plan: Plan,
    outcomes: Sequence[Outcome],
    waiting: int,
    in_flight: int,
    read: int,
) -> None:
    """What the owner may want to do next, and what the run could not see."""
    answerable = any(o.dead.event is not None and not o.dead.stale for o in outcomes)
    if not plan.selection.named and answerable:
        ctx.note(LOOK_HINT)
    stale = sum(1 for o in outcomes if o.dead.stale and o.dead.event and o.action is Action.KEEP)
    if stale and not plan.drop_stale:
        ctx.note(f"--drop-stale deletes the {plural(stale, 'message')} no longer answerable")
    if in_flight:
        ctx.note(
            f"not shown: {plural(in_flight, 'message')} that another reader of the dead-letter "
            "queue holds (in flight); look again in a few minutes"
        )
    if waiting > read:
        ctx.note(
            f"SQS counts about {waiting} messages and {read} were read: SQS hands out a "
            "person's messages ten at a time, the rest show once those are replayed or dropped"
        )
