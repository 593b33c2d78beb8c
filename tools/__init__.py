"""Repository maintenance commands (not shipped in the wheel)."""
