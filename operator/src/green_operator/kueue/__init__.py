"""Kueue front-ends: the carbon AdmissionCheck controller (`greentraining.io/carbon`) and MultiKueue's
external dispatcher (regions as worker clusters).

`workload`, `inputs`, `admission`, `accounting`, `multikueue` and `dispatch` are pure (a Workload in,
the check's state or the dispatch out, using the same planner and capacity ledger as
GreenTrainingJobs); `controller` and `dispatcher` do the watching and writing.
See docs/design/kueue-admission.md.
"""
