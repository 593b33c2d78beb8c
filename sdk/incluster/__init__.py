"""incluster: the in-pod SDK. Read your experiment's context and track it.

Everything is imported lazily: ``import incluster`` costs a few milliseconds, so the
SDK can be imported at the top of any training script.

    from incluster import Experiment, tracking
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> "module:attribute" (attribute empty for a submodule)
_LAZY = {
    "Experiment": "incluster.experiment:Experiment",
    "tracking": "incluster.tracking:",
    "wait_for_peers": "incluster.peers:wait_for_peers",
    "read_events": "incluster.tracking.events:read_events",
    "ContextError": "incluster.errors:ContextError",
    "jax_initialize": "incluster.frameworks:jax_initialize",
}

__all__ = [
    "ContextError",
    "Experiment",
    "__version__",
    "jax_initialize",
    "read_events",
    "tracking",
    "wait_for_peers",
]

if TYPE_CHECKING:  # pragma: no cover
    from incluster import tracking
    from incluster.errors import ContextError
    from incluster.experiment import Experiment
    from incluster.frameworks import jax_initialize
    from incluster.peers import wait_for_peers
    from incluster.tracking.events import read_events


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'incluster' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    value = getattr(module, attr) if attr else module
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
