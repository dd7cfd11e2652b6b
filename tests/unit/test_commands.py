from handler.commands import Command, parse_payload, parse_text

PSID = "1000000000000009"


def test_user_commands_are_case_insensitive_for_everyone():
    assert parse_text("/HELP", is_admin=False) == Command("help")
    assert parse_text("  /Usage ", is_admin=False) == Command("usage")
    assert parse_text("/reset", is_admin=True) == Command("reset")


def test_ordinary_text_is_not_a_command():
    assert parse_text("what is /usage?", is_admin=False) is None
    assert parse_text("/unknown thing", is_admin=True) is None


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


def test_bad_arguments_get_a_one_line_usage():
    for text in ("/block", "/block alice", f"/limit {PSID}", f"/limit {PSID} -2", "/users x"):
        command = parse_text(text, True)
        assert command is not None and command.error.startswith("Usage: ")
        assert "\n" not in command.error


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
    assert parse_text("/stats now", True).error == "Usage: /stats"
