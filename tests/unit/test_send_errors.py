"""A Send API call that failed on the network: sent again only when Graph cannot have it."""

from __future__ import annotations

import pytest
import requests
from urllib3.exceptions import NewConnectionError

from handler.messenger import network_error


@pytest.mark.parametrize(
    "error",
    [
        requests.ConnectTimeout("connect timed out"),
        requests.ConnectionError(NewConnectionError(None, "Connection refused")),
        requests.exceptions.SSLError("certificate verify failed"),
        requests.exceptions.ProxyError("proxy refused"),
    ],
    ids=["connect-timeout", "refused", "tls-handshake", "proxy"],
)
def test_a_request_that_never_reached_graph_is_sent_again(error: Exception) -> None:
    failure = network_error(error)
    assert not failure.maybe_delivered and not failure.permanent


@pytest.mark.parametrize(
    "error",
    [
        requests.ReadTimeout("read timed out"),
        requests.ConnectionError("Connection aborted: RemoteDisconnected"),
        requests.exceptions.ChunkedEncodingError("connection broken"),
    ],
    ids=["read-timeout", "aborted", "broken-answer"],
)
def test_a_request_graph_may_have_taken_is_never_sent_twice(error: Exception) -> None:
    assert network_error(error).maybe_delivered
