"""Read an earlier experiment's outputs through ``outputsRefs``.

Each ref is mounted read-only at the path ``get_outputs_refs_paths()`` lists, and it
is one run of that experiment: the one that was current when this run started (under
the operator, recorded in ``status.outputsRefsRuns``; under ``incluster run``, the
latest run in the same outputs directory).
"""

from __future__ import annotations

import json
from pathlib import Path

from incluster import Experiment, tracking


def main() -> None:
    (ref,) = Experiment.get_outputs_refs_paths()["experiments"]
    earlier = json.loads((Path(ref) / "context-master-0.json").read_text())
    run = earlier["experiment"]["experiment_uuid"]
    print(f"read {ref}: run {run} of {earlier['experiment']['experiment_name']}", flush=True)
    tracking.log_inputs(reference_run=run)


if __name__ == "__main__":
    main()
