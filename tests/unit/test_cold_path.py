"""The webhook's cold path stays light: a delivery with a photo is handed off without the
worker's modules (the openai SDK, media downloads, budgets, owner alerts)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.infra.capture import PROJECT_ROOT

WORKER_MODULES = (
    "openai",
    "requests",
    "handler.llm",
    "handler.media",
    "handler.budget",
    "handler.alerts",
    "handler.bot",
    "handler.store",
)

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time, base64
    os.environ.update(TABLE_NAME="t", QUEUE_URL="https://sqs.test/q.fifo", APP_SECRET="s3cret-app",
        PAGE_ACCESS_TOKEN="page-token", VERIFY_TOKEN="verify-tok", OPENAI_API_KEY="sk-key")
    from handler import app, handoff, signature
    sent = []
    handoff.Handoff.enqueue = lambda self, events: sent.extend(events) or len(events)
    now = int(time.time() * 1000)
    body = json.dumps({"object": "page", "entry": [{"id": "1", "time": now, "messaging": [
        {"sender": {"id": "42"}, "timestamp": now, "message": {"mid": "m1", "attachments": [
            {"type": "image", "payload": {"url": "https://cdn.test/a.jpg"}}]}},
        {"sender": {"id": "42"}, "timestamp": now + 500, "message": {"mid": "m2", "text": "?"}},
    ]}]}).encode()
    event = {"requestContext": {"http": {"method": "POST", "path": "/"}}, "rawPath": "/",
        "headers": {"x-hub-signature-256": signature.sign(body, "s3cret-app")},
        "body": base64.b64encode(body).decode(), "isBase64Encoded": True}
    response = app.lambda_handler(event, None)
    print(json.dumps({"status": response["statusCode"], "events": len(sent),
        "loaded": sorted(m for m in sys.modules if m in WORKER)}))
    """
)


def test_a_photo_delivery_is_handed_off_without_loading_the_worker():
    code = f"WORKER = {WORKER_MODULES!r}\n{SCRIPT}"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"status": 200, "events": 2, "loaded": []}
