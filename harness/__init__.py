"""The one harness that the tests and the benchmarks share: the local control plane's access
(`cluster`), processes started and always stopped (`processes`), the operator as a real process
(`operator`), and waiting on a condition instead of sleeping (`waiting`)."""
