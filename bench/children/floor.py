"""The floor: the webhook's job in as little code as boto3 allows.

Same network calls as the real handler's cold path (one SSM GetParameters for the secrets,
one DynamoDB BatchWriteItem putting the messages in their senders' inboxes, one asynchronous
lambda:Invoke) and the same checks (HMAC-SHA256 signature, JSON parse), with nothing else:
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


def handle(event: dict) -> dict:
    names = [os.environ[v] for v in ("APP_SECRET_PARAMETER", "PAGE_ACCESS_TOKEN_PARAMETER")]
    names += [os.environ[v] for v in ("VERIFY_TOKEN_PARAMETER", "OPENAI_API_KEY_PARAMETER")]
    found = boto3.client("ssm").get_parameters(Names=names, WithDecryption=True)
    values = {p["Name"]: p["Value"] for p in found["Parameters"]}
    secret = values[os.environ["APP_SECRET_PARAMETER"]].encode()
    body = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"]
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, event["headers"].get("x-hub-signature-256", "")):
        return {"statusCode": 403}
    entries = json.loads(body)["entry"]
    messages = [m for e in entries for m in e["messaging"]]
    boto3.client("dynamodb").batch_write_item(
        RequestItems={
            os.environ["TABLE_NAME"]: [
                {
                    "PutRequest": {
                        "Item": {
                            "pk": {"S": "INBOX#" + m["sender"]["id"]},
                            "sk": {"S": f"MSG#{m['timestamp']:016d}#{m['message']['mid']}"},
                            "event": {"S": json.dumps(m)},
                        }
                    }
                }
                for m in messages
            ]
        }
    )
    psid = messages[0]["sender"]["id"]
    work = {"messenger_bridge_work": 1, "drain": [psid], "events": messages}
    answer = boto3.client("lambda").invoke(
        FunctionName=os.environ["AWS_LAMBDA_FUNCTION_NAME"],
        InvocationType="Event",
        Payload=json.dumps(work).encode(),
    )
    return {"statusCode": 200 if answer["StatusCode"] == 202 else 503}


with open(sys.argv[1], "rb") as file:
    event = json.load(file)
response = handle(event)
T2 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
CPU = time.process_time_ns()  # this process's CPU time (user + sys) up to the 200
result = {"t0": T0, "t1": T1, "t2": T2, "cpu": CPU, "status": response["statusCode"]}
sys.stdout.write("BENCH " + json.dumps(result) + "\n")
sys.stdout.flush()
