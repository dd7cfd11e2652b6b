"""docs/BENCHMARKS.md and the console summary, from the figures ``bench.run`` keeps."""

from __future__ import annotations

from typing import Any

COLD_AIM_FLOOR = 1.25  # the handler within 1.25x of the floor (b)
COLD_AIM_NAIVE = 2.0  # and at least 2x faster than the naive design (c)
X = "\u00d7"  # the multiplication sign, in ratios
EN = "\u2013"  # the en dash, in ranges


def _ms(value: float | None, digits: int = 1) -> str:
    return EN if value is None else f"{value:,.{digits}f}"


def _usd(value: float) -> str:
    if value == 0:
        return "$0"
    if value >= 100:
        return f"${value:,.0f}"
    if value >= 1:
        return f"${value:,.2f}"
    if value >= 0.01:
        return f"${value:.3f}"
    digits = 2
    while value < 10 ** -(digits - 1) and digits < 12:
        digits += 1
    return f"${value:.{digits + 1}f}"


def _mb(value: float) -> str:
    return f"{value / 1024 / 1024:,.1f} MB"


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _n(value: float | None) -> str:
    """A count per message: whole numbers without decimals."""
    if value is None:
        return EN
    return f"{value:.0f}" if abs(value - round(value)) < 0.005 else f"{value:.2f}"


def _meta(section: dict[str, Any]) -> str:
    meta = section.get("meta", {})
    quick = " (quick run: fewer samples)" if meta.get("quick") else ""
    return (
        f"_Measured {meta.get('date', '?')}, load average {meta.get('load_before')} before and "
        f"{meta.get('load_after')} after, {meta.get('seconds', '?')} s{quick}._"
    )


# -- console ------------------------------------------------------------------------------


def summary_lines(r: dict[str, Any]) -> list[str]:
    lines = ["Summary"]
    if "cold" in r:
        c, q = r["cold"]["variants"], r["cold"]["ratios"]
        lines.append(
            f"  cold start to 200: handler {_ms(c['handler']['to_200_ms']['median'])} ms, floor "
            f"{_ms(c['floor']['to_200_ms']['median'])} ms, naive "
            f"{_ms(c['naive']['to_200_ms']['median'])} ms, bare python "
            f"{_ms(c['pass']['exit_ms']['median'])} ms"
        )
        lines.append(
            f"    handler/floor {q['handler_over_floor']:.2f}x (aim <= {COLD_AIM_FLOOR}: "
            f"{_met(q['handler_over_floor'] <= COLD_AIM_FLOOR).strip('*')}); naive/handler "
            f"{q['naive_over_handler']:.2f}x (aim >= {COLD_AIM_NAIVE}: "
            f"{_met(q['naive_over_handler'] >= COLD_AIM_NAIVE).strip('*')})"
        )
    if "warm" in r:
        w = r["warm"]
        lines.append(
            f"  warm webhook: p50 {_ms(w['latency_ms']['median'], 2)} ms, p99 "
            f"{_ms(w['latency_ms']['p99'], 2)} ms; CPU-only "
            f"{_ms(w['cpu_us']['lambda_handler_no_hand_off']['median'])} us"
        )
    if "package" in r:
        for arch, a in r["package"]["architectures"].items():
            lines.append(
                f"  package {arch}: {_mb(a['zipped_bytes'])} zipped, {_mb(a['unzipped_bytes'])} "
                f"unzipped, {a['files']} files; warm rebuild {a['rebuild_s']['median']:.2f} s"
            )
    if "e2e" in r:
        e = r["e2e"]
        b, f = e["burst"], e["sequential"]["function_requests"]
        lines.append(
            f"  e2e {b['messages']} messages: {b['messages_per_s']:.1f} msg/s, typing_on p50/p99 "
            f"{_ms(b['to_typing_on_ms']['median'], 0)}/{_ms(b['to_typing_on_ms']['p99'], 0)} ms, "
            f"reply p50/p99 {_ms(b['to_reply_ms']['median'], 0)}/"
            f"{_ms(b['to_reply_ms']['p99'], 0)} ms, exactly one reply each: "
            f"{b['exactly_one_reply_each']}, in order: {b['in_order_per_person']}"
        )
        worst = max(v for v in (f["new_user"], f["returning_user"]) if v is not None)
        lines.append(
            f"    AWS requests per answered message, the function's: {_n(f['returning_user'])} "
            f"(returning user), {_n(f['new_user'])} (new user) (aim <= "
            f"{e['aim_function_requests']}: {_met(worst <= e['aim_function_requests']).strip('*')}"
            f"); the mapping's: {e['sequential']['aws']['mapping_per_message']:.1f} per batch"
        )
    if "powertools" in r:
        pt = r["powertools"]
        if pt.get("skipped"):
            lines.append(f"  powertools: not measured ({pt['skipped']})")
        else:
            cases = pt["cases"]
            lines.append(
                f"  powertools {pt['version']}: batch utility import "
                f"{_ms(cases['powertools']['import_ms']['median'])} ms after boto3 vs ours "
                f"{_ms(cases['ours_after_bot']['import_ms']['median'])} ms; "
                f"{_mb(pt['size']['with_pyc_bytes'])} with .pyc"
            )
    if "cost" in r:
        k = r["cost"]
        case = k["cases"]["model_2s_full_history"]
        lines.append(
            f"  cost (2 s model, full history): AWS {_usd(case['per_1000_messages'])} per 1,000 "
            f"messages vs OpenAI {_usd(k['openai_per_1000'])}; a month at 1,000/day "
            f"{_usd(case['per_month']['1000'])} AWS + {_usd(k['openai_per_month']['1000'])} OpenAI"
        )
    return lines


# -- the document -------------------------------------------------------------------------


def render(r: dict[str, Any]) -> str:
    out: list[str] = []
    add = out.append
    m = r["machine"]
    add("# Benchmarks\n")
    add(
        "How fast and how cheap the bridge is, next to the alternatives. Everything below is "
        "written by `make bench` (`python -m bench`, code in [`bench/`](../bench/)); do not "
        "edit by hand, run it again. All servers are local stand-ins on 127.0.0.1, wired by "
        "`local.harness.Harness` as for `make local` and the tests: moto (in a child process) "
        "for SSM, DynamoDB and the SQS FIFO queue with its dead-letter queue, "
        "`local.event_source.QueuePoller` for Lambda's SQS event source mapping, "
        "`local.graph.MessengerSimulator` for the Send API and `local.model.FakeOpenAI` for "
        "the model; so these figures say what our code costs, not what AWS's network adds.\n"
    )
    add("## Machine and commands\n")
    add("| | |\n|---|---|")
    add(f"| CPU | {m['cpu']} ({m['arch']}), {m['cores']} cores |")
    add(f"| Memory | {m['memory_gib']} GiB |")
    add(f"| Kernel | Linux {m['kernel']} |")
    add(f"| Python | {m['python_impl']} {m['python']} (bench and cold-start children) |")
    commands = sorted(
        {
            r[p]["meta"]["command"]
            for p in ("cold", "warm", "package", "e2e", "powertools")
            if p in r
        }
    )
    add("| Measured with | " + ", ".join(f"`{c}`" for c in commands) + " |")
    add("")
    add(
        "```sh\nmake bench                      # = .venv/bin/python -m bench: everything, "
        "rewrites this file\n.venv/bin/python -m bench --quick           # fewer samples\n"
        ".venv/bin/python -m bench --only cold       # or warm, package, e2e, powertools, "
        "cost (comma-separate)\n```\n"
    )
    add(
        "A partial run (`--only`) keeps the other sections' last figures (from "
        "`.cache/bench/results.json`); each section says when it was measured and the load "
        "average (`os.getloadavg()`) around it. The machine has 2 cores: a load above ~1 "
        "means something else was running and the figures are noisier.\n"
    )
    _summary(r, add)
    if "cold" in r:
        _cold(r["cold"], add)
    if "warm" in r:
        _warm(r["warm"], add)
    if "package" in r:
        _package(r["package"], add)
    if "e2e" in r:
        _e2e(r["e2e"], add)
    if "cost" in r:
        _cost(r["cost"], r, add)
    if "powertools" in r:
        _powertools(r["powertools"], add)
    return "\n".join(out).rstrip() + "\n"


def _summary(r: dict[str, Any], add: Any) -> None:
    add("## Summary\n")
    add("| What | Figure | Aim |\n|---|---|---|")
    if "cold" in r:
        c, q = r["cold"]["variants"], r["cold"]["ratios"]
        add(
            f"| Cold start to 200, handler (as shipped) | "
            f"{_ms(c['handler']['to_200_ms']['median'], 0)} ms | |"
        )
        add(
            f"| … vs the floor (b), {_ms(c['floor']['to_200_ms']['median'], 0)} ms | "
            f"**{q['handler_over_floor']:.2f}{X}** "
            f"(CPU {q.get('cpu_handler_over_floor', 0):.2f}{X}) | ≤ {COLD_AIM_FLOOR}{X}: "
            f"{_met(q['handler_over_floor'] <= COLD_AIM_FLOOR)} |"
        )
        add(
            f"| … vs the naive design (c), {_ms(c['naive']['to_200_ms']['median'], 0)} ms | "
            f"**{q['naive_over_handler']:.2f}{X} faster** "
            f"(CPU {q.get('cpu_naive_over_handler', 0):.2f}{X}) | ≥ {COLD_AIM_NAIVE}{X}: "
            f"{_met(q['naive_over_handler'] >= COLD_AIM_NAIVE)} |"
        )
        if not r["cold"].get("archive_has_pyc", True):
            add(
                f"| … with bytecode in the archive (proposed, below) | "
                f"{_ms(c['handler_pyc']['to_200_ms']['median'], 0)} ms, "
                f"{q['handler_pyc_over_floor']:.2f}{X} the floor "
                f"(CPU {q.get('cpu_handler_pyc_over_floor', 0):.2f}{X}) | "
                f"\u2264 {COLD_AIM_FLOOR}{X}: "
                f"{_met(q['handler_pyc_over_floor'] <= COLD_AIM_FLOOR)} |"
            )
    if "warm" in r:
        w = r["warm"]
        add(
            f"| Warm webhook, signed POST to 200 (incl. one SQS SendMessageBatch over loopback) "
            f"| p50 {_ms(w['latency_ms']['median'], 2)} ms, p90 {_ms(w['latency_ms']['p90'], 2)} "
            f"ms, p99 {_ms(w['latency_ms']['p99'], 2)} ms | |"
        )
        add(
            f"| … CPU-only part (event, signature, parse, route, log) | "
            f"{_ms(w['cpu_us']['lambda_handler_no_hand_off']['median'])} µs | |"
        )
    if "package" in r:
        for arch, a in r["package"]["architectures"].items():
            add(
                f"| Lambda archive {arch} | {_mb(a['zipped_bytes'])} zipped, "
                f"{_mb(a['unzipped_bytes'])} unzipped, {a['files']:,} files; rebuild "
                f"{a['rebuild_s']['median']:.1f} s | < 50 MB / 250 MB |"
            )
    if "e2e" in r:
        e = r["e2e"]
        b, f = e["burst"], e["sequential"]["function_requests"]
        ok = b["exactly_one_reply_each"] and b.get("in_order_per_person", False)
        add(
            f"| End to end, {e['people']} people + a flood of {e['flood']} from one, at once | "
            f"{b['messages_per_s']:.0f} msg/s; typing_on p50 "
            f"{_ms(b['to_typing_on_ms']['median'], 0)} ms, p99 "
            f"{_ms(b['to_typing_on_ms']['p99'], 0)} ms; reply p50 "
            f"{_ms(b['to_reply_ms']['median'], 0)} ms, p99 {_ms(b['to_reply_ms']['p99'], 0)} ms "
            f"| one reply each, in order: {'yes' if ok else '**NO**'} |"
        )
        worst = max(v for v in (f["new_user"], f["returning_user"]) if v is not None)
        mapping = e["sequential"]["aws"]["mapping_per_message"]
        add(
            f"| AWS requests per answered message, the function's | "
            f"**{_n(f['returning_user'])}** (returning user), {_n(f['new_user'])} (new user); "
            f"+ {_n(mapping)} of the event source mapping's per batch | "
            f"≤ {e['aim_function_requests']} (the old design: {e['old_design_requests']}): "
            f"{_met(worst <= e['aim_function_requests'])} |"
        )
    if "cost" in r:
        k = r["cost"]
        for key, label in (
            ("model_0s_full_history", "measured worker"),
            ("model_2s_full_history", "model answering in 2 s"),
        ):
            case = k["cases"][key]
            add(
                f"| AWS cost per 1,000 messages ({label}) | {_usd(case['per_1000_messages'])} "
                f"(+ {_usd(k['fixed_per_month']['total'])}/month fixed) | |"
            )
        add(f"| OpenAI cost per 1,000 messages (gpt-4.1-mini) | {_usd(k['openai_per_1000'])} | |")
    if "powertools" in r:
        pt = r["powertools"]
        if pt.get("skipped"):
            add("| powertools' batch utility instead of `handler/batch.py` | not measured | |")
        else:
            theirs = pt["cases"]["powertools"]["import_ms"]["median"]
            ours = pt["cases"]["ours_after_bot"]["import_ms"]["median"]
            add(
                f"| aws-lambda-powertools {pt['version']} batch utility instead of "
                f"`handler/batch.py` | +{_ms(theirs, 0)} ms of imports after boto3 (ours: "
                f"{_ms(ours)} ms), +{_mb(pt['size']['with_pyc_bytes'])} in the archive | |"
            )
    add("")


def _spread(s: dict[str, float]) -> str:
    return f"{_ms(s['p25'])}{EN}{_ms(s['p75'])}"


def _cold(c: dict[str, Any], add: Any) -> None:
    v, q = c["variants"], c["ratios"]
    add("## 1. Cold start of the webhook path\n")
    add(_meta(c) + "\n")
    add(
        f"What the Lambda init pays before Facebook gets its 200. Each sample is a fresh "
        f"`python3.13 -I -S -B` process (no site, no environment leaking in, no bytecode "
        f"written) with the deployed function's environment, as "
        f"`local.harness.Harness.function_environment` gives it (`TABLE_NAME`, `QUEUE_URL` of "
        f"the FIFO queue, the `*_PARAMETER` names of the secrets in SSM, `AWS_ENDPOINT_URL*` "
        f"→ moto, fake credentials), that handles one signed webhook POST (a Function URL "
        f"event) and exits. {c['samples']} samples per variant after "
        f"{c['warmup_rounds']} discarded warm-up rounds, variants interleaved in shuffled "
        f"order so that changes in load hit all alike. Each sample's delivery has a message "
        f"id of its own (SQS would drop a repeat as a duplicate), and every hand-off reached "
        f"the queue: {c['handed_off']} messages in it for {c['expected_hand_offs']} "
        f"samples.\n"
    )
    add(
        "**Timing.** The parent reads `CLOCK_MONOTONIC` just before spawning; the child stamps "
        "the same clock on its first line, after its imports, and when the handler has "
        "returned the 200, and prints the stamps. *To 200* = spawn → 200 (the headline); "
        "*startup* = spawn → first line (interpreter); *init* = the module-level imports and "
        "set-up; *request* = the first request (settings, SSM GetParameters, signature, "
        "parse, one SQS SendMessageBatch); *exit* = spawn → process gone, which Lambda never "
        "pays.\n"
    )
    add(
        f"**Layout, as in Lambda.** The archive `{c['archive']}` built by `infra.packaging` "
        "for this CPU is extracted into a `task` folder, and boto3, botocore, s3transfer, "
        "jmespath, dateutil, six and urllib3 (links to this venv's compiled copies) into "
        "a `runtime` folder; both go first on `sys.path` like `/var/task` and "
        "`/var/runtime`. Lambda's `/var/task` is read-only, so Python cannot cache bytecode "
        "there. "
        + (
            "The archive ships its own `.pyc`, so *as shipped* and *with .pyc* (a copy "
            "compiled here) should be alike: a gap would mean the shipped bytecode is "
            "incomplete.\n"
            if c.get("archive_has_pyc")
            else "The archive ships no `.pyc`, so every cold start compiles the archive "
            "modules it imports; the rows *as shipped* do the same, the rows *with .pyc* use "
            "a copy compiled ahead (`compileall --invalidation-mode unchecked-hash`).\n"
        )
    )
    add("**The variants.**\n")
    add("- (a) `python -c pass`: the bare interpreter.")
    add(
        "- (b) **floor**: [`bench/children/floor.py`](../bench/children/floor.py): the same "
        "network calls as the real cold path, one SSM `GetParameters` for the four "
        "secrets and one SQS `SendMessageBatch` to the FIFO queue (each event with its "
        "sender as `MessageGroupId` and a hash of its id as `MessageDeduplicationId`), and "
        "the same checks (HMAC-SHA256, JSON parse), in as little code as boto3 allows, with "
        "only the runtime folder on the path (a function with nothing in its zip but "
        "itself). The gap between it and the handler is what our code and packaging cost."
    )
    add(
        "- **bridge handler**: [`bench/children/handler.py`](../bench/children/handler.py) "
        "imports `handler.app` and calls `lambda_handler` once."
    )
    add(
        "- (c) **naive**: [`bench/children/naive.py`](../bench/children/naive.py): the same "
        "handler, but at module level, as a one-file function would, it imports openai, "
        "requests, boto3 and the worker's modules (`batch`, `bot`, `claims`, `store`, "
        "`llm`, `messenger`), fetches the secrets and creates every client (SSM, SQS, "
        "DynamoDB, a requests session, the OpenAI client) and wires the hand-off and the "
        "bot.\n"
    )
    add(
        f"| Variant | To 200, median ms | p25{EN}p75 | min{EN}max | stdev | startup | init | "
        "request | exit | CPU to 200 |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, row in v.items():
        t = row.get("to_200_ms")
        if t is None:
            e = row["exit_ms"]
            add(
                f"| {row['label']} | {EN} | {EN} | {_ms(e['min'])}{EN}{_ms(e['max'])} (exit) | "
                f"{_ms(e['stdev'])} | | | | {_ms(e['median'])} | "
                f"{_ms(row['cpu_exit_ms']['median'])} (exit) |"
            )
            continue
        name = f"**{row['label']}**" if key == "handler" else row["label"]
        add(
            f"| {name} | **{_ms(t['median'])}** | {_spread(t)} | "
            f"{_ms(t['min'])}{EN}{_ms(t['max'])} | {_ms(t['stdev'])} | "
            f"{_ms(row['startup_ms']['median'])} | {_ms(row['init_ms']['median'])} | "
            f"{_ms(row['request_ms']['median'])} | {_ms(row['exit_ms']['median'])} | "
            f"{_ms(row['cpu_to_200_ms']['median'])} |"
        )
    add("")
    add(
        "*CPU to 200* is the child's own CPU time (`time.process_time()`, user + system) when "
        "the 200 is ready: unlike wall time, it hardly moves when other work shares the "
        "machine, so its ratios (in brackets below) check the wall-clock ones.\n"
    )
    add("**Ratios** (medians of *to 200*; CPU time in brackets):\n")
    add(
        f"- handler / floor: **{q['handler_over_floor']:.2f}{X}** "
        f"({q.get('cpu_handler_over_floor', 0):.2f}{X}) as shipped "
        f"({_signed(q['handler_minus_floor_ms'])} ms), {q['handler_pyc_over_floor']:.2f}{X} "
        f"({q.get('cpu_handler_pyc_over_floor', 0):.2f}{X}) with .pyc "
        f"({_signed(q['handler_pyc_minus_floor_ms'])} ms). Aim ≤ {COLD_AIM_FLOOR}{X}: "
        f"{_met(q['handler_over_floor'] <= COLD_AIM_FLOOR)}."
    )
    add(
        f"- naive / handler: **{q['naive_over_handler']:.2f}{X}** "
        f"({q.get('cpu_naive_over_handler', 0):.2f}{X}) as shipped, "
        f"{q['naive_pyc_over_handler_pyc']:.2f}{X} with .pyc on both. Aim ≥ {COLD_AIM_NAIVE}{X}: "
        f"{_met(q['naive_over_handler'] >= COLD_AIM_NAIVE)}."
    )
    add(
        f"- Above the bare interpreter: the floor adds {_ms(q['floor_above_bare_ms'], 0)} ms, "
        f"the handler {_ms(q['handler_above_bare_ms'], 0)} ms "
        f"({q['handler_above_bare_over_floor_above_bare']:.2f}{X}).\n"
    )
    add(
        "Reference points from Lambda itself (project notes): a hello-world Python 3.13 zip "
        "initialises in ~78 ms on arm64; importing boto3 and creating one client adds "
        "~300 ms; `import openai` costs 0.5\u20130.8 s. Here the floor, which imports boto3, "
        "creates two clients (SSM, SQS) and makes two calls, takes "
        f"{_ms(v['floor']['to_200_ms']['median'], 0)} ms, so expect Lambda's absolute "
        "figures to be higher than these (a 512 MB function gets a fraction of a vCPU); the "
        "work is the same CPU-bound Python, so the ratios carry over.\n"
    )
    _cold_findings(c, add)
    profiles = c.get("import_profiles", {})
    if profiles:
        add(
            "**Where the import time goes** (`-X importtime`, median of "
            f"{profiles[next(iter(profiles))].get('runs', 1)} runs each, self time by "
            "top-level package, ms):\n"
        )
        keys = [k for k in ("floor", "handler", "handler_pyc", "naive") if k in profiles]
        packages: list[str] = []
        for k in keys:
            for name in profiles[k]["by_package_ms"]:
                if name not in packages:
                    packages.append(name)
        add("| Package | " + " | ".join(v[k]["label"] for k in keys) + " |")
        add("|---|" + "---:|" * len(keys))
        shown = sorted(
            packages, key=lambda name: -max(profiles[k]["by_package_ms"].get(name, 0) for k in keys)
        )[:16]
        for name in shown:
            cells = [_ms(profiles[k]["by_package_ms"].get(name, 0.0)) for k in keys]
            add(f"| `{name}` | " + " | ".join(cells) + " |")
        add(
            "| **all imports** | "
            + " | ".join(
                f"**{_ms(profiles[k]['total_ms'])}** ({profiles[k]['modules']} modules)"
                for k in keys
            )
            + " |"
        )
        add("")


def _signed(value: float, digits: int = 0) -> str:
    sign = "+" if value >= 0 else "\u2212"
    return f"{sign}{abs(value):,.{digits}f}"


def _cold_findings(c: dict[str, Any], add: Any) -> None:
    v, q, profiles = c["variants"], c["ratios"], c.get("import_profiles", {})
    shipped_pyc = c.get("archive_has_pyc", False)

    def med(key: str, field: str = "to_200_ms") -> float:
        return v[key][field]["median"]

    own = profiles.get("handler_pyc", {}).get("by_package_ms", {}).get("handler")
    add("### Findings\n")
    add(
        f"The handler's gap to the floor, {_signed(q['handler_minus_floor_ms'])} ms, is "
        f"{_signed(med('handler', 'init_ms') - med('floor', 'init_ms'))} ms at init (imports) "
        f"and {_signed(med('handler', 'request_ms') - med('floor', 'request_ms'))} ms in the "
        f"first request (medians, so the parts need not add up). Our own modules take "
        f"{_ms(own)} ms to import once compiled, and the webhook imports none of the "
        f"worker's: `handler.app` loads the queue side (`batch`, `bot`, `claims`, `store`, "
        f"openai, requests) only on the first batch from the queue."
        + (
            " The archive ships its bytecode, and the clients share one boto3 Session "
            "(`handler/clients.py`).\n"
            if shipped_pyc
            else "\n"
        )
    )
    if not shipped_pyc:
        add(
            f"**No bytecode in the archive: {_signed(med('handler') - med('handler_pyc'))}"
            f" ms** (*as shipped* minus *with .pyc*): every cold start compiles the modules it "
            f"imports from the archive; the worker pays more on its first batch (openai and "
            f"pydantic: the gap between the two naive rows, "
            f"{_signed(med('naive') - med('naive_pyc'))} ms). Proposed, outside `bench/`: "
            "have `infra/packaging.py` ship `.pyc` compiled with Python 3.13 "
            "(`PycInvalidationMode.UNCHECKED_HASH`, so the zip stays reproducible).\n"
        )


def _warm(w: dict[str, Any], add: Any) -> None:
    lat, send, cpu = w["latency_ms"], w["send_only_ms"], w["cpu_us"]
    add("## 2. Warm webhook latency\n")
    add(_meta(w) + "\n")
    add(
        f"One process, the handler already initialised (secrets fetched, clients created, "
        f"connections open), {w['requests']:,} signed POSTs of a one-message delivery "
        f"({w['body_bytes']} bytes), each with a message id of its own, through "
        f"`handler.app.lambda_handler`, each timed with `perf_counter_ns`. The hand-off is "
        f"one call over loopback: SQS `SendMessageBatch` to the FIFO queue in moto (a child "
        f"process, wired by `local.harness.Harness` with no poller: the queue only fills, and "
        f"is emptied between rounds, untimed); secrets are cached for the container's life. "
        f"Log lines go to a counting sink.\n"
    )
    add("| | p50 | p90 | p99 | max | mean |\n|---|---:|---:|---:|---:|---:|")
    add(
        f"| Signed POST → 200, ms | **{_ms(lat['median'], 2)}** | {_ms(lat['p90'], 2)} | "
        f"**{_ms(lat['p99'], 2)}** | {_ms(lat['max'], 2)} | {_ms(lat['mean'], 2)} |"
    )
    add(
        f"| The SendMessageBatch alone (boto3 → moto), ms | {_ms(send['median'], 2)} | "
        f"{_ms(send['p90'], 2)} | {_ms(send['p99'], 2)} | {_ms(send['max'], 2)} | "
        f"{_ms(send['mean'], 2)} |"
    )
    add("")
    add(
        "Nearly all of the warm latency is the one round trip (botocore signing and sending, "
        "moto answering); our part is the CPU-only work below. Per call, median of 7 "
        "`timeit` runs (best in brackets), µs:\n"
    )
    add("| Step | µs |\n|---|---:|")
    labels = {
        "http_request": "Function URL event → request (`events.http_request`, base64)",
        "signature": "`X-Hub-Signature-256` check (`signature.is_valid`)",
        "parse_webhook": "Body → events (`events.parse_webhook`)",
        "handoff_entries": "Body → SendMessageBatch entries (`handoff.entries`, with the parse)",
        "route_no_hand_off": "`webhook.route`: all the above but the event, + log line",
        "lambda_handler_no_hand_off": "**`lambda_handler` whole, hand-off stubbed**",
    }
    for key, label in labels.items():
        if key in cpu:
            add(f"| {label} | {_ms(cpu[key]['median'])} ({_ms(cpu[key]['best'])}) |")
    add(
        f"\nLog output of the webhook path: {w['log_bytes_per_request']:.0f} bytes per "
        f"request (one `webhook.accepted` line).\n"
    )


def _package(p: dict[str, Any], add: Any) -> None:
    add("## 3. Package\n")
    add(_meta(p) + "\n")
    add(
        "Built with the documented command, `python -m infra.packaging --architecture ARCH "
        "--out PATH` (a child process, timed spawn → exit). Dependencies come from "
        "`handler/requirements.txt` as manylinux wheels for the target CPU, cached under "
        "`.cache/lambda-deps/`; boto3 & co. are left out (the runtime has them). *Rebuild* is "
        f"the median of {p['rebuilds']} builds with that cache warm; *first build* is the "
        "first of the run (it installs from PyPI only when the cache was empty).\n"
    )
    add(
        "| Architecture | Zipped | Unzipped | Files | Of which `handler/` | Warm rebuild, s "
        "| First build, s |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|")
    for arch, a in p["architectures"].items():
        first = a["first_build"]
        note = "" if first["deps_cached_before"] else " (cache was empty: pip install)"
        add(
            f"| {arch} | **{_mb(a['zipped_bytes'])}** ({a['zipped_bytes']:,} B) | "
            f"{_mb(a['unzipped_bytes'])} | {a['files']:,} | {a['handler_files']} files, "
            f"{a['handler_bytes'] / 1024:.0f} KB | **{a['rebuild_s']['median']:.2f}** "
            f"(min {a['rebuild_s']['min']:.2f}) | {first['seconds']:.2f}{note} |"
        )
    add("")
    limits = p["limits"]
    add(
        f"Lambda's limits are {_mb(limits['zipped'])} zipped (direct upload) and "
        f"{_mb(limits['unzipped'])} unzipped.\n"
    )
    arch, a = next(iter(p["architectures"].items()))
    add(f"Largest parts of the {arch} archive, unzipped:\n")
    add("| Top-level entry | Unzipped |\n|---|---:|")
    for name, size in a["largest"].items():
        add(f"| `{name}` | {_mb(size)} |")
    add("")
    b = p.get("bytecode_projection")
    if b:
        zipped = p["architectures"][b["architecture"]]["zipped_bytes"]
        add(
            f"**With bytecode** (the cold-start fix): compiling the {b['architecture']} "
            f"archive's sources gives {b['pyc_files']:,} `.pyc` files, "
            f"{_mb(b['pyc_unzipped_bytes'])} unzipped and {_mb(b['pyc_zipped_bytes'])} "
            f"deflated, so the zip would grow from {_mb(zipped)} to about "
            f"{_mb(zipped + b['pyc_zipped_bytes'])}: still far below the limits. Compiling "
            "only what the webhook path imports (`handler/`, `urllib3`, `certifi`) would "
            "add well under 1 MB but leave the worker's ~0.5 s of compiling in place.\n"
        )


SERVICES = {"sqs": "SQS", "dynamodb": "DynamoDB", "ssm": "SSM"}
# What each request of the function is for, as the code makes them (handler/handoff.py,
# claims.py, store.py, bot.py); the counts beside them are measured.
PURPOSES = {
    "sqs SendMessageBatch": "webhook: the delivery's events into the FIFO queue",
    "dynamodb UpdateItem": "worker: the claim on the event's item",
    "dynamodb BatchGetItem": "worker: profile, conversation and today's count, in one read",
    "dynamodb PutItem": "worker: a new user's profile",
    "dynamodb TransactWriteItems": "worker: the answer recorded with the count; then the "
    "finish (event done + conversation + profile touch)",
    "sqs ChangeMessageVisibilityBatch": "worker: backing a failed message off",
    "ssm GetParameters": "the secrets, once per container",
    "sqs ReceiveMessage": "the mapping: a batch for the function",
    "sqs DeleteMessageBatch": "the mapping: the batch's answered messages",
    "sqs ReceiveMessage (empty)": "the stand-in's poll of an empty queue (every 20 ms)",
    "sqs GetQueueAttributes": "the benchmark waiting for the queue to empty",
}


def _in_order(names: Any) -> list[str]:
    """Request names as ``PURPOSES`` lists them (webhook, then worker), the rest after."""
    known = list(PURPOSES)
    return sorted(names, key=lambda n: (known.index(n) if n in known else len(known), n))


def _request_name(name: str) -> str:
    service, _, operation = name.partition(" ")
    operation, _, note = operation.partition(" ")
    return f"{SERVICES.get(service, service)} `{operation}`" + (f" {note}" if note else "")


def _retries(*runs: dict[str, Any]) -> str:
    """botocore's retries in these runs, by role and request."""
    retried: dict[str, int] = {}
    for run in runs:
        for name, count in (run.get("retried_calls") or {}).items():
            retried[name] = retried.get(name, 0) + count
    total = sum(retried.values())
    if not total:
        return "no retries."
    which = ", ".join(f"{name} {X}{count}" for name, count in sorted(retried.items()))
    return f"{total} {'retry' if total == 1 else 'retries'} by botocore ({which})."


def _e2e(e: dict[str, Any], add: Any) -> None:
    b, s = e["burst"], e["sequential"]
    add("## 4. End to end\n")
    add(_meta(e) + "\n")
    add(
        f"The whole local stack, wired by `local.harness.Harness`, every hop real HTTP on "
        f"loopback: the webhook (`lambda_handler`, called by one thread per person) hands "
        f"each event to the SQS FIFO queue in moto (a child process; one message group per "
        f"person); `local.event_source.QueuePoller`, standing in for Lambda's event source "
        f"mapping, receives batches of up to {e['batch_size']} and runs at most "
        f"{e['max_concurrency']} invocations at once (the stack's defaults), calling "
        f"`lambda_handler` with each batch in threads of this process, and deletes what the "
        f"function did not report failed; DynamoDB and SSM are in moto too, the Send API in "
        f"the Messenger simulator and the model in `FakeOpenAI` answering at once. "
        f"{e['people']} people send one message each while one more person sends "
        f"{e['flood']} back to back, all released together by a barrier. Times are from just "
        f"before the webhook call to the simulator's receipt (`at`, `time.monotonic()`) of "
        f"that message's `typing_on` and of its reply; the `typing_on` is tied to its message "
        f"through the event being handled.\n"
    )
    ok = b["exactly_one_reply_each"] and b["all_200"] and b["in_order_per_person"]
    add(
        f"**Exactly one reply per message, each person's in the order sent: "
        f"{'yes' if ok else 'NO'}**: {b['replied']} of {b['messages']} messages answered, "
        f"{b['duplicates']} duplicates, {b['stray_texts']} other texts, in order for every "
        f"person: {b['in_order_per_person']}, every webhook answered 200: {b['all_200']}; "
        f"{b['invocations']} worker invocations ({b['records_per_invocation']['mean']:.1f} "
        f"messages per batch on average, at most {b['most_invocations_at_once']} at once), "
        f"{b['failed_invocations']} failed, {b['partial_invocations']} with failed records; "
        f"{e.get('dead_letters', 0)} messages on the dead-letter queue.\n"
    )
    add(f"| Burst of {b['messages']} messages | p50 | p90 | p99 | max |")
    add("|---|---:|---:|---:|---:|")
    for key, label in (
        ("webhook_ms", "Webhook POST → 200, ms"),
        ("to_typing_on_ms", "Webhook → `typing_on`, ms"),
        ("to_reply_ms", "Webhook → reply, ms"),
        ("crowd_to_reply_ms", f"… the {e['people']} people's one message each"),
        ("flood_to_reply_ms", f"… the flood's {e['flood']}, answered one after another"),
        ("worker_ms", "Worker invocation (a batch), ms"),
    ):
        x = b[key]
        add(
            f"| {label} | {_ms(x['median'])} | {_ms(x['p90'])} | {_ms(x['p99'])} | "
            f"{_ms(x['max'])} |"
        )
    add("")
    burst_aws = b["aws"]
    add(
        f"**Throughput: {b['messages_per_s']:.1f} messages per second** end to end "
        f"({b['messages']} messages from the first POST to the last reply in "
        f"{b['wall_s']:.2f} s); the webhooks alone were answered at "
        f"{b['webhooks_per_s']:.0f} per second. The flood's {e['flood']} messages were "
        f"posted within {b['flood_posted_s']:.2f} s and answered one after another: the "
        f"first reply came {_ms(b['flood_first_reply_ms'], 0)} ms after the flood's first "
        f"POST and the last {_ms(b['flood_last_reply_ms'], 0)} ms after it, while the other "
        f"people were answered in parallel. This is what one Python process (one GIL, "
        f"running the webhooks, every worker, the poller and two of the servers) and one "
        f"moto process on 2 cores can do: moto served "
        f"{burst_aws.get('moto_requests_per_s', 0):.0f} requests a second meanwhile "
        f"({burst_aws.get('moto_dynamodb_per_s', 0):.0f} of them DynamoDB's, and the "
        f"poller's empty receives among the rest). Lambda runs "
        f"each invocation in its own environment, so in production the bridge's throughput "
        f"is bounded by the mapping's concurrency, Send API rate limits and the model, not "
        f"by this figure. Under this load the times above are queueing: the uncontended path "
        f"is below.\n"
    )
    f = e["first_message"]
    add(
        f"**First message in a fresh process**: worker {_ms(f['worker_ms'], 0)} ms, reply "
        f"after {_ms(f['reply_ms'], 0)} ms: the worker imports openai, requests and its "
        f"modules on its first batch (compiled `.pyc`, as the archive ships them), and the "
        f"webhook fetches the secrets (one SSM `GetParameters`).\n"
    )
    add(
        f"**One message at a time** ({s['messages']} messages from {s['users']} users, each "
        f"waited for, so every batch holds one message; these durations feed the cost "
        f"model):\n"
    )
    add("| Sequential | p50 | p90 | max |\n|---|---:|---:|---:|")
    for key, label in (
        ("webhook_ms", "Webhook POST → 200, ms"),
        ("worker_ms", "Worker invocation, ms"),
        ("reply_ms", "Webhook → reply, ms"),
    ):
        x = s[key]
        add(f"| {label} | {_ms(x['median'])} | {_ms(x['p90'])} | {_ms(x['max'])} |")
    add("")
    _requests(e, add)


def _requests(e: dict[str, Any], add: Any) -> None:
    s, b = e["sequential"], e["burst"]
    seq, burst = s["aws"], b["aws"]
    f = s["function_requests"]
    add("### AWS requests per answered message\n")
    add(
        "Counted on the wire by botocore event hooks on every client of this process "
        "([`bench/wire.py`](../bench/wire.py)): each HTTP request that left, by service and "
        "operation, divided by the messages answered. The function's requests are those of "
        "`handler.clients`' clients; the poller's own SQS requests are, in AWS, the event "
        "source mapping's (billed to the account, made by Lambda, not by the function), "
        "shown apart. *One at a time* is the sequential run (one message per batch, 1 in "
        f"{max(1, round(s['messages'] / s['users']))} from a new user); *burst* the run "
        "above (batches of several messages, most people new).\n"
    )
    add("| Request | What for | One at a time | Burst |\n|---|---|---:|---:|")
    for role, title in (("function", "the function's"), ("mapping", "the mapping's")):
        for name in _in_order(set(seq[role]) | set(burst[role])):
            if name.endswith("(empty)"):
                continue
            add(
                f"| {_request_name(name)} | {PURPOSES.get(name, '')} | "
                f"{seq[role].get(name, 0):.2f} | {burst[role].get(name, 0):.2f} |"
            )
        key = f"{role}_per_message"
        add(f"| **all {title}** | | **{seq[key]:.2f}** | **{burst[key]:.2f}** |")
    empty = "sqs ReceiveMessage (empty)"
    add(
        f"| {_request_name(empty)} | {PURPOSES[empty]} | "
        f"{seq['mapping'].get(empty, 0):.2f} | {burst['mapping'].get(empty, 0):.2f} |"
    )
    add("")
    worst = max(v for v in (f["new_user"], f["returning_user"]) if v is not None)
    ops = f["returning_user_operations"]
    returning = ", ".join(f"{_request_name(n)} {X}{_n(ops[n])}" for n in _in_order(ops))
    extra = {
        n: v - f["returning_user_operations"].get(n, 0)
        for n, v in f["new_user_operations"].items()
        if v - f["returning_user_operations"].get(n, 0) > 0.005
    }
    add(
        f"**The function makes {_n(f['returning_user'])} AWS requests per answered message "
        f"for a returning user** ({returning}) **and {_n(f['new_user'])} for a new one** ("
        + (", ".join(f"+ {_request_name(n)} {X}{_n(v)}" for n, v in extra.items()) or "none")
        + f"). Aim ≤ {e['aim_function_requests']}: {_met(worst <= e['aim_function_requests'])}"
        f"; the design before the queue made {e['old_design_requests']} DynamoDB requests "
        f"per message, and a lambda:Invoke. A long answer adds one `UpdateItem` per bubble "
        f"after the first (the bubbles sent so far), and a failed message one "
        f"`ChangeMessageVisibilityBatch` for its batch; neither happened here "
        f"({dict(seq['failed']) or 'no request failed'}). "
        f"The mapping adds one `ReceiveMessage` and one `DeleteMessageBatch` per batch, "
        f"{seq['mapping_per_message']:.1f} per message at one message a batch and "
        f"{burst['mapping_per_message']:.2f} in the burst. "
        f"{seq['wire_requests'] + burst['wire_requests']:,} HTTP requests went out for "
        f"{seq['calls'] + burst['calls']:,} calls: "
        + _retries(seq, burst)
        + " The empty receives are the stand-in's: it polls every 20 ms without waiting; "
        "Lambda's pollers long-poll (20 s), about 0.6 million requests a month whatever the "
        "traffic, priced in section 5 as a fixed cost.\n"
    )
    d, per = s["dynamodb"], s["dynamodb_per_message"]
    n = s["messages"]
    wru = ", ".join(f"{kind} {units / n:.1f}" for kind, units in sorted(d["wru_by_kind"].items()))
    rru = ", ".join(f"{kind} {units / n:.1f}" for kind, units in sorted(d["rru_by_kind"].items()))
    add(
        f"**DynamoDB: {per['wru']:.1f} write and {per['rru']:.1f} read request units per "
        f"message** (writes by item: {wru}; reads: {rru}), by DynamoDB's on-demand rules "
        f"applied to each request and the items' sizes in the table "
        f"([`bench/wire.py:request_units`](../bench/wire.py)): an item written in a "
        f"`TransactWriteItems` costs 2 units per KB, not 1; the profile's write also "
        f"rewrites its entry in the `users_by_activity` index (*index*; a delete and a put "
        f"when `active_at` moves). Seen by the client, a DynamoDB request took "
        f"{_ms(d['call_ms']['median'])} ms at the median, "
        f"{_ms(d['total_call_ms'] / n, 0)} ms per message of a "
        f"{_ms(s['worker_ms']['median'], 0)} ms worker: that time is moto's (a Python server "
        f"parsing every request); DynamoDB in the same region answers such small items in a "
        f"few ms.\n"
    )


def _cost(k: dict[str, Any], r: dict[str, Any], add: Any) -> None:
    p, i = k["prices"], k["inputs"]
    add("## 5. Cost\n")
    meta = k.get("meta", {})
    add(
        f"_Computed {meta.get('date', '?')} from the end-to-end figures of "
        f"{meta.get('from_e2e_of', '?')}._\n"
    )
    add(
        f"Prices, as of {p['as_of']}: Lambda ${p['lambda_request'] * 1e6:.2f} per million requests "
        f"and ${p['lambda_arm64_gb_second']:.10f} per GB-second on arm64; SQS FIFO "
        f"${p['sqs_fifo_request'] * 1e6:.2f} per million requests; DynamoDB on demand "
        f"${p['dynamodb_write_unit'] * 1e6:.3f} per million write request units and "
        f"${p['dynamodb_read_unit'] * 1e6:.3f} per million read request units; CloudWatch Logs "
        f"${p['logs_ingested_gb']:.2f} per GB ingested; the KMS key ${p['kms_key_month']:.0f} "
        f"a month; SSM standard parameters free. OpenAI gpt-4.1-mini: "
        f"${p['openai_input_token'] * 1e6:.2f} per million input tokens and "
        f"${p['openai_output_token'] * 1e6:.2f} per million output tokens (published prices, "
        f"2025). No free tier is subtracted (Lambda's 1M requests and 400,000 GB-s and SQS's "
        f"1M requests a month would cover all of the below); a month is {k['days']} days.\n"
    )
    add("**Per message, what was measured or counted:**\n")
    per_batch = i.get("burst_records_per_invocation")
    add(
        f"- Lambda: the webhook's invocation and the worker's, one per batch from the queue: "
        f"{i['worker_invocations_per_message']:.2f} per message when each message is alone "
        f"in its batch (a trickle, as measured one at a time; the burst averaged "
        f"{per_batch or 0:.1f} messages a batch, which divides the worker's request charge, "
        f"not its duration), {k['memory_mb']} MB (the stack's default), billed by the "
        f"started millisecond: webhook {_ms(i['webhook_ms'], 2)} ms → "
        f"{i['billed_webhook_ms']} ms (warm p50), worker {_ms(i['worker_ms'], 1)} ms → "
        f"{i['billed_worker_ms']} ms (sequential p50, model answering at once). In production "
        f"the worker waits for the model (typically 2{EN}5 s) and Lambda bills that wait: the "
        f"rows with a model time add it."
    )
    ops = ", ".join(
        f"{_request_name(name)} {X}{n:.2f}" for name, n in i["sqs_operations_per_message"].items()
    )
    add(
        f"- SQS FIFO: **{i['sqs_requests_per_message']:.1f} requests per message** as counted "
        f"({ops}): the webhook's one `SendMessageBatch` per delivery and the mapping's "
        f"`ReceiveMessage` and `DeleteMessageBatch` per batch (each request up to 64 KB, "
        f"far above one event). `ChangeMessageVisibilityBatch` only when a message fails "
        f"(one per failed batch, plus its next receive and delete). The mapping's long polls "
        f"of the empty queue, ~{i['idle_poll_requests_per_month'] / 1e6:.1f} million requests "
        f"a month whatever the traffic, are a fixed cost below."
    )
    dm, dh = i["dynamodb_measured"], i["dynamodb_full_history"]
    t = i["typical_exchange"]
    typical_wru = ", ".join(
        f"{kind} {units:.1f}"
        for kind, units in sorted(i["dynamodb_typical_by_kind"]["wru"].items())
    )
    add(
        f"- DynamoDB: {dm['requests']:.1f} requests per message, **{dm['wru']:.1f} write and "
        f"{dm['rru']:.1f} read request units** as counted in the run (section 4: the claim, "
        f"one read of profile, conversation and count, the answer recorded with the count "
        f"and the finish in two transactions at twice the units, the profile's index entry; "
        f"the rules are in `bench/wire.py:request_units`), where questions and answers are a "
        f"few words. The same requests for typical 300-token questions and answers weigh "
        f"more: the HISTORY item reaches {t['history_bytes']:,} bytes ({t['turns']} turns "
        f"within `HISTORY_MAX_CHARS`), read once and written once in a transaction, and the "
        f"reply recorded on the event's item {t['reply_bytes']:,} bytes (the answer twice, as "
        f"bubbles and as the exchange to remember, and the question), which both "
        f"transactions that write the event's item pay for: **{dh['wru']:.1f} WRU and "
        f"{dh['rru']:.1f} RRU** (writes by item: {typical_wru}). These are the *full "
        f"history* rows."
    )
    add(
        f"- Logs: {i['handler_log_bytes_per_message']:.0f} bytes of the handler's JSON lines "
        f"per message (measured), plus Lambda's `platform.start` and `platform.report` records "
        f"per invocation (JSON log format) and 26 bytes of CloudWatch overhead per event: "
        f"**{i['log_bytes_per_message']:,.0f} bytes per message**."
    )
    fixed = k["fixed_per_month"]
    add(
        f"- Fixed, a month: the KMS key {_usd(fixed['kms_key'])}; the keep-warm ping every "
        f"20 minutes ({i['keep_warm_pings_per_month']:,} invocations, "
        f"{_ms(i['keep_warm_ms'], 3)} ms each, {i['keep_warm_log_bytes']:.0f} log bytes) "
        f"{_usd(fixed['keep_warm'])}; the mapping's long polls of the idle queue "
        f"{_usd(fixed.get('sqs_idle_polling', 0))} (inside SQS's free million a month): "
        f"{_usd(fixed['total'])} together."
    )
    add(
        f"- OpenAI, for a typical exchange of 300 input tokens (question with history) and 300 "
        f"output tokens: **{_usd(k['openai_per_message'])} per message**."
    )
    add(
        "- Left out as next to nothing: the Function URL (no charge of its own), the "
        "EventBridge schedule (scheduled rules are free), the dead-letter queue (used only "
        "when a message's receives run out), SQS's managed encryption (free), DynamoDB "
        "storage (small items, most with a TTL), and the KMS decrypts of the secrets' one "
        "`GetParameters` per cold start.\n"
    )
    add("| Case | Lambda | SQS | DynamoDB | Logs | **AWS per 1,000 msgs** | OpenAI per 1,000 |")
    add("|---|---:|---:|---:|---:|---:|---:|")
    for _key, case in k["cases"].items():
        u = case["per_message"]
        history = "full history" if case["history"] == "full_history" else "short history"
        add(
            f"| model {case['model_latency_s']:g} s, {history} | "
            f"{_usd((u['lambda_requests'] + u['lambda_compute']) * 1000)} | "
            f"{_usd(u.get('sqs', 0) * 1000)} | "
            f"{_usd(u['dynamodb'] * 1000)} | {_usd(u['logs'] * 1000)} | "
            f"**{_usd(case['per_1000_messages'])}** | {_usd(k['openai_per_1000'])} |"
        )
    add("")
    volumes = list(k["openai_per_month"])
    add("A month, all in (fixed costs included):\n")
    add("| Messages a day | " + " | ".join(f"{int(v):,}" for v in volumes) + " |")
    add("|---|" + "---:|" * len(volumes))
    for key, label in (
        ("model_0s_full_history", "AWS, model answering at once"),
        ("model_2s_full_history", "AWS, model 2 s"),
        ("model_5s_full_history", "AWS, model 5 s"),
    ):
        case = k["cases"][key]
        add(f"| {label} | " + " | ".join(_usd(case["per_month"][v]) for v in volumes) + " |")
    add(
        "| OpenAI gpt-4.1-mini | "
        + " | ".join(_usd(k["openai_per_month"][v]) for v in volumes)
        + " |"
    )
    add("")
    worst = k["cases"]["model_5s_full_history"]["per_1000_messages"]
    webhook_gb_s = i["billed_webhook_ms"] / 1000 * k["memory_mb"] / 1024
    webhook_per_1000 = 1000 * (
        p["lambda_request"] + webhook_gb_s * p["lambda_arm64_gb_second"] + p["sqs_fifo_request"]
    )
    two = k["cases"]["model_2s_full_history"]["per_message"]["total"]
    break_even = k["fixed_per_month"]["total"] / two / k["days"]
    closing = (
        f"So the model is the bill: even with a 5-second model the AWS side is "
        f"{worst / k['openai_per_1000'] * 100:.0f}% of the OpenAI side per message, and up to "
        f"about {break_even:,.0f} messages a day (2 s model) the fixed costs (mostly the $1 "
        f"KMS key) are most of the AWS bill. Most of AWS's variable cost is Lambda waiting "
        f"for the model; the webhook path itself (its invocation and its SendMessageBatch) "
        f"costs {_usd(webhook_per_1000)} per 1,000 messages."
    )
    if k.get("init_per_cold_start") and "cold" in r:
        closing += (
            f" Since August 2025 Lambda also bills the init phase: even at three times the "
            f"cold start measured here "
            f"({_ms(r['cold']['variants']['handler']['to_200_ms']['median'], 0)} ms), that is "
            f"about "
            f"{_usd(k['init_per_cold_start'] * 3)} per cold start, negligible even at "
            f"thousands a month."
        )
    add(closing)
    add("")


def _powertools(pt: dict[str, Any], add: Any) -> None:
    add("## 6. powertools\n")
    if pt.get("skipped"):
        add(
            "**Not measured**: aws-lambda-powertools could not be installed "
            f"(`{pt['skipped']}`). Run `make bench` (or `python -m bench --only powertools`) "
            "where the package index is reachable.\n"
        )
        return
    add(_meta(pt) + "\n")
    cases, size = pt["cases"], pt["size"]
    add(
        f"aws-lambda-powertools {pt['version']} has `SqsFifoPartialProcessor`, the FIFO half "
        f"of what [`handler/batch.py`](../handler/batch.py) does. What taking it would cost "
        f"the worker: each sample a fresh `python3.13 -I -S -B` process with the package "
        f"(`pip install --no-deps --target .cache/bench/powertools`, with the `.pyc` pip "
        f"compiles), the archive's `task` folder and the runtime's boto3 on the path, the "
        f"modules *after* imported untimed, then the one timed; median of {pt['runs']} "
        f"samples, interleaved. The webhook never imports either: `handler.app` loads the "
        f"batch side on the first batch from the queue.\n"
    )
    add(f"| Import | Median ms | p25{EN}p75 | Modules it adds |\n|---|---:|---:|---:|")
    for case in cases.values():
        t = case["import_ms"]
        add(f"| {case['label']} | **{_ms(t['median'])}** | {_spread(t)} | {case['modules']} |")
    add("")
    theirs = cases["powertools_after_bot"]["import_ms"]["median"]
    ours = cases["ours_after_bot"]["import_ms"]["median"]
    add(
        f"Its size: {size['files']:,} files, {_mb(size['source_bytes'])} of sources and "
        f"{_mb(size['with_pyc_bytes'])} with their bytecode (as our archive ships it), "
        f"{_mb(size['zipped_bytes'])} deflated; `handler/batch.py` with its bytecode is "
        f"{pt['ours_bytes'] / 1024:.0f} KB. So the utility would add about "
        f"{_ms(theirs - ours, 0)} ms to every worker cold start and "
        f"{_mb(size['with_pyc_bytes'])} to the archive (its own dependency, "
        f"`typing_extensions`, the archive has already), for group semantics that "
        f"`handler/batch.py` has in ~100 lines with the backoff and the people in parallel "
        f"besides.\n"
    )
