"""A test double of the kubelet's PodResources v1 server: the real generated proto and gRPC service,
over a unix socket, answering List from allocations the test sets."""

from __future__ import annotations

import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from green_trainer.node_agent.podresources_v1 import api_pb2, api_pb2_grpc

# (namespace, pod) -> container -> resource -> device IDs
Allocations = dict[tuple[str, str], dict[str, dict[str, list[str]]]]


class FakeKubelet(api_pb2_grpc.PodResourcesListerServicer):  # type: ignore[misc]
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self._lock = threading.Lock()
        self._pods: Allocations = {}
        self.list_calls = 0
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        api_pb2_grpc.add_PodResourcesListerServicer_to_server(self, self._server)
        self._server.add_insecure_port(f"unix://{socket_path}")

    def start(self) -> FakeKubelet:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)

    def set_pod(self, namespace: str, pod: str, containers: dict[str, dict[str, list[str]]]) -> None:
        with self._lock:
            self._pods[(namespace, pod)] = containers

    def remove_pod(self, namespace: str, pod: str) -> None:
        with self._lock:
            self._pods.pop((namespace, pod), None)

    def List(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC method's name
        with self._lock:
            self.list_calls += 1
            pods = [
                api_pb2.PodResources(
                    name=name,
                    namespace=namespace,
                    containers=[
                        api_pb2.ContainerResources(
                            name=container,
                            devices=[
                                api_pb2.ContainerDevices(resource_name=resource, device_ids=ids)
                                for resource, ids in resources.items()
                            ],
                        )
                        for container, resources in containers.items()
                    ],
                )
                for (namespace, name), containers in self._pods.items()
            ]
        return api_pb2.ListPodResourcesResponse(pod_resources=pods)
