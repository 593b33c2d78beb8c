"""Errors raised while turning a pod spec into local processes."""

from __future__ import annotations


class PodSpecError(ValueError):
    """A pod cannot run locally; the message names the field and what to change.

    ``retriable`` marks faults that can heal without a new spec (a ConfigMap or Secret
    not created yet): a kubelet keeps such a pod waiting with ``reason``, and so do we.
    """

    def __init__(
        self,
        field: str,
        message: str,
        *,
        reason: str = "CreateContainerConfigError",
        retriable: bool = False,
    ) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = reason
        self.retriable = retriable
