"""Green trainer: wraps a training command with GPU power limits, energy metering and a report."""

__version__ = "0.1.0"
