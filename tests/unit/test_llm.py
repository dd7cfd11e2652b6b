from types import SimpleNamespace

from handler.llm import retry_delay


def error_with(headers: dict[str, str]) -> Exception:
    error = Exception("x")
    error.response = SimpleNamespace(headers=headers)  # type: ignore[attr-defined]
    return error


def test_retry_after_from_the_provider_is_honoured():
    assert retry_delay(error_with({"retry-after": "7"}), 0) == 7.0
    assert retry_delay(error_with({"retry-after-ms": "250"}), 0) == 0.25


def test_without_a_hint_the_backoff_grows_and_is_capped():
    plain = Exception("timeout")
    assert [retry_delay(plain, n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert retry_delay(error_with({"retry-after": "soon"}), 1) == 1.0
