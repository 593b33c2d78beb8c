"""Names and labels of an experiment's child objects, shared by validation and rendering.

Validation must check the very names rendering produces (a pod hostname over 63
characters is refused by the API server only after some pods exist), so both import
them from here.
"""

from __future__ import annotations

import re
from typing import Final

#: Kubernetes' DNS-1123 label; pod hostnames and label values must match it.
DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: Kubernetes' DNS-1035 label; Service names must match it (first character a letter).
DNS_1035_LABEL: Final = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_LABEL_MAX: Final = 63

LABEL_PREFIX: Final = "incluster.dev/"
LABEL_EXPERIMENT: Final = LABEL_PREFIX + "experiment"
LABEL_EXPERIMENT_UID: Final = LABEL_PREFIX + "experiment-uid"
LABEL_REPLICA_TYPE: Final = LABEL_PREFIX + "replica-type"
LABEL_REPLICA_INDEX: Final = LABEL_PREFIX + "replica-index"
#: Which whole-experiment attempt a pod belongs to (status.attempt when it was created).
LABEL_ATTEMPT: Final = LABEL_PREFIX + "attempt"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "incluster"

#: Volume names the operator adds to pods (user volumes must not reuse them).
VOLUME_CONTEXT: Final = "incluster-context"
VOLUME_OUTPUTS: Final = "incluster-outputs"
VOLUME_DATA_PREFIX: Final = "incluster-data-"


def service_name(experiment: str) -> str:
    """The headless Service; also every pod's ``subdomain``."""
    return experiment


def pod_name(experiment: str, task_type: str, index: int) -> str:
    """A replica's pod name, equal to its ``hostname``."""
    return f"{experiment}-{task_type}-{index}"


def context_configmap_name(experiment: str) -> str:
    """The ConfigMap holding ``context.json`` and ``cluster.json``."""
    return f"{experiment}-context"


def selector(experiment: str, uid: str) -> dict[str, str]:
    """Labels selecting exactly this experiment's pods (the uid tells apart a re-creation)."""
    return {LABEL_EXPERIMENT: experiment, LABEL_EXPERIMENT_UID: uid}


def label_selector(experiment: str, uid: str) -> str:
    """``selector()`` as the string the API's ``labelSelector`` parameter takes."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector(experiment, uid).items()))
