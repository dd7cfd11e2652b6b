"""The floor: the webhook's job in as little code as boto3 allows.

Same network calls as the real handler's cold path (one SSM GetParameters for the four
secrets, one SQS SendMessageBatch putting each event into the FIFO queue, its sender's
message group) and the same checks (HMAC-SHA256 signature, JSON parse), with nothing else:
no settings object, no logging set-up, no modules of our own. The gap between this and
``handler.py`` is what our code costs. Same arguments and output.
"""

import time

T0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
import sys  # noqa: E402

sys.path[:0] = [p for p in sys.argv[2].split(":") if p]

import base64  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import boto3  # noqa: E402

T1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
SECRETS = ("APP_SECRET", "PAGE_ACCESS_TOKEN", "VERIFY_TOKEN", "OPENAI_API_KEY")


def handle(event: dict) -> dict:
    names = [os.environ[f"{s}_PARAMETER"] for s in SECRETS]
    found = boto3.client("ssm").get_parameters(Names=names, WithDecryption=True)
    values = {p["Name"]: p["Value"] for p in found["Parameters"]}
    secret = values[os.environ["APP_SECRET_PARAMETER"]].encode()
    body = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"]
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, event["headers"].get("x-hub-signature-256", "")):
        return {"statusCode": 403}
    messages = [m for e in json.loads(body)["entry"] for m in e["messaging"]]
    answer = boto3.client("sqs").send_message_batch(
        QueueUrl=os.environ["QUEUE_URL"],
        Entries=[
            {
                "Id": str(i),
                "MessageBody": json.dumps(m),
                "MessageGroupId": m["sender"]["id"],
                "MessageDeduplicationId": hashlib.sha256(m["message"]["mid"].encode()).hexdigest(),
            }
            for i, m in enumerate(messages)
        ],
    )
    return {"statusCode": 503 if answer.get("Failed") else 200}


with open(sys.argv[1], "rb") as file:
    event = json.load(file)
response = handle(event)
T2 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
CPU = time.process_time_ns()  # this process's CPU time (user + sys) up to the 200
result = {"t0": T0, "t1": T1, "t2": T2, "cpu": CPU, "status": response["statusCode"]}
sys.stdout.write("BENCH " + json.dumps(result) + "\n")
sys.stdout.flush()
