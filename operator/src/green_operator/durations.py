"""Go-style durations ("90m", "4h", "1h30m") as users write them in specs and configuration."""

from .carbon.durations import format_duration, parse_duration

__all__ = ["format_duration", "parse_duration"]
