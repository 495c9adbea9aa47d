"""Kueue front-end: the carbon AdmissionCheck controller (`greentraining.io/carbon`).

`workload`, `inputs` and `admission` are pure (a Workload in, the check's state out, using the same
planner and capacity ledger as GreenTrainingJobs); `controller` does the watching and writing.
See docs/design/kueue-admission.md.
"""
