"""The committed gRPC client is exactly what the pinned grpcio-tools generate from the committed proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.cluster import REPO

TRAINER = REPO / "trainer-image"
PROTO = "green_trainer/node_agent/podresources_v1/api.proto"
GENERATED = ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py")


def test_the_generated_client_matches_the_proto(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "grpc_tools.protoc", "-I", str(TRAINER / "proto")]
    cmd += [f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}", PROTO]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    committed = TRAINER / "src" / Path(PROTO).parent
    stale = [n for n in GENERATED if (tmp_path / Path(PROTO).parent / n).read_text() != (committed / n).read_text()]
    assert stale == [], f"regenerate with `make podresources`: {stale} differ from the proto"


def test_the_proto_is_the_kubelets_v1_service() -> None:
    text = (TRAINER / "proto" / PROTO).read_text()
    assert "package v1;" in text
    assert 'option go_package = "k8s.io/kubelet/pkg/apis/podresources/v1";' in text
    assert "rpc List(ListPodResourcesRequest) returns (ListPodResourcesResponse) {}" in text
