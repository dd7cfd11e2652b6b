"""Cold start of the naive design: everything imported and created at module level.

The same handler answers the same POST, but first, as a one-file Lambda would at init, this
imports openai, requests, boto3 and the worker's modules (the queue side, the conversation
rules, claims, store, model and Send API clients), fetches the secrets, and creates every
client (SSM, SQS, DynamoDB, the requests session, the OpenAI client). Same arguments and
output as ``handler.py``.
"""

import time

T0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
import sys  # noqa: E402

sys.path[:0] = [p for p in sys.argv[2].split(":") if p]

import boto3  # noqa: E402, F401
import openai  # noqa: E402
import requests  # noqa: E402, F401

from handler import app, batch, bot, claims, clients, llm, messenger, store  # noqa: E402, F401

runtime = app.runtime()
secrets = runtime.secrets()  # the GetParameters call, at init
for service in ("ssm", "sqs", "dynamodb"):
    clients.aws(service)
clients.http_session()
wired = (runtime.handoff, runtime.bot)  # the hand-off and the conversation rules, wired
model = openai.OpenAI(api_key=secrets.openai_api_key or "unused")  # reads OPENAI_BASE_URL

T1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
import json  # noqa: E402

with open(sys.argv[1], "rb") as file:
    event = json.load(file)
response = app.lambda_handler(event, None)
T2 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
CPU = time.process_time_ns()  # this process's CPU time (user + sys) up to the 200
result = {"t0": T0, "t1": T1, "t2": T2, "cpu": CPU, "status": response["statusCode"]}
sys.stdout.write("BENCH " + json.dumps(result) + "\n")
sys.stdout.flush()
