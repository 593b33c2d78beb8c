"""A trainer and its evaluator: the master writes checkpoints, the evaluator scores them.

The evaluator is a replica like any other (its own identity, its own event file, the
same outputs path) but not part of the training cluster, so it neither blocks the
master nor decides the outcome. Here the master waits for the last score before it
exits, so the test sees both; a real trainer would not wait.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from incluster import Experiment, tracking

CHECKPOINTS = 3
TIMEOUT = 60.0


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {path}")
        time.sleep(0.05)


def train(outputs: Path) -> None:
    (outputs / "checkpoints").mkdir(parents=True, exist_ok=True)
    for step in range(1, CHECKPOINTS + 1):
        tmp = outputs / "checkpoints" / f".step-{step}.json"
        tmp.write_text(json.dumps({"step": step, "weight": 1.0 - 1.0 / (step + 1)}))
        tmp.rename(outputs / "checkpoints" / f"step-{step}.json")  # whole files only
        tracking.log_metric("train_loss", 1.0 / step, step=step)
    _wait_for(outputs / "scores" / f"step-{CHECKPOINTS}.json")
    print("trainer: every checkpoint was scored", flush=True)


def evaluate(outputs: Path) -> None:
    (outputs / "scores").mkdir(parents=True, exist_ok=True)
    for step in range(1, CHECKPOINTS + 1):
        checkpoint = outputs / "checkpoints" / f"step-{step}.json"
        _wait_for(checkpoint)
        weight = json.loads(checkpoint.read_text())["weight"]
        score = 1.0 - abs(1.0 - weight)
        tracking.log_metric("eval_accuracy", score, step=step)
        (outputs / "scores" / f"step-{step}.json").write_text(json.dumps({"accuracy": score}))
        print(f"evaluator: step {step} accuracy {score:.3f}", flush=True)


def main() -> None:
    experiment = Experiment()
    outputs = Path(experiment.get_outputs_path())
    if experiment.get_task_info()["type"] == "evaluator":
        evaluate(outputs)
    else:
        train(outputs)


if __name__ == "__main__":
    main()
