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
        if "handler_fixed_over_floor" in q:
            lines.append(
                f"    with the proposed fixes: {_ms(c['handler_fixed']['to_200_ms']['median'])} ms,"
                f" {q['handler_fixed_over_floor']:.2f}x the floor"
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
        b = r["e2e"]["burst"]
        lines.append(
            f"  e2e {b['messages']} messages: {b['messages_per_s']:.1f} msg/s, typing_on p50 "
            f"{_ms(b['to_typing_on_ms']['median'], 0)} ms, reply p50 "
            f"{_ms(b['to_reply_ms']['median'], 0)} ms, exactly one reply each: "
            f"{b['exactly_one_reply_each']}"
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
        "edit by hand, run it again. All servers are local stand-ins on 127.0.0.1 (moto for "
        "SSM and DynamoDB, `local.invoke.LambdaInvokeStandIn` for lambda:Invoke, "
        "`local.graph.MessengerSimulator` for the Send API, `local.model.FakeOpenAI` for the "
        "model), so these figures say what our code costs, not what AWS's network adds.\n"
    )
    add("## Machine and commands\n")
    add("| | |\n|---|---|")
    add(f"| CPU | {m['cpu']} ({m['arch']}), {m['cores']} cores |")
    add(f"| Memory | {m['memory_gib']} GiB |")
    add(f"| Kernel | Linux {m['kernel']} |")
    add(f"| Python | {m['python_impl']} {m['python']} (bench and cold-start children) |")
    commands = sorted(
        {r[p]["meta"]["command"] for p in ("cold", "warm", "package", "e2e") if p in r}
    )
    add("| Measured with | " + ", ".join(f"`{c}`" for c in commands) + " |")
    add("")
    add(
        "```sh\nmake bench                      # = .venv/bin/python -m bench: everything, "
        "rewrites this file\n.venv/bin/python -m bench --quick           # fewer samples\n"
        ".venv/bin/python -m bench --only cold       # or warm, package, e2e, cost "
        "(comma-separate)\n```\n"
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
        if not r["cold"].get("archive_has_pyc", True) and "handler_fixed_over_floor" not in q:
            add(
                f"| … with bytecode in the archive (proposed, below) | "
                f"{_ms(c['handler_pyc']['to_200_ms']['median'], 0)} ms, "
                f"{q['handler_pyc_over_floor']:.2f}{X} the floor "
                f"(CPU {q.get('cpu_handler_pyc_over_floor', 0):.2f}{X}) | "
                f"\u2264 {COLD_AIM_FLOOR}{X}: "
                f"{_met(q['handler_pyc_over_floor'] <= COLD_AIM_FLOOR)} |"
            )
        if "handler_fixed_over_floor" in q:
            add(
                f"| … with the two proposed fixes (below) | "
                f"{_ms(c['handler_fixed']['to_200_ms']['median'], 0)} ms, "
                f"{q['handler_fixed_over_floor']:.2f}{X} the floor | ≤ {COLD_AIM_FLOOR}{X}: "
                f"{_met(q['handler_fixed_over_floor'] <= COLD_AIM_FLOOR)} |"
            )
    if "warm" in r:
        w = r["warm"]
        add(
            f"| Warm webhook, signed POST to 200 (incl. inbox write and Invoke over loopback) "
            f"| p50 "
            f"{_ms(w['latency_ms']['median'], 2)} ms, p99 {_ms(w['latency_ms']['p99'], 2)} ms | |"
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
        b = r["e2e"]["burst"]
        add(
            f"| End to end, {b['messages']} messages at once | {b['messages_per_s']:.0f} msg/s; "
            f"typing_on p50 {_ms(b['to_typing_on_ms']['median'], 0)} ms; reply p50 "
            f"{_ms(b['to_reply_ms']['median'], 0)} ms | one reply each: "
            f"{'yes' if b['exactly_one_reply_each'] else '**NO**'} |"
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
        f"written) with the deployed function's environment (`TABLE_NAME`, "
        f"`*_PARAMETER` names, `AWS_ENDPOINT_URL_SSM` and `_DYNAMODB` → moto, "
        f"`AWS_ENDPOINT_URL_LAMBDA` → the "
        f"Invoke stand-in, fake credentials) that handles one signed webhook POST (a Function "
        f"URL event) and exits. {c['samples']} samples per variant after "
        f"{c['warmup_rounds']} discarded warm-up rounds, variants interleaved in shuffled "
        f"order so that changes in load hit all alike. Every sample's hand-off reached the "
        f"stand-in ({c['handed_off']} of {c['expected_hand_offs']}).\n"
    )
    add(
        "**Timing.** The parent reads `CLOCK_MONOTONIC` just before spawning; the child stamps "
        "the same clock on its first line, after its imports, and when the handler has "
        "returned the 200, and prints the stamps. *To 200* = spawn → 200 (the headline); "
        "*startup* = spawn → first line (interpreter); *init* = the module-level imports and "
        "set-up; *request* = the first request (settings, SSM GetParameters, signature, "
        "parse, lambda:Invoke); *exit* = spawn → process gone, which Lambda never pays.\n"
    )
    add(
        f"**Layout, as in Lambda.** The archive `{c['archive']}` built by `infra.packaging` "
        "for this CPU is extracted into a `task` folder, and boto3, botocore, s3transfer, "
        "jmespath, dateutil, six and urllib3 (links to this venv's compiled copies) into "
        "a `runtime` folder; both go first on `sys.path` like `/var/task` and "
        "`/var/runtime`. Lambda's `/var/task` is read-only, so Python cannot cache bytecode "
        "there. "
        + (
            "The archive ships its own `.pyc`, so *as shipped* and *with .pyc* are alike.\n"
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
        "secrets and one asynchronous `lambda:Invoke`, and the same checks (HMAC-SHA256, "
        "JSON parse), in as little code as boto3 allows, with only the runtime folder on "
        "the path (a function with nothing in its zip but itself). The gap between it and "
        "the handler is what our code and packaging cost."
    )
    add(
        "- **bridge handler**: [`bench/children/handler.py`](../bench/children/handler.py) "
        "imports `handler.app` and calls `lambda_handler` once."
    )
    if "handler_fixed" in v:
        add(
            "- **bridge handler + proposed fixes**: the *with .pyc* task with "
            "`handler/clients.py` patched (in the temporary copy only) to share one boto3 "
            "Session; see the findings below."
        )
    add(
        "- (c) **naive**: [`bench/children/naive.py`](../bench/children/naive.py): the same "
        "handler, but at module level, as a one-file function would, it imports openai, "
        "requests, boto3 and the worker's modules, fetches the secrets and creates every "
        "client (SSM, Lambda, DynamoDB, a requests session, the OpenAI client).\n"
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
    if "handler_fixed_over_floor" in q:
        add(
            f"- handler with the proposed fixes / floor: "
            f"**{q['handler_fixed_over_floor']:.2f}{X}** "
            f"({q.get('cpu_handler_fixed_over_floor', 0):.2f}{X}): "
            f"{_met(q['handler_fixed_over_floor'] <= COLD_AIM_FLOOR)}."
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
        "creates two clients and makes two calls, takes "
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


CLIENTS_DIFF = '''\
--- a/handler/clients.py
+++ b/handler/clients.py
@@ imports
 import functools
+import threading
 from typing import Any
@@ def aws
+_SESSION_LOCK = threading.Lock()
+
+
+@functools.cache
+def _session() -> Any:
+    """One boto3 Session for every client: each new Session loads botocore's endpoint rules,
+    partitions and defaults again (~50 ms of the cold start for the second client)."""
+    return boto3.session.Session()
+
+
 @functools.cache
 def aws(service: str) -> Any:
-    return boto3.session.Session().client(service, config=_AWS_CONFIG)
+    with _SESSION_LOCK:  # a Session is not thread-safe; the clients it makes are
+        return _session().client(service, config=_AWS_CONFIG)
@@ def reset
     aws.cache_clear()
+    _session.cache_clear()
     http_session.cache_clear()
'''


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
        f"{_ms(own)} ms to import once compiled"
        + (
            "; the rest has these causes, each measured by a row above:\n"
            if "handler_fixed" in v or not shipped_pyc
            else ". The archive ships bytecode and the clients share one boto3 Session, so "
            "the two causes found earlier (compiling at each cold start, ~40 ms, and a new "
            "Session per client, ~50 ms) are gone.\n"
        )
    )
    n = 1
    if not shipped_pyc:
        add(
            f"{n}. **No bytecode in the archive: {_signed(med('handler') - med('handler_pyc'))}"
            f" ms** (*as shipped* minus *with .pyc*). The archive ships `requests`, which "
            f"brings its own `urllib3`; `/var/task` comes first on the path, so botocore "
            f"imports that copy instead of the runtime's compiled one, and compiles it, with "
            f"`handler/` and `certifi`, from source at every cold start (the `urllib3` line of "
            f"the import table below). The worker pays much more on its first event: compiling "
            f"`openai` and `pydantic` is the gap between the two naive rows, "
            f"{_signed(med('naive') - med('naive_pyc'))} ms."
        )
        n += 1
    if "handler_fixed" in v:
        add(
            f"{n}. **A new boto3 Session per client: "
            f"{_signed(med('handler_pyc') - med('handler_fixed'))} ms** (*with .pyc* minus "
            f"*+ proposed fixes*). `handler/clients.py` creates `boto3.session.Session()` for "
            f"each service, and each new Session loads botocore's endpoint rules, partitions "
            f"and defaults again; the first request creates two clients (SSM, then Lambda), "
            f"where the floor's `boto3.client()` shares one default session."
        )
    add("")
    if "handler_fixed" in v or not shipped_pyc:
        measured_by = (
            "The *+ proposed fixes* row measures them together, and it disappears once they land"
            if "handler_fixed" in v
            else "The *with .pyc* row measures the result"
        )
        add(
            "Proposed changes. They are outside `bench/`, so the benchmark does not make them. "
            f"{measured_by}:\n"
        )
    if "handler_fixed" in v:
        add("- Share one Session between the clients:\n")
        add("```diff\n" + CLIENTS_DIFF + "```\n")
    if not shipped_pyc:
        add(
            "- Ship bytecode: have `infra/packaging.py` compile every module of the archive "
            "with Python 3.13 into `__pycache__/` beside it (`py_compile` with "
            "`PycInvalidationMode.UNCHECKED_HASH`, so no timestamps and the zip stays "
            "reproducible; `dfile=/var/task/<name>` for tracebacks), cached by content under "
            "`.cache/`, and relax the packaging test that forbids `.pyc`. Section 3 gives the "
            "size this adds.\n"
        )


def _warm(w: dict[str, Any], add: Any) -> None:
    lat, inv, cpu = w["latency_ms"], w["invoke_only_ms"], w["cpu_us"]
    add("## 2. Warm webhook latency\n")
    add(_meta(w) + "\n")
    add(
        f"One process, the handler already initialised (secrets fetched, clients created, "
        f"connections open), {w['requests']:,} signed POSTs of a one-message delivery "
        f"({w['body_bytes']} bytes) through `handler.app.lambda_handler`, each timed with "
        f"`perf_counter_ns`. The hand-off is two calls over loopback: the message into its "
        f"sender's inbox (DynamoDB BatchWriteItem, to moto) and the drain's lambda:Invoke "
        f"(`InvocationType=Event`, to the Invoke stand-in); secrets are cached for the "
        f"container's life. Log lines go to a counting sink.\n"
    )
    add("| | p50 | p90 | p99 | max | mean |\n|---|---:|---:|---:|---:|---:|")
    add(
        f"| Signed POST → 200, ms | **{_ms(lat['median'], 2)}** | {_ms(lat['p90'], 2)} | "
        f"**{_ms(lat['p99'], 2)}** | {_ms(lat['max'], 2)} | {_ms(lat['mean'], 2)} |"
    )
    if "post_only_ms" in w:
        post = w["post_only_ms"]
        add(
            f"| The inbox write alone (boto3 → moto), ms | {_ms(post['median'], 2)} | "
            f"{_ms(post['p90'], 2)} | {_ms(post['p99'], 2)} | {_ms(post['max'], 2)} | "
            f"{_ms(post['mean'], 2)} |"
        )
    add(
        f"| The Invoke call alone (boto3 → stand-in), ms | {_ms(inv['median'], 2)} | "
        f"{_ms(inv['p90'], 2)} | {_ms(inv['p99'], 2)} | {_ms(inv['max'], 2)} | "
        f"{_ms(inv['mean'], 2)} |"
    )
    add("")
    add(
        "Nearly all of the warm latency is the two round trips (botocore signing and "
        "sending, moto and the stand-in answering); our part is the CPU-only work below. "
        "Per call, "
        "median of 7 `timeit` runs (best in brackets), µs:\n"
    )
    add("| Step | µs |\n|---|---:|")
    labels = {
        "http_request": "Function URL event → request (`events.http_request`, base64)",
        "signature": "`X-Hub-Signature-256` check (`signature.is_valid`)",
        "parse_webhook": "Body → events (`events.parse_webhook`)",
        "route_no_hand_off": "`webhook.route`: all the above but the event, + log line",
        "lambda_handler_no_hand_off": "**`lambda_handler` whole, hand-off stubbed**",
    }
    for key, label in labels.items():
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


def _e2e(e: dict[str, Any], add: Any) -> None:
    b, s = e["burst"], e["sequential"]
    add("## 4. End to end\n")
    add(_meta(e) + "\n")
    add(
        f"The whole local stack, every hop real HTTP on loopback: the webhook "
        f"(`lambda_handler`, called by {e['users']} user threads), the hand-off through the "
        f"Invoke stand-in, which runs the worker (`lambda_handler` again) in threads of the "
        f"same process, DynamoDB and SSM in moto (a child process), the Send API in the "
        f"Messenger simulator and the model in `FakeOpenAI(latency=0)`. Each user posts "
        f"{e['messages_per_user']} messages back to back, all users at once (released by a "
        f"barrier). Times are from just before the webhook call to the simulator's receipt "
        f"(`at`, `time.monotonic()`) of that message's `typing_on` and of its reply; the "
        f"`typing_on` is tied to its message through the event being handled.\n"
    )
    if e.get("stand_in_nagle_patched"):
        add(
            "> The stand-in servers answer headers and body in two writes; with Nagle's "
            "algorithm on, the body then waits for the client's delayed ACK, ~40 ms on every "
            "Send API and model call, which is the stand-in's doing, not the bridge's. The "
            "benchmark turns `TCP_NODELAY` on for their connections in its own process (one "
            "line, proposed for `local/_http.py`; once there, the benchmark stops patching).\n"
        )
    ok = b["exactly_one_reply_each"] and b["all_200"]
    add(
        f"**Exactly one reply per message: {'yes' if ok else 'NO'}**: {b['replied']} of "
        f"{b['messages']} messages answered, {b['duplicates']} duplicates, "
        f"{b['stray_texts']} other texts, every webhook answered 200: {b['all_200']}; "
        f"{b['failed_invocations']} failed and {b['retried_invocations']} retried worker "
        f"invocations.\n"
    )
    add("| Burst of " + f"{b['messages']} messages | p50 | p90 | p99 | max |")
    add("|---|---:|---:|---:|---:|")
    for key, label in (
        ("webhook_ms", "Webhook POST → 200, ms"),
        ("to_typing_on_ms", "Webhook → `typing_on`, ms"),
        ("to_reply_ms", "Webhook → reply, ms"),
        ("worker_ms", "Worker invocation, ms"),
    ):
        x = b[key]
        add(
            f"| {label} | {_ms(x['median'])} | {_ms(x['p90'])} | {_ms(x['p99'])} | "
            f"{_ms(x['max'])} |"
        )
    add("")
    add(
        f"**Throughput: {b['messages_per_s']:.1f} messages per second** end to end ({b['messages']}"
        f" messages from the first POST to the last reply in {b['wall_s']:.2f} s); the "
        f"webhooks alone were answered at {b['webhooks_per_s']:.0f} per second. This is what "
        f"one Python process (one GIL, running the webhooks, every worker and three of the "
        f"servers) and one moto process on 2 cores can do: moto served "
        f"{b.get('dynamodb_requests_per_s', 0):.0f} DynamoDB requests a second meanwhile, "
        f"{e['burst_dynamodb']['requests'] / b['messages']:.0f} per message, and is the "
        f"bottleneck. Lambda runs each invocation in its "
        f"own environment, so in production the bridge's throughput is bounded by the "
        f"account's concurrency, Send API rate limits and the model, not by this figure. "
        f"Under this load the times above are queueing: the uncontended path is below.\n"
    )
    f = e["first_message"]
    add(
        f"**First message in a fresh process**: worker {_ms(f['worker_ms'], 0)} ms, reply "
        f"after {_ms(f['reply_ms'], 0)} ms: the worker imports openai, requests and its "
        f"modules on its first event (compiled `.pyc` here; add the compile time of section 1 "
        f"in Lambda as shipped).\n"
    )
    d = s["dynamodb"]
    add(
        f"**One message at a time** ({s['messages']} messages from {s['users']} users, each "
        f"waited for; these durations feed the cost model):\n"
    )
    add("| Sequential | p50 | p90 | max |\n|---|---:|---:|---:|")
    for key, label in (
        ("webhook_ms", "Webhook POST → 200, ms"),
        ("worker_ms", "Worker invocation, ms"),
        ("reply_ms", "Webhook → reply, ms"),
    ):
        x = s[key]
        add(f"| {label} | {_ms(x['median'])} | {_ms(x['p90'])} | {_ms(x['max'])} |")
    per = s["dynamodb_per_message"]
    add("")
    add(
        f"Storage: the worker made {per['requests']:.1f} DynamoDB requests per message "
        f"(counted by an event hook on its boto3 client: "
        + ", ".join(f"{op} {X}{n / s['messages']:.1f}" for op, n in d["by_operation"].items())
        + f"), {_ms(d['call_ms']['median'])} ms each at the median as seen by the client, "
        f"{_ms(d['total_call_ms'] / s['messages'], 0)} ms per message of a "
        f"{_ms(s['worker_ms']['median'], 0)} ms worker. That time is moto's (a Python server "
        f"parsing every request); DynamoDB in the same region answers such small items in a "
        f"few ms, so the storage latency here is the moto server's, not DynamoDB's.\n"
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
        f"and ${p['lambda_arm64_gb_second']:.10f} per GB-second on arm64; DynamoDB on demand "
        f"${p['dynamodb_write_unit'] * 1e6:.3f} per million write request units and "
        f"${p['dynamodb_read_unit'] * 1e6:.3f} per million read request units; CloudWatch Logs "
        f"${p['logs_ingested_gb']:.2f} per GB ingested; the KMS key ${p['kms_key_month']:.0f} "
        f"a month; SSM standard parameters free. OpenAI gpt-4.1-mini: "
        f"${p['openai_input_token'] * 1e6:.2f} per million input tokens and "
        f"${p['openai_output_token'] * 1e6:.2f} per million output tokens (published prices, "
        f"2025). No free tier is subtracted (Lambda's 1M requests and 400,000 GB-s a month "
        f"would cover all of the below); a month is {k['days']} days.\n"
    )
    add("**Per message, what was measured or counted:**\n")
    add(
        f"- Lambda: 2 invocations (the webhook and its worker), {k['memory_mb']} MB (the "
        f"stack's default), billed by the started millisecond: webhook "
        f"{_ms(i['webhook_ms'], 2)} ms → {i['billed_webhook_ms']} ms (warm p50), worker "
        f"{_ms(i['worker_ms'], 1)} ms → {i['billed_worker_ms']} ms (sequential p50, model "
        f"answering at once). In production the worker waits for the model (typically "
        f"2{EN}5 s) and Lambda bills that wait: the rows with a model time add it."
    )
    dm, dh = i["dynamodb_measured"], i["dynamodb_full_history"]
    h = i["typical_history"]
    add(
        f"- DynamoDB: {dm['requests']:.1f} requests per message, **{dm['wru']:.1f} write and "
        f"{dm['rru']:.1f} read request units** as counted in the run (small items: the "
        f"message into and out of its inbox with its count of tries, the inbox's lease taken "
        f"and given back, dedupe claim and its 3 state updates, profile with its activity "
        f"index, daily counter, history read and write; the rules are in "
        f"`bench/e2e.py:request_units`). A "
        f"conversation whose history is full weighs more: with typical 300-token questions and"
        f" answers the HISTORY item reaches {h['bytes']:,} bytes ({h['turns']} turns within "
        f"`HISTORY_MAX_CHARS`), so **{dh['wru']:.1f} WRU and {dh['rru']:.1f} RRU**."
    )
    add(
        f"- Logs: {i['handler_log_bytes_per_message']:.0f} bytes of the handler's JSON lines "
        f"per message (measured), plus Lambda's `platform.start` and `platform.report` records "
        f"per invocation (JSON log format) and 26 bytes of CloudWatch overhead per event: "
        f"**{i['log_bytes_per_message']:,.0f} bytes per message**."
    )
    add(
        f"- Fixed: the KMS key, and the keep-warm ping every 20 minutes "
        f"({i['keep_warm_pings_per_month']:,} invocations a month, "
        f"{_ms(i['keep_warm_ms'], 3)} ms each, {i['keep_warm_log_bytes']:.0f} log bytes): "
        f"{_usd(k['fixed_per_month']['total'])} a month together."
    )
    add(
        f"- OpenAI, for a typical exchange of 300 input tokens (question with history) and 300 "
        f"output tokens: **{_usd(k['openai_per_message'])} per message**."
    )
    add(
        "- Left out as next to nothing: the Function URL (no charge of its own), the "
        "EventBridge schedule (scheduled rules are free), the failure queue (used only when "
        "retries run out), DynamoDB storage (small items, most with a TTL), and the KMS "
        "decrypts of the secrets' one `GetParameters` per cold start.\n"
    )
    add("| Case | Lambda | DynamoDB | Logs | **AWS per 1,000 msgs** | OpenAI per 1,000 |")
    add("|---|---:|---:|---:|---:|---:|")
    for _key, case in k["cases"].items():
        u = case["per_message"]
        history = "full history" if case["history"] == "full_history" else "short history"
        add(
            f"| model {case['model_latency_s']:g} s, {history} | "
            f"{_usd((u['lambda_requests'] + u['lambda_compute']) * 1000)} | "
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
    webhook_per_1000 = 1000 * (p["lambda_request"] + webhook_gb_s * p["lambda_arm64_gb_second"])
    two = k["cases"]["model_2s_full_history"]["per_message"]["total"]
    break_even = k["fixed_per_month"]["total"] / two / k["days"]
    closing = (
        f"So the model is the bill: even with a 5-second model the AWS side is "
        f"{worst / k['openai_per_1000'] * 100:.0f}% of the OpenAI side per message, and up to "
        f"about {break_even:,.0f} messages a day (2 s model) the fixed $1 KMS key is most of "
        f"the AWS bill. Most of AWS's variable cost is Lambda waiting for the model; the "
        f"webhook path itself costs {_usd(webhook_per_1000)} per 1,000 messages."
    )
    if k.get("init_per_cold_start"):
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
