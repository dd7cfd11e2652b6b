from handler import signature

SECRET = "app-secret-123456"
BODY = b'{"object":"page","entry":[]}'


def test_a_body_signed_with_the_app_secret_is_valid():
    assert signature.is_valid(BODY, signature.sign(BODY, SECRET), SECRET)


def test_the_header_is_checked_case_insensitively_for_the_hex_digest():
    header = signature.sign(BODY, SECRET).upper().replace("SHA256=", "sha256=")
    assert signature.is_valid(BODY, header, SECRET)


def test_a_changed_body_a_wrong_secret_or_no_header_is_refused():
    good = signature.sign(BODY, SECRET)
    assert not signature.is_valid(BODY + b" ", good, SECRET)
    assert not signature.is_valid(BODY, signature.sign(BODY, "other-secret"), SECRET)
    assert not signature.is_valid(BODY, None, SECRET)
    assert not signature.is_valid(BODY, "", SECRET)
    assert not signature.is_valid(BODY, good.removeprefix("sha256="), SECRET)
    assert not signature.is_valid(BODY, "sha1=" + good[7:], SECRET)
    assert not signature.is_valid(BODY, "sha256=\u00e9\u00e9", SECRET)


def test_no_app_secret_means_nothing_is_valid():
    assert not signature.is_valid(BODY, signature.sign(BODY, ""), "")


def test_verify_tokens_must_match_exactly():
    assert signature.tokens_match("tok", "tok")
    assert not signature.tokens_match("tok ", "tok")
    assert not signature.tokens_match(None, "tok")
    assert not signature.tokens_match("", "")
