"""Energy, emissions and savings: what a finished run cost, and what it saved."""
