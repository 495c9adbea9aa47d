"""Client of the kubelet's PodResources v1 gRPC API (unix socket), and the flattening of its answer.

v1 has List, Get and GetAllocatableResources but no Watch, so the agent polls List. The kubelet
rate-limits the socket (100 requests/s, burst 10), far above one List per poll interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc

from green_trainer.node_agent.podresources_v1 import api_pb2, api_pb2_grpc


@dataclass(frozen=True)
class ContainerDevices:
    """Devices of one resource that the kubelet allocated to one container."""

    namespace: str
    pod: str
    container: str
    resource: str
    device_ids: tuple[str, ...]


def flatten(response: Any) -> list[ContainerDevices]:
    """One row per (pod, container, resource) with devices; pods without devices give none (pure)."""
    rows: list[ContainerDevices] = []
    for pod in response.pod_resources:
        for container in pod.containers:
            for devices in container.devices:
                if devices.device_ids:
                    rows.append(
                        ContainerDevices(
                            pod.namespace, pod.name, container.name, devices.resource_name, tuple(devices.device_ids)
                        )
                    )
    return rows


class PodResourcesClient:
    """List() over the kubelet's socket; raises grpc.RpcError when the kubelet does not answer."""

    def __init__(self, socket_path: str, timeout_seconds: float = 5.0) -> None:
        self._channel = grpc.insecure_channel(f"unix://{socket_path}")
        self._stub: Any = api_pb2_grpc.PodResourcesListerStub(self._channel)  # type: ignore[no-untyped-call]
        self._timeout = timeout_seconds

    def list(self) -> list[ContainerDevices]:
        return flatten(self._stub.List(api_pb2.ListPodResourcesRequest(), timeout=self._timeout))

    def close(self) -> None:
        self._channel.close()
