"""kubernetes_asyncio loaded lazily: the client and config loaders work, the models load only when named."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_client_loads_credentials_without_importing_the_models(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    out = run(
        f"""
        import asyncio, sys
        from green_operator.cli import lean_imports
        assert lean_imports.install()
        from green_operator.controller.kube import load_client

        async def main():
            api = await load_client({str(path)!r})
            print(api.configuration.host, api.configuration.api_key["BearerToken"])
            await api.close()

        asyncio.run(main())
        loaded = [m for m in sys.modules if m.startswith("kubernetes_asyncio.client.models.")]
        print(len(loaded))
        from kubernetes_asyncio import client
        print(client.V1Pod.__name__, client.CoreV1Api.__name__, client.__version__)
        print(len([m for m in sys.modules if m.startswith("kubernetes_asyncio.client.models.")]))
        """
    )
    host, models_before, named, models_after = out.splitlines()
    assert host == "https://127.0.0.1:6443 Bearer abc"
    assert models_before == "0"
    assert named.startswith("V1Pod CoreV1Api ")
    assert int(models_after) >= 1


def test_install_changes_nothing_once_the_package_is_imported() -> None:
    out = run(
        """
        import kubernetes_asyncio.client
        from green_operator.cli import lean_imports
        print(lean_imports.install(), type(kubernetes_asyncio.client).__name__)
        """
    )
    assert out == "False module"
