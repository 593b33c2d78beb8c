"""Print this replica's run context and record it under the experiment's outputs.

The examples' Experiments run this script in every replica: it shows what the operator
injected (identity, cluster, TF_CONFIG, paths, hyperparameters) and leaves one file per
replica in the outputs directory, ``context-<type>-<index>.json``, which tests can read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from incluster import context


def main() -> None:
    task = context.get_task_info()
    record = {
        "task": task,
        "cluster": context.get_cluster_def(),
        "tf_config": context.get_tf_config(),
        "experiment": context.get_experiment_info(),
        "declarations": context.get_declarations(),
        "log_level": context.get_log_level(),
        "outputs_path": context.get_outputs_path(),
        "data_paths": context.get_data_paths(),
        "outputs_refs_paths": context.get_outputs_refs_paths(),
        "framework_env": {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("MASTER_", "PET_", "JAX_")) or k in ("WORLD_SIZE", "RANK")
        },
    }
    text = json.dumps(record, indent=2, sort_keys=True)
    print(text)
    outputs = Path(record["outputs_path"])
    outputs.mkdir(parents=True, exist_ok=True)
    target = outputs / f"context-{task['type']}-{task['index']}.json"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(target)


if __name__ == "__main__":
    main()
