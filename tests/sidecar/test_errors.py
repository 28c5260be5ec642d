"""Which upstream failures are retried on the same target and which fail over (``errors.py``)."""

from __future__ import annotations

import pytest

from aiguillage.sidecar.errors import (
    AttemptError,
    ConnectFailed,
    SidecarError,
    TimedOut,
    UpstreamProtocol,
    UpstreamStatus,
)


@pytest.mark.parametrize(
    ("status", "retryable", "failover"),
    [
        (500, True, True),
        (502, True, True),
        (503, True, True),
        (429, True, True),
        (408, True, True),
        (409, True, True),
        (401, False, True),  # a bad key here says nothing about the next provider
        (403, False, True),
        (400, False, False),  # the request itself is wrong: relay, do not shop around
        (404, False, False),
        (413, False, False),
        (422, False, False),
    ],
)
def test_status_classification(status: int, retryable: bool, failover: bool) -> None:
    err = UpstreamStatus(status, b"{}", "application/json")
    assert (err.retryable, err.failover) == (retryable, failover)
    assert err.outcome == "http_error"
    assert str(status) in str(err)


def test_transport_failures_retry_and_fail_over() -> None:
    for cls, outcome in (
        (ConnectFailed, "connect_error"),
        (TimedOut, "timeout"),
        (UpstreamProtocol, "protocol_error"),
    ):
        err = cls("x")
        assert isinstance(err, AttemptError)
        assert isinstance(err, SidecarError)
        assert (err.retryable, err.failover, err.outcome) == (True, True, outcome)
