"""The rule for which of a GreenTrainingJob's labels and annotations reach its child and pods."""

from __future__ import annotations

import pytest

from green_operator.api.propagation import excluded, propagated


@pytest.mark.parametrize(
    "key",
    [
        "greentraining.io/region",
        "kopf.greentraining.io/last-handled-configuration",
        "kopf.zalando.org/touch-dummy",
        "app.kubernetes.io/managed-by",
        "kubectl.kubernetes.io/last-applied-configuration",
        "kubectl.kubernetes.io/restartedAt",
        "kueue.x-k8s.io/queue-name",
        "kueue.x-k8s.io/pod-group-name",
        "batch.kubernetes.io/job-name",
        "controller-uid",
        "job-name",
    ],
)
def test_other_machinerys_keys_never_pass(key: str) -> None:
    assert excluded(key)
    assert propagated({key: "x"}) == {}


@pytest.mark.parametrize(
    "key",
    [
        "team",
        "app.kubernetes.io/name",
        "example.com/cost-center",
        "notgreentraining.io/x",
        "greentraining.io.example/x",
    ],
)
def test_everything_else_passes(key: str) -> None:
    assert propagated({key: "v"}) == {key: "v"}


def test_none_is_empty() -> None:
    assert propagated(None) == {}
