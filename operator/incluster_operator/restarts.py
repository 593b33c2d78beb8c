"""Whole-experiment restart decisions (``runPolicy.failurePolicy``). Pure: no I/O, no clock.

Why a function of its own: whether a replica's failure restarts every pod, fails the
experiment, or is no failure at all (a preemption) is the rule users most need to read
and test, and it must not depend on how the reconcile round lists or deletes pods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from incluster_operator.api.models import FailurePolicy

#: Exit codes from 128 on are 128 + the number of the signal that killed the process.
SIGNAL_BASE = 128


@dataclass(frozen=True)
class Failure:
    """One failed pod of the current attempt, as the restart rule sees it."""

    pod: str
    exit_code: int | None
    #: The pod carries ``DisruptionTarget=True``: preempted, evicted or its node drained.
    disrupted: bool = False

    def describe(self) -> str:
        code = f"exit code {self.exit_code}" if self.exit_code is not None else "no exit code"
        return f"pod {self.pod} failed ({code}{', disrupted' if self.disrupted else ''})"


@dataclass(frozen=True)
class Verdict:
    """``restart`` every pod as a new attempt, or ``fail`` the experiment, with why."""

    action: Literal["restart", "fail"]
    reason: str
    message: str
    #: Counted against maxRestarts (a disruption is not the job's fault, so it is not).
    counted: bool = True


def retriable(policy: FailurePolicy, exit_code: int | None) -> bool:
    """Whether an exit code restarts the experiment under ``policy``.

    No lists given: codes >= 128 (a signal: OOM kill, preemption, node loss) are retriable,
    like ``restartPolicy: ExitCode``. A pod without an exit code (lost, evicted before
    starting) is retriable: nothing says the program is at fault.
    """
    if exit_code is None:
        return True
    if not policy.retriable_exit_codes and not policy.retriable_signals:
        return exit_code >= SIGNAL_BASE
    if exit_code in policy.retriable_exit_codes:
        return True
    return exit_code > SIGNAL_BASE and (exit_code - SIGNAL_BASE) in policy.retriable_signals


def decide(
    policy: FailurePolicy, failures: Sequence[Failure], restarts_used: int
) -> Verdict | None:
    """The verdict on the current attempt's failed pods; None when none failed.

    A non-retriable failure fails the experiment at once, even beside retriable ones
    (restarting cannot fix it). A disruption restarts without spending a restart.
    """
    if not failures:
        return None
    ordered = sorted(failures, key=lambda f: f.pod)
    for failure in ordered:
        if not failure.disrupted and not retriable(policy, failure.exit_code):
            return Verdict(
                "fail",
                "PodFailed",
                f"{failure.describe()}; the exit code is not retriable under "
                "runPolicy.failurePolicy (retriableExitCodes / retriableSignals)",
            )
    if all(f.disrupted for f in ordered):
        return Verdict(
            "restart",
            "ExperimentRestarting",
            f"{ordered[0].describe()}; restarting every pod (a disruption: not counted)",
            counted=False,
        )
    bound = policy.max_restarts or 0
    first = next(f for f in ordered if not f.disrupted)
    if restarts_used >= bound:
        return Verdict(
            "fail",
            "RestartLimitExceeded",
            f"{first.describe()}; runPolicy.failurePolicy.maxRestarts={bound} restarts are used up",
        )
    return Verdict(
        "restart",
        "ExperimentRestarting",
        f"{first.describe()}; restarting every pod (restart {restarts_used + 1} of {bound})",
    )
