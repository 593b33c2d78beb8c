"""Placeholder: filled by the operator-core work (issue 5)."""
