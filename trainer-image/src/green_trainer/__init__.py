"""Green trainer: wraps a training command with GPU power limits, energy metering and a report.

Command line: `green-trainer run -- <command> [args]` (green_trainer.cli). For training loops:
`from green_trainer import progress; progress.report(samples=..., steps=..., tokens=...)`.
The exit report's JSON Schema ships as green_trainer.report.SCHEMA_PATH.
"""

__version__ = "0.1.0"
