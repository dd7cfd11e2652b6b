"""What Meta asks of an app before it goes Live, served by the function: the privacy page and
the data-deletion callback with its status page; forgeries change nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import urlencode, urlparse

from handler import app, schema
from tests.support.bridge import APP_SECRET, Bridge, Context, function_url_event

ALICE = "1000000000000001"
HOST = "abc123.lambda-url.us-east-1.on.aws"


def get(path: str, query: dict[str, str] | None = None) -> dict:
    event = function_url_event("GET", query=query, path=path, headers={"host": HOST})
    return app.lambda_handler(event, Context())


def signed_request(payload: dict, secret: str = APP_SECRET) -> str:
    """What Meta sends: base64url(HMAC-SHA256 of the encoded payload) "." base64url(payload)."""
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    digest = hmac.new(secret.encode(), encoded.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=") + "." + encoded


def deletion_request(raw: str) -> dict:
    body = urlencode({"signed_request": raw}).encode()
    headers = {"host": HOST, "content-type": "application/x-www-form-urlencoded"}
    return app.lambda_handler(
        function_url_event("POST", body, headers, path="/data-deletion"), Context()
    )


def fresh(user_id: str = "5551234567890") -> dict:
    return {"algorithm": "HMAC-SHA256", "issued_at": int(time.time()), "user_id": user_id}


def test_the_privacy_page_says_what_this_stack_keeps_and_who_processes_it(make_bridge):
    make_bridge(
        HISTORY_TTL_HOURS="12", LOG_RETENTION_DAYS="30", PRIVACY_CONTACT="owner@example.com"
    )
    page = get("/privacy")
    assert page["statusCode"] == 200 and page["headers"]["Content-Type"].startswith("text/html")
    text = page["body"]
    assert "automated" in text and "page-scoped id" in text
    assert "Deleted after 12 hours without a message" in text
    assert "kept 35 days after the day" in text and "kept 30 days" in text
    assert "the model provider at 127.0.0.1" in text  # the stand-in here; OpenAI when deployed
    assert "/delete" in text and "owner@example.com" in text
    assert "stays until the pause ends (30 minutes after the page's last reply" in text
    # /delete claims no more than forget_user does: the rest goes by itself, and says when.
    assert "everything listed above about you is deleted at once" not in text
    assert "Deleted at once: your record, your daily counts, the conversation" in text
    deletion = text.split("Deleting your data", 1)[1]
    assert "each message of yours being answered" in deletion and "48 hours after" in deletion
    assert "could not be answered, with its text" in deletion and "at most 14 days" in deletion
    assert "notices naming your page-scoped id" in deletion and "after 7 days" in deletion
    assert "logs, which name your page-scoped id: kept 30 days" in deletion
    assert "already received (in Messenger or by e-mail) are theirs" in deletion


def test_the_privacy_page_uses_the_stacks_own_retention_times():
    """The numbers the page gives are the stack's: its dead-letter queue's retention, and the
    logs' when they are kept for good."""
    from handler.privacy import DEAD_LETTER_RETENTION_DAYS, privacy_page
    from handler.settings import Settings
    from infra.queues import DEAD_LETTER_RETENTION_SECONDS

    assert DEAD_LETTER_RETENTION_DAYS * 24 * 3600 == DEAD_LETTER_RETENTION_SECONDS
    forever = privacy_page(Settings(table_name="t", log_retention_days=0), None)
    assert "which name your page-scoped id: kept until the owner deletes them" in forever


def test_the_owners_own_privacy_text_replaces_the_written_one(bridge: Bridge):
    name = f"/{bridge.table}/privacy-text"
    own = "Our policy <b>matters</b>.\n\nWrite to us."
    bridge.harness.ssm.put_parameter(Name=name, Value=own, Type="String")
    bridge.harness.set("PRIVACY_TEXT_PARAMETER", name)
    app.reset()
    body = get("/privacy")["body"]
    assert "<p>Our policy &lt;b&gt;matters&lt;/b&gt;.</p><p>Write to us.</p>" in body
    assert "page-scoped id" not in body


def test_a_deletion_request_that_cannot_be_matched_says_so_and_deletes_nothing(bridge: Bridge):
    bridge.say(ALICE, "hello")
    before = len(bridge.items())
    answer = deletion_request(signed_request(fresh()))
    assert answer["statusCode"] == 200
    reply = json.loads(answer["body"])
    status_url = urlparse(reply["url"])
    assert status_url.netloc == HOST and status_url.path == "/data-deletion"
    assert status_url.query == f"code={reply['confirmation_code']}"
    page = get("/data-deletion", {"code": reply["confirmation_code"]})
    assert page["statusCode"] == 200
    assert "Nothing was deleted" in page["body"] and "/delete" in page["body"]
    assert len(bridge.items()) == before + 1  # only the request's own status


def test_forged_or_stale_deletion_requests_change_nothing_and_get_400(bridge: Bridge):
    bridge.say(ALICE, "hello")
    before = bridge.items()
    stale = {**fresh(), "issued_at": int(time.time()) - 2 * 3600}
    for raw in (
        signed_request(fresh(), secret="not-the-app-secret"),
        signed_request(stale),
        signed_request({**fresh(), "algorithm": "none"}),
        signed_request({**fresh(), "user_id": "me; drop"}),
        "no-dot-at-all",
        "",
        signed_request(fresh()).replace(".", ".x", 1),
    ):
        answer = deletion_request(raw)
        assert answer["statusCode"] == 400, raw
    assert bridge.items() == before


def test_an_unknown_status_code_is_not_found(bridge: Bridge):
    assert get("/data-deletion", {"code": "0123456789abcdef0123"})["statusCode"] == 404
    assert get("/data-deletion", {"code": "../../etc"})["statusCode"] == 404


def test_a_deletion_request_matched_through_graph_deletes_what_the_bot_holds(bridge: Bridge):
    bridge.say(ALICE, "hello")
    bridge.say("1000000000000002", "hi, I stay")
    bridge.graph.link_app_user("5551234567890", ALICE)  # Graph knows her PSID on this page
    bridge.harness.set("APP_ID", bridge.graph.app_id)
    bridge.harness.set("PAGE_ID", bridge.graph.page_id)
    app.reset()
    reply = json.loads(deletion_request(signed_request(fresh("5551234567890")))["body"])
    page = get("/data-deletion", {"code": reply["confirmation_code"]})["body"]
    assert "deleted the 3 records it held about you" in page
    kept = {item["pk"]["S"] for item in bridge.items()}
    assert schema.user_pk(ALICE) not in kept
    assert schema.user_pk("1000000000000002") in kept


def test_a_deletion_request_while_someone_of_the_page_answers_keeps_the_pause(bridge: Bridge):
    bridge.say(ALICE, "hello")
    bridge.reply_as_page(ALICE, "Anna here, let me look.")
    bridge.graph.link_app_user("5551234567890", ALICE)
    bridge.harness.set("APP_ID", bridge.graph.app_id)
    bridge.harness.set("PAGE_ID", bridge.graph.page_id)
    app.reset()
    deletion_request(signed_request(fresh("5551234567890")))
    left = [i["sk"]["S"] for i in bridge.items() if i["pk"]["S"] == schema.user_pk(ALICE)]
    assert left == [schema.PAUSE]  # only until when the bot keeps quiet: it ends by itself


def test_the_privacy_page_says_how_long_a_photo_without_text_waits():
    from handler.events import PHOTO_WAIT_SECONDS
    from handler.privacy import privacy_page
    from handler.settings import Settings

    page = privacy_page(Settings(table_name="t"), None)
    assert f"kept up to {PHOTO_WAIT_SECONDS // 60} minutes" in page
    assert "Messenger link (not the picture)" in page and "/reset or /delete" in page
    blind = privacy_page(Settings(table_name="t", vision=False, history_turns=0), None)
    assert "Photos and voice messages are not kept" in blind and "Messenger link" not in blind
