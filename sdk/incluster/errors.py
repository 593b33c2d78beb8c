"""Errors the SDK raises on purpose."""

from __future__ import annotations


class ContextError(ValueError):
    """The run context is broken: the message names the variable or file and the fault.

    Raised instead of falling back to a default, because a silent default would make a
    distributed job train as a single replica (or write to the wrong place) unnoticed.
    """
