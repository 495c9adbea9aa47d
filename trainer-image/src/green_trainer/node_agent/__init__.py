"""The GPU node agent (`green-trainer node-agent`): a DaemonSet that maps pods to GPUs through the
kubelet's PodResources API, applies each pod's power-limit annotation to exactly its GPUs, restores
them when the pod ends (also after its own restart: a state file on the node), and exports per-GPU and
per-pod energy with labels that join dcgm-exporter's. See docs/design/node-agent.md."""
