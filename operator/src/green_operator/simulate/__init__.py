"""Replay carbon traces and a job list through the planner; compare with a carbon-blind baseline
and a perfect-knowledge oracle. Heavier tools (scipy for the oracle) are imported only here."""
