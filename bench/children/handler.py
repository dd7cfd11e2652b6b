"""Cold start of the real handler: import ``handler.app``, answer one signed POST, report.

Run by ``bench.cold`` as ``python -I -S -B handler.py EVENT_FILE PATHS``; PATHS (colon
separated) go first on ``sys.path``, as /var/task and /var/runtime do in Lambda. The last
line of stdout is ``BENCH {json}`` with CLOCK_MONOTONIC stamps in ns.
"""

import time

T0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
import sys  # noqa: E402

sys.path[:0] = [p for p in sys.argv[2].split(":") if p]

from handler import app  # noqa: E402

T1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
import json  # noqa: E402  (already imported by the handler)

with open(sys.argv[1], "rb") as file:
    event = json.load(file)
response = app.lambda_handler(event, None)
T2 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
CPU = time.process_time_ns()  # this process's CPU time (user + sys) up to the 200
result = {"t0": T0, "t1": T1, "t2": T2, "cpu": CPU, "status": response["statusCode"]}
sys.stdout.write("BENCH " + json.dumps(result) + "\n")
sys.stdout.flush()
