"""Placeholder: thin kopf handlers (issue 5)."""
