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
        seconds = k["headline_model_s"]
        case = k["cases"][f"model_{seconds:g}s_full_history"]
        lines.append(
            f"  cost ({seconds:g} s model, full history): AWS {_usd(case['per_1000_messages'])} "
            f"per 1,000 messages + {_usd(k['fixed_per_month']['total'])}/month fixed vs "
            f"{_model(k)} {_usd(k['openai_per_1000'])}; a month at 1,000/day "
            f"{_usd(case['per_month']['1000'])} AWS + {_usd(k['openai_per_month']['1000'])} OpenAI"
        )
    return lines


def _model(k: dict[str, Any]) -> str:
    """The priced model as the page names it: its name and reasoning effort."""
    o = k["openai"]
    return f"{o['model']} at reasoning effort {o['reasoning_effort']}"


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
            f"| … CPU-only part (event, signature, parse, route, log and metric lines) | "
            f"{_ms(w['cpu_us']['lambda_handler_no_hand_off']['median'])} µs | |"
        )
    if "package" in r:
        for arch, a in r["package"]["architectures"].items():
            add(
                f"| Lambda archive {arch} | {_mb(a['zipped_bytes'])} zipped, "
                f"{_mb(a['unzipped_bytes'])} unzipped, {a['files']:,} files; rebuild "
                f"{a['rebuild_s']['median']:.1f} s | < 50 MB / 250 MB |"
            )
        same = r["package"].get("identity")
        if same:
            add(
                f"| … built by Python {same['fresh_copy']['python']} in a fresh copy vs "
                f"{same['this_build']['python']} here | "
                f"{'byte-identical' if same['identical'] else '**different**'} | identical |"
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
        seconds = k["headline_model_s"]
        for key, label in (
            ("model_0s_full_history", "measured worker"),
            (f"model_{seconds:g}s_full_history", f"model answering in {seconds:g} s"),
        ):
            case = k["cases"][key]
            add(
                f"| AWS cost per 1,000 messages ({label}) | {_usd(case['per_1000_messages'])} "
                f"(+ fixed, below) | |"
            )
        o = k["openai"]["rows"]
        add(
            f"| OpenAI cost per 1,000 messages ({_model(k)}; a typical text exchange) | "
            f"**{_usd(k['openai_per_1000'])}**; voice messages {_usd(o['voice']['per_1000'])}, "
            f"photo questions {_usd(o['photo']['per_1000'])} | |"
        )
        fixed, ops = k["fixed_per_month"], k["operations"]
        add(
            f"| AWS fixed per month (KMS key, {ops['metrics_usual']} custom metrics, "
            f"{ops['alarms']} alarms, the dashboard, keep-warm) | "
            f"{_usd(fixed['total'])} ({_usd(fixed['total'] - fixed['dashboard'])} within the "
            f"account's {k['prices']['free_dashboards']} free dashboards) | |"
        )
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
        f"→ moto, fake credentials, and `METRICS_STACK`, so that the handler writes its "
        f"metric line as in AWS), that handles one signed webhook POST (a Function URL "
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
        "parse, one SQS SendMessageBatch, the log line and the metric line); *exit* = spawn → "
        "process gone, which Lambda never pays.\n"
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
        "itself), and no log or metric line. The gap between it and the handler is what our "
        "code and packaging cost."
    )
    handler_row = v["handler"]
    metric_note = (
        f": it writes its log line and, as in AWS, one metric line per delivery (Embedded "
        f"Metric Format, {handler_row['metric_bytes']} bytes here, with `ColdStarts`)"
        if handler_row.get("metric_lines")
        else ""
    )
    add(
        "- **bridge handler**: [`bench/children/handler.py`](../bench/children/handler.py) "
        f"imports `handler.app` and calls `lambda_handler` once{metric_note}."
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
        f"openai, requests) only on the first batch from the queue; of the operations code it "
        f"imports only `handler.metrics` (the standard library alone), which writes the "
        f"delivery's one metric line to stdout: no API call."
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
        f"`METRICS_STACK` is set as in a deployed stack, so each delivery also writes its "
        f"metric line. Log and metric lines go to a counting sink.\n"
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
        "metric_line": "The delivery's metric line (`metrics.write`: EMF JSON, its logger)",
        "lambda_handler_no_hand_off": "**`lambda_handler` whole, hand-off stubbed** (with the "
        "metric line)",
    }
    for key, label in labels.items():
        if key in cpu:
            add(f"| {label} | {_ms(cpu[key]['median'])} ({_ms(cpu[key]['best'])}) |")
    metric = w.get("metric_bytes_per_request", 0.0)
    add(
        f"\nLog output of the webhook path: {w['log_bytes_per_request']:.0f} bytes per "
        f"request: the `webhook.accepted` line ({w['log_bytes_per_request'] - metric:.0f} "
        f"bytes) and the delivery's metric line, one per delivery "
        f"({w.get('metric_lines_per_request', 0):.2f} per request, {metric:.0f} bytes: "
        f"Embedded Metric Format, `MessagesReceived` and, on a container's first, "
        f"`ColdStarts`).\n"
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
    same = p.get("identity")
    if same:
        add(
            f"**Reproducible.** The {same['architecture']} archive built again by Python "
            f"{same['fresh_copy']['python']} in a fresh copy of the checkout (its own empty "
            f"dependency cache) against this run's Python {same['this_build']['python']} "
            f"build: {'**byte-identical**' if same['identical'] else '**different**'} "
            f"(sha256 `{same['this_build']['sha256'][:16]}…`"
            + ("" if same["identical"] else f" vs `{same['fresh_copy']['sha256'][:16]}…`")
            + "). `tests/infra/test_reproducible.py` holds every build to this: inside the "
            "Pulumi program and from the command line, 3.11 and 3.13, two checkouts.\n"
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


SERVICES = {"sqs": "SQS", "dynamodb": "DynamoDB", "ssm": "SSM", "sns": "SNS"}
# What each request of the function is for, as the code makes them (handler/handoff.py,
# claims.py, store.py, bot.py); the counts beside them are measured.
PURPOSES = {
    "sqs SendMessageBatch": "webhook: the delivery's events into the FIFO queue",
    "dynamodb UpdateItem": "worker: the claim on the event's item",
    "dynamodb BatchGetItem": "worker: profile, conversation, the person's and the page's day "
    "(questions, tokens, spend) and any pause, in one read",
    "dynamodb GetItem": "worker: the pause looked at again before each bubble of a long "
    "answer after the first (a person of the page may have taken over)",
    "dynamodb PutItem": "worker: a new user's profile",
    "dynamodb TransactWriteItems": "worker: the answer recorded with the person's and the "
    "page's day (count, tokens, cost), on the condition that no takeover's pause runs; then "
    "the finish (event done + conversation + profile touch)",
    "sns Publish": "worker: an e-mail to the owner through the stack's topic (a new user's "
    "notice, when no adminPsids are there to tell in Messenger)",
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
        f"{b['duplicates']} duplicates, {b['stray_texts']} other texts (besides the welcome "
        f"each new person gets once before their first answer: {b.get('welcomed', 0)}), in "
        "order for every "
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
        f"above (batches of up to {e['batch_size']} messages, most people new).\n"
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
    p, i, o, ops = k["prices"], k["inputs"], k["openai"], k["operations"]
    add("## 5. Cost\n")
    meta = k.get("meta", {})
    add(
        f"_Computed {meta.get('date', '?')} from the end-to-end figures of "
        f"{meta.get('from_e2e_of', '?')}._\n"
    )
    add(
        f"AWS prices ({p['as_of']}): Lambda ${p['lambda_request'] * 1e6:.2f} per million "
        f"requests and ${p['lambda_arm64_gb_second']:.10f} per GB-second on arm64; SQS FIFO "
        f"${p['sqs_fifo_request'] * 1e6:.2f} per million requests; DynamoDB on demand "
        f"${p['dynamodb_write_unit'] * 1e6:.3f} per million write request units and "
        f"${p['dynamodb_read_unit'] * 1e6:.3f} per million read request units; CloudWatch Logs "
        f"${p['logs_ingested_gb']:.2f} per GB ingested (the metric lines too: Embedded Metric "
        f"Format costs the ingestion and the metrics, no API request); CloudWatch custom "
        f"metrics ${p['cloudwatch_metric_month']:.2f} per metric a month (the first 10,000; "
        f"prorated by the hour and metered only while data comes, so a metric that gets none, "
        f"a failure that never happens, costs nothing), standard-resolution alarms "
        f"${p['cloudwatch_alarm_month']:.2f} per alarm metric a month, dashboards "
        f"${p['cloudwatch_dashboard_month']:.2f} a month each beyond the "
        f"{p['free_dashboards']} free per account; SNS e-mail notifications free up to "
        f"{p['sns_email_free_month']:,} a month (then ${p['sns_email'] * 1e5:.2f} per 100,000); "
        f"the KMS key ${p['kms_key_month']:.0f} a month; SSM standard parameters free. No free "
        f"tier is subtracted (Lambda's 1M requests and 400,000 GB-s and SQS's 1M requests a "
        f"month would cover all of the per-message costs below); a month is {k['days']} days.\n"
    )
    price, heard_price = o["price"], o["transcription_price"]
    add(
        f"OpenAI prices: the stack's default model, **{o['model']}** at reasoning effort "
        f"`{o['reasoning_effort']}`, from the handler's own default price table "
        f"(`modelPrices` in Pulumi.yaml, read with `handler.settings.parse_model_prices`): "
        f"${price['input']:.3f} per million input tokens, ${price['cached']:.3f} per million "
        f"cached input tokens and ${price['output']:.2f} per million output tokens (reasoning "
        f"tokens are output); voice messages are transcribed by {o['transcription_model']}, "
        f"${heard_price['input']:.2f} per million audio tokens in and "
        f"${heard_price['output']:.2f} per million text tokens out. Every call is priced by "
        f"`handler.budget`, as the bot prices it for the page's spend cap and the "
        f"`EstimatedCost` metric.\n"
    )
    add("**Per message, what was measured or counted:**\n")
    per_batch = i.get("burst_records_per_invocation")
    add(
        f"- Lambda: the webhook's invocation and the worker's, one per batch from the queue "
        f"(at most `batchSize` messages, the stack's default {i.get('batch_size') or 1}): "
        f"{i['worker_invocations_per_message']:.2f} per message as measured one at a time "
        f"(the burst averaged {per_batch or 0:.1f} messages a batch; a larger batch divides "
        f"the worker's request charge, not its duration), {k['memory_mb']} MB (the stack's "
        f"default), billed by the started millisecond: webhook {_ms(i['webhook_ms'], 2)} ms → "
        f"{i['billed_webhook_ms']} ms (warm p50), worker {_ms(i['worker_ms'], 1)} ms → "
        f"{i['billed_worker_ms']} ms (sequential p50, model answering at once). In production "
        f"the worker waits for the model, and for a summary of older turns now and then, and "
        f"Lambda bills that wait: the rows with a model time add it."
    )
    sqs_ops = ", ".join(
        f"{_request_name(name)} {X}{n:.2f}" for name, n in i["sqs_operations_per_message"].items()
    )
    add(
        f"- SQS FIFO: **{i['sqs_requests_per_message']:.1f} requests per message** as counted "
        f"({sqs_ops}): the webhook's one `SendMessageBatch` per delivery and the mapping's "
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
    sized = (
        f"{t['question_tokens']:.0f}-token questions and {t['answer_tokens']:.0f}-token answers"
        if "question_tokens" in t
        else "typical questions and answers"
    )
    add(
        f"- DynamoDB: {dm['requests']:.1f} requests per message, **{dm['wru']:.1f} write and "
        f"{dm['rru']:.1f} read request units** as counted in the run (section 4: the claim; "
        f"one read of the profile, the conversation, the person's and the page's day and any "
        f"pause; the answer recorded with both days' counts, tokens and cost on the "
        f"condition that no pause runs (a ConditionCheck, counted as a write), and the "
        f"finish, in two transactions at "
        f"twice the units; the profile's index entry; the rules are in "
        f"`bench/wire.py:request_units`), where questions and answers are a few words. The "
        f"same requests for the typical exchange below ({sized}) weigh more: the HISTORY item "
        f"reaches {t['history_bytes']:,} bytes at its largest in a person's day "
        f"({t['turns']} exchanges, those the history budget kept and the newest, and the "
        f"summary of the older ones), read once and written once in a transaction, and the reply "
        f"recorded on the event's item {t['reply_bytes']:,} bytes, which both transactions "
        f"that write the event's item pay for: **{dh['wru']:.1f} WRU and {dh['rru']:.1f} "
        f"RRU** (writes by item: {typical_wru}). These are the *full history* rows."
    )
    metric_bytes = i.get("metric_log_bytes_per_message", 0.0)
    writers = i.get("metric_lines_by_writer", {})
    by_writer = ", ".join(
        f"the {writer}'s {w['lines']:.2f} of {w['bytes_per_line']:.0f} bytes"
        for writer, w in writers.items()
    )
    add(
        f"- Logs: {i['handler_log_bytes_per_message']:,.0f} bytes of the handler's lines per "
        f"message (measured), of which {metric_bytes:.0f} bytes are its metric lines "
        f"({i.get('metric_lines_per_message', 0):.2f} per message"
        + (f": {by_writer}" if by_writer else "")
        + "; at most one per webhook delivery and one per queue batch, plus one per failure "
        "kind when one fails), plus Lambda's `platform.start` and `platform.report` records "
        "per invocation (JSON log format) and 26 bytes of CloudWatch overhead per event: "
        f"**{i['log_bytes_per_message']:,.0f} bytes per message**."
    )
    fixed = k["fixed_per_month"]
    seq = r.get("e2e", {}).get("sequential", {})
    one_in = round(seq["messages"] / seq["users"]) if seq.get("users") else None
    publishes = i.get("sns_publishes_per_message", 0.0)
    mailed = f"{publishes:.2f} per message here" + (
        f", where 1 in {one_in} is new" if one_in else ""
    )
    quiet = ", ".join(f"`{name}`" for name in ops["metrics_quiet"])
    kinds = " and ".join(f"`{name}`" for name in ops["metrics_by_kind"])
    add(
        f"- Fixed, a month: the KMS key {_usd(fixed['kms_key'])}; the keep-warm ping every "
        f"{k.get('keep_warm_minutes', 20)} minutes ({i['keep_warm_pings_per_month']:,} "
        f"invocations, {_ms(i['keep_warm_ms'], 3)} ms each, {i['keep_warm_log_bytes']:.0f} log "
        f"bytes) {_usd(fixed['keep_warm'])}; the mapping's long polls of the idle queue "
        f"{_usd(fixed['sqs_idle_polling'])} (inside SQS's free million a month); and the "
        f"operations:"
    )
    add(
        f"  - custom metrics **{_usd(fixed['custom_metrics'])}**: "
        f"[`handler/metrics.py`](../handler/metrics.py) declares {ops['metrics_declared']} "
        f"metrics, each with the one dimension `Stack`, and {kinds} once more per failure kind "
        f"(`Kind`, {ops['failure_kinds']} kinds): {ops['metrics_all_active']} metrics, "
        f"{_usd(ops['metrics_all_cost'])} a month, when every one gets data every hour. A page "
        f"without failures never sends {quiet} nor any kind: {ops['metrics_usual']} metrics, "
        f"the figure counted here (an upper bound still: a quiet page's metrics miss the "
        f"hours without messages, which are not billed);"
    )
    alarms = (
        f"{ops['alarms']} alarms ({ops['alarms_standard']} of standard resolution, one "
        f"metric each, counted from `infra.monitoring.alarm_specs`) "
        f"**{_usd(fixed['alarms'])}** (`alarms: false` drops them)"
        if ops["alarms_on_by_default"]
        else "no alarms (`alarms` is off by default) $0"
    )
    add(
        f"  - {alarms}; the dashboard **{_usd(fixed['dashboard'])}**, counted as if the "
        f"account had its {p['free_dashboards']} free dashboards already ($0 when it has "
        f"fewer); the owner's SNS topic (encrypted with the stack's key) $0: a topic costs "
        f"nothing, and its e-mails (alarms, alerts the owner must act on and, while "
        f"`adminPsids` is empty, a notice per new user: {mailed}) are free up to "
        f"{p['sns_email_free_month']:,} a month, "
        f"{p['sns_email_free_month'] // k['days']} new users a day; beyond them "
        f"{_usd((p['sns_email'] + p['sns_publish']) * 1000)} per 1,000 e-mails."
    )
    add(
        f"  - Together **{_usd(fixed['total'])} a month** "
        f"({_usd(fixed['total'] - fixed['dashboard'])} within the free dashboards)."
    )
    add(
        "- Left out as next to nothing: the Function URL (no charge of its own), the "
        "EventBridge schedule (scheduled rules are free), the dead-letter queue (used only "
        "when a message's receives run out), SQS's managed encryption (free), DynamoDB "
        "storage (small items, most with a TTL), log storage (14 days' retention), the AWS "
        "metrics the alarms and the dashboard read (free), the KMS requests of the secrets' "
        "one `GetParameters` per cold start and of the topic's messages, and the worker's "
        "downloads of photos and voice messages (their time is in the model-time rows).\n"
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
    _openai(k, add)
    volumes = list(k["openai_per_month"])
    add("A month, all in (AWS's fixed costs included):\n")
    add("| Messages a day | " + " | ".join(f"{int(v):,}" for v in volumes) + " |")
    add("|---|" + "---:|" * len(volumes))
    for case in k["cases"].values():
        if case["history"] != "full_history":
            continue
        seconds = case["model_latency_s"]
        label = "AWS, model answering at once" if seconds == 0 else f"AWS, model {seconds:g} s"
        add(f"| {label} | " + " | ".join(_usd(case["per_month"][v]) for v in volumes) + " |")
    add(
        f"| OpenAI {o['model']}, text questions | "
        + " | ".join(_usd(k["openai_per_month"][v]) for v in volumes)
        + " |"
    )
    add("")
    _cost_closing(k, r, add)


def _openai(k: dict[str, Any], add: Any) -> None:
    """The model's side: the assumptions, what they give per message, the spend cap."""
    o = k["openai"]
    a, x, rows = o["assumptions"], o["exchange"], o["rows"]
    add(
        f"**OpenAI, token by token.** The bench's model is a fake, so the tokens are "
        f"assumptions, not measurements (a page's own are on its dashboard: `TokensIn`, "
        f"`TokensOut`, `EstimatedCost`). One person's day of {o['conversation_messages']} "
        f"questions (`dailyLimit`), one conversation, is played through the handler's own "
        f"rules (`handler.conversation`: the default system prompt, the remembered turns "
        f"within `historyTurns` and `historyMaxChars`, older turns folded into a summary by "
        f"one more call when they outgrow them), about 4 characters a token:\n"
    )
    add(
        f"- each question **{a['question_tokens']:.0f} tokens**, each answer the person reads "
        f"**{a['answer_tokens']:.0f} tokens**, a summary {a['summary_tokens']:.0f} tokens (its "
        f"prompt asks for at most 120 words), {a['message_overhead_tokens']:.0f} tokens per "
        f"chat message for its role;"
    )
    add(
        f"- **{a['reasoning_tokens']:.0f} reasoning tokens per call** at reasoning effort "
        f"`{o['reasoning_effort']}`, billed as output (a guess: they vary with the question);"
    )
    add(
        "- cached input: the prefix a request shares with the person's previous one, as "
        "OpenAI's prompt cache serves it (from 1,024 tokens, in steps of 128), assuming each "
        "question comes within the cache's lifetime of the last (minutes; a conversation in "
        "progress); a new summary changes the prefix, so the request after it is not cached."
    )
    add(
        f"\nThat gives, per message on average, **{x['input_tokens']:,.0f} input tokens** "
        f"({x['cached_tokens']:,.0f} of them cached; the largest prompt "
        f"{x['largest_prompt_tokens']:,} tokens) and **{x['output_tokens']:,.0f} output "
        f"tokens** ({x['reasoning_tokens']:,.0f} of them reasoning), in {x['calls']:.2f} calls "
        f"(a summary for {x['summaries'] * 100:.0f}% of the messages). Two more kinds of "
        f"message:\n"
    )
    voice = o["voice_usage"]
    add(
        f"- **a voice message** of {a['voice_seconds']:.0f} s: {voice['input_tokens']} audio "
        f"tokens in to {o['transcription_model']} (~{a['audio_tokens_per_minute']:,.0f} a "
        f"minute: what OpenAI's estimate for gpt-4o-mini-transcribe, $0.003 a minute at "
        f"$3.00 per million audio tokens, implies) and {voice['output_tokens']} "
        f"text tokens out (~{a['speech_tokens_per_minute']:.0f} a minute of speech), then the "
        f"transcript is answered as a text question;"
    )
    add(
        f"- **a photo question**: the photo as {o['image_tokens']:,} more input tokens, never "
        f"cached: a phone photo fills the {a['image_patches']:,.0f} patches of 32{X}32 px "
        f"that {o['model']}'s images are cut into (1536{X}2048 and above, sent with detail "
        f"`auto`), at {a['image_tokens_per_patch']} tokens a patch as OpenAI documents it for "
        f"the model (developers measure ~1.2: an upper bound); the conversation keeps a mark, "
        f"not the photo.\n"
    )
    volumes = list(rows["text"]["per_month"])
    add(
        "| OpenAI, per message | Each | Per 1,000 | "
        + " | ".join(f"A month at {int(v):,}/day" for v in volumes)
        + " |"
    )
    add("|---|---:|---:|" + "---:|" * len(volumes))
    for kind, label in (
        ("text", "text question (typical exchange)"),
        ("voice", "voice message (transcription + the exchange)"),
        ("photo", "photo question (the image + the exchange)"),
    ):
        row = rows[kind]
        name = f"**{label}**" if kind == "text" else label
        add(
            f"| {name} | {_usd(row['per_message'])} | **{_usd(row['per_1000'])}** | "
            + " | ".join(_usd(row["per_month"][v]) for v in volumes)
            + " |"
        )
    add("")
    cap = o["spend_cap"]
    if cap["text_messages_per_day"]:
        over = [int(v) for v in volumes if int(v) > cap["text_messages_per_day"]]
        beyond = (
            f" At {', '.join(f'{v:,}' for v in over)} a day the cap would stop the answers "
            f"after about {cap['text_messages_per_day']:,.0f} (people are told the bot rests "
            f"until tomorrow, and the spend-cap alarm fires): those columns are what the page "
            f"pays with the cap raised."
            if over
            else ""
        )
        add(
            f"**The page's daily spend cap**, `dailySpendLimitUsd` (default "
            f"${cap['usd_per_day']:.2f}), counts this same estimate: at the typical text "
            f"exchange it is reached at about **{cap['text_messages_per_day']:,.0f} messages a "
            f"day** (~{cap['text_messages_per_month']:,.0f} a month, "
            f"{_usd(cap['usd_per_day'] * k['days'])} a month at most).{beyond}\n"
        )


def _cost_closing(k: dict[str, Any], r: dict[str, Any], add: Any) -> None:
    p, i = k["prices"], k["inputs"]
    slowest = max(k["cases"].values(), key=lambda c: c["model_latency_s"])
    seconds = k["headline_model_s"]
    headline = k["cases"][f"model_{seconds:g}s_full_history"]
    webhook_gb_s = i["billed_webhook_ms"] / 1000 * k["memory_mb"] / 1024
    webhook_per_1000 = 1000 * (
        p["lambda_request"] + webhook_gb_s * p["lambda_arm64_gb_second"] + p["sqs_fifo_request"]
    )
    fixed = k["fixed_per_month"]
    break_even = fixed["total"] / headline["per_message"]["total"] / k["days"]
    names = {
        "kms_key": "the KMS key",
        "custom_metrics": "the custom metrics",
        "alarms": "the alarms",
        "dashboard": "the dashboard",
        "keep_warm": "the keep-warm ping",
        "sqs_idle_polling": "the idle polls",
    }
    biggest = sorted((v, names[n]) for n, v in fixed.items() if n in names and v > 0)[::-1][:3]
    closing = (
        f"So the model is the bill: even with a {slowest['model_latency_s']:g}-second model "
        f"the AWS side per message is "
        f"{slowest['per_1000_messages'] / k['openai_per_1000'] * 100:.0f}% of the OpenAI side. "
        f"Up to about {break_even:,.0f} messages a day ({seconds:g} s model) the fixed "
        f"{_usd(fixed['total'])} a month (mostly "
        + ", ".join(f"{name} {_usd(v)}" for v, name in biggest)
        + ") is most of the AWS bill. Most of AWS's variable cost is Lambda waiting "
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
