import socket
from datetime import UTC, datetime

import pytest

from green_operator.carbon.provider import ErrorReason, ProviderError
from green_operator.carbon.transport import RetryPolicy, parse_retry_after


def test_success_returns_json_and_sends_accept_header(server, make_client):
    server.json("/x", {"a": 1})
    client = make_client(server.url)
    assert client.get_json("/x", params={"zone": "GB"}) == {"a": 1}
    seen = server.last("/x")
    assert seen.param("zone") == "GB"
    assert seen.headers["accept"] == "application/json"


def test_base_url_with_a_path_and_trailing_slash(server, make_client):
    server.json("/v3/carbon-intensity/latest", {"ok": True})
    client = make_client(server.url + "/v3/")
    assert client.get_json("carbon-intensity/latest") == {"ok": True}


def test_retries_5xx_with_jittered_backoff_then_succeeds(server, make_client):
    server.route("/x", server.Reply(503, {"error": "busy"}), server.Reply(502, "bad gateway"), server.Reply(200, [1]))
    sleeps: list[float] = []
    client = make_client(server.url, retries=2, sleeps=sleeps)
    assert client.get_json("/x") == [1]
    assert server.count("/x") == 3
    # full jitter with rand=0.5: 0.5 * min(5, 0.5 * 2**n)
    assert sleeps == [0.25, 0.5]


def test_5xx_after_retries_is_a_server_error_with_the_body_message(server, make_client):
    server.json("/x", {"error": "database on fire"}, status=500)
    client = make_client(server.url, retries=1)
    with pytest.raises(ProviderError) as ei:
        client.get_json("/x")
    assert ei.value.reason == ErrorReason.SERVER_ERROR
    assert "HTTP 500" in str(ei.value)
    assert "database on fire" in str(ei.value)
    assert server.count("/x") == 2


def test_4xx_is_not_retried(server, make_client):
    server.json("/x", {"error": 'No recent data for zone "GB"'}, status=404)
    client = make_client(server.url, retries=3)
    with pytest.raises(ProviderError) as ei:
        client.get_json("/x")
    assert ei.value.reason == ErrorReason.CLIENT_ERROR
    assert 'No recent data for zone "GB"' in str(ei.value)
    assert server.count("/x") == 1


def test_401_is_an_auth_error(server, make_client):
    server.json("/x", {"message": "invalid token"}, status=401)
    with pytest.raises(ProviderError) as ei:
        make_client(server.url).get_json("/x")
    assert ei.value.reason == ErrorReason.AUTH


def test_429_reports_retry_after_without_sleeping(server, make_client):
    server.json("/x", {"error": "slow down"}, status=429, **{"Retry-After": "120"})
    sleeps: list[float] = []
    client = make_client(server.url, retries=3, sleeps=sleeps)
    with pytest.raises(ProviderError) as ei:
        client.get_json("/x")
    assert ei.value.reason == ErrorReason.RATE_LIMITED
    assert ei.value.retry_after_s == 120
    assert sleeps == []
    assert server.count("/x") == 1


def test_retry_after_forms():
    now = datetime(2020, 6, 1, 0, 0, tzinfo=UTC)
    assert parse_retry_after("30", now) == 30
    assert parse_retry_after("Mon, 01 Jun 2020 00:02:00 GMT", now) == 120
    assert parse_retry_after(None, now) == 60
    assert parse_retry_after("soon", now) == 60
    assert parse_retry_after("999999", now) == 3600  # capped
    assert parse_retry_after("Mon, 01 Jun 2020 00:00:00 GMT", datetime(2020, 6, 1, 1, tzinfo=UTC)) == 0


def test_timeout_is_reported_and_not_retried(server, make_client):
    server.route("/slow", server.Reply(200, {"late": True}, delay_s=5.0))
    client = make_client(server.url, timeout_s=0.2, retries=2)
    with pytest.raises(ProviderError) as ei:
        client.get_json("/slow")
    assert ei.value.reason == ErrorReason.TIMEOUT
    assert "timed out after 0.2s" in str(ei.value)
    assert server.count("/slow") == 1


def test_connection_refused_is_retried_then_reported(make_client):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []
    client = make_client(f"http://127.0.0.1:{port}", retries=2, sleeps=sleeps)
    with pytest.raises(ProviderError) as ei:
        client.get_json("/x")
    assert ei.value.reason == ErrorReason.CONNECTION
    assert len(sleeps) == 2


def test_malformed_json(server, make_client):
    server.route("/x", server.Reply(200, b'{"forecast": [1, 2'))
    with pytest.raises(ProviderError) as ei:
        make_client(server.url).get_json("/x")
    assert ei.value.reason == ErrorReason.MALFORMED
    assert "malformed JSON" in str(ei.value)


def test_secrets_are_masked_in_error_text(server, make_client):
    secret = "s3cr3t-t0ken-value"
    server.json("/x", {"error": f"token {secret} is revoked; Authorization: Bearer abc.def"}, status=403)
    client = make_client(server.url)
    client.remember_secret(secret)
    with pytest.raises(ProviderError) as ei:
        client.get_json("/x")
    text = str(ei.value)
    assert secret not in text
    assert "abc.def" not in text
    assert "***" in text


def test_echoed_credentials_are_masked_but_ordinary_words_kept(server, make_client):
    server.json(
        "/x",
        {"error": "use basic authentication; got Authorization: Basic dXNlcjpwYXNz and auth-token=abc123"},
        status=400,
    )
    with pytest.raises(ProviderError) as ei:
        make_client(server.url).get_json("/x")
    text = str(ei.value)
    assert "dXNlcjpwYXNz" not in text
    assert "abc123" not in text
    assert "use basic authentication" in text


def test_retry_policy_delays_are_bounded():
    p = RetryPolicy(max_retries=10, base_delay_s=1.0, max_delay_s=4.0)
    assert [p.delay(n, 1.0) for n in range(5)] == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert p.delay(3, 0.0) == 0.0
