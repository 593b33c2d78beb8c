"""Placeholder: pods -> Experiment status (issue 5)."""
