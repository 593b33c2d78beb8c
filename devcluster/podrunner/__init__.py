"""The dev cluster's kubelet stand-in: runs the emulator's pods as local processes.

It watches pods through the Kubernetes API (so it works against the emulator, or any API
server whose pods nobody else runs), plans each pod with the product's
``incluster_operator.local`` machinery, runs it, and patches the pod's status as a
kubelet would. Dev-only: never shipped, never imported by product code.
"""

from devcluster.podrunner.runner import PodRunner

__all__ = ["PodRunner"]
