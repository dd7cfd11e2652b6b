"""The import cost of one module on top of others, in a fresh process.

Run by ``bench.powertools`` as ``python -I -S -B imports.py PATHS BASE TARGET``: PATHS
(colon separated) go first on ``sys.path``; the modules in BASE (comma separated) are
imported first, untimed, then TARGET (``module`` or ``module:attribute``) is imported and
timed. The last line of stdout is ``BENCH {json}``.
"""

import time

T0 = time.perf_counter_ns()
import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

sys.path[:0] = [p for p in sys.argv[1].split(":") if p]
for name in filter(None, sys.argv[2].split(",")):
    importlib.import_module(name)
T1 = time.perf_counter_ns()
before = len(sys.modules)
module, _, attribute = sys.argv[3].partition(":")
found = importlib.import_module(module)
if attribute:
    getattr(found, attribute)
T2 = time.perf_counter_ns()
result = {"base_ms": (T1 - T0) / 1e6, "target_ms": (T2 - T1) / 1e6}
result["modules"] = len(sys.modules) - before
sys.stdout.write("BENCH " + json.dumps(result) + "\n")
sys.stdout.flush()
