"""Placeholder: every Kubernetes API call of the operator (issue 5)."""
