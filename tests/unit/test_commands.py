import pytest

from handler.commands import Command, parse_payload, parse_text

PSID = "1000000000000009"


def test_user_commands_are_case_insensitive_for_everyone():
    assert parse_text("/HELP", is_admin=False) == Command("help")
    assert parse_text("  /Usage ", is_admin=False) == Command("usage")
    assert parse_text("/reset", is_admin=True) == Command("reset")


def test_ordinary_text_is_not_a_command():
    assert parse_text("what is /usage?", is_admin=False) is None
    assert parse_text("/unknown thing", is_admin=False) is None
    assert parse_text("/path/to/file?", is_admin=True) is None


def test_an_owners_unknown_command_is_answered_as_such():
    command = parse_text("/blok 1000000000000009", is_admin=True)
    assert command is not None and command.error == "There is no command /blok. /help lists them."


def test_admin_commands_are_plain_text_from_non_admins():
    for text in ("/users", f"/block {PSID}", f"/limit {PSID} 5", f"/forget {PSID}"):
        assert parse_text(text, is_admin=False) is None


def test_admin_commands_with_their_arguments():
    assert parse_text("/users", True) == Command("users")
    assert parse_text(f"/unlimited {PSID}", True) == Command("unlimited", PSID)
    assert parse_text(f"/default {PSID}", True) == Command("default", PSID)
    assert parse_text(f"/block {PSID}", True) == Command("block", PSID)
    assert parse_text(f"/limit {PSID} 25", True) == Command("limit", PSID, 25)
    assert parse_text(f"/forget {PSID}", True) == Command("forget", PSID)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("/block", "/block needs a page-scoped id (PSID): 5 to 32 digits expected"),
        ("/block alice", "'alice' is not a page-scoped id: 5 to 32 digits expected"),
        ("/block 12", "'12' is not a page-scoped id: 5 to 32 digits expected"),
        (f"/block {PSID} {PSID}", "/block takes one PSID, got 2 words"),
        (f"/limit {PSID}", "/limit needs a PSID and a number of questions a day"),
        (f"/limit {PSID} -2", "'-2' is not a number of questions: a whole number from 0 to"),
        (f"/limit {PSID} 100001", "'100001' is not a number of questions"),
        ("/users x", "/users takes nothing after it"),
        (f"/pause {PSID} soon", "'soon' is not a number of minutes"),
        (f"/pause {PSID} 0", "'0' is not a number of minutes"),
        ("/resume", "/resume needs a page-scoped id"),
    ],
)
def test_a_rejected_command_says_why_and_how_it_is_written(text: str, why: str):
    command = parse_text(text, True)
    assert command is not None and command.error.startswith(why)
    name = text.split()[0]
    assert f"Usage: {name}" in command.error and "\n" not in command.error


def test_takeover_commands_and_buttons():
    assert parse_text(f"/pause {PSID}", True) == Command("pause", PSID)
    assert parse_text(f"/pause {PSID} 90", True) == Command("pause", PSID, 90)
    assert parse_text(f"/resume {PSID}", True) == Command("resume", PSID)
    assert parse_text(f"/pause {PSID}", False) is None
    assert parse_text("/human", False) == Command("human")
    assert parse_payload("HUMAN", False) == Command("human")
    assert parse_payload(f"ADMIN:resume:{PSID}", True) == Command("resume", PSID)
    assert parse_payload(f"ADMIN:pause:{PSID}", True) == Command("pause", PSID)
    assert parse_payload(f"ADMIN:resume:{PSID}", False).name == "ignored"


def test_menu_payloads_and_admin_buttons():
    assert parse_payload("GET_STARTED", False) == Command("start")
    assert parse_payload("RESET", False) == Command("reset")
    assert parse_payload(f"ADMIN:unlimited:{PSID}", True) == Command("unlimited", PSID)
    assert parse_payload(f"ADMIN:blocked:{PSID}", True) == Command("block", PSID)
    assert parse_payload(f"ADMIN:blocked:{PSID}", False).name == "ignored"
    assert parse_payload("ADMIN:explode:1", True).name == "ignored"


def test_stats_is_an_owner_command_without_arguments():
    assert parse_text("/stats", True) == Command("stats")
    assert parse_text("/STATS", True) == Command("stats")
    assert parse_text("/stats", False) is None
    assert parse_text("/stats now", True).error == "/stats takes nothing after it. Usage: /stats"
