"""Dev-only Kubernetes API emulator and pod runner (not shipped in the wheel)."""
