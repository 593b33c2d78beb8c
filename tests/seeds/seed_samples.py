# ruff: noqa: E402, I001 - the pages' import lines stay where the pages put them
"""The two seed pages' samples, run as one replica's program (tests/seeds/test_seed_samples.py).

Each sample is the page's code with only its import line changed; marked ``# was:``.
The prelude defines what the pages leave to the reader (``X``, ``y``, ``file_path``,
``dir_path``, ``accuracy_mean``, the ``OPTIONAL`` placeholders). Afterwards every
getter and env var the pages document is written to a report in the outputs path.
"""

import json
import os
import tempfile
import time
from array import array
from pathlib import Path

# --- prelude: the names the pages leave to the reader -------------------------------------
scratch = Path(tempfile.mkdtemp(prefix="seed-"))
X = array("d", [0.1, 0.2, 0.3, 0.4])  # a data set: anything with the buffer protocol
y = array("q", [0, 1])
accuracy_mean, accuracy_std = 0.93, 0.02
me = json.loads(os.environ["INCLUSTER_TASK_INFO"])
file_path = scratch / f"model-{me['type']}-{me['index']}.h5"
file_path.write_bytes(b"weights")
dir_path = scratch / f"checkpoints-{me['type']}-{me['index']}"
(dir_path / "epoch-1").mkdir(parents=True)
(dir_path / "epoch-1" / "state.bin").write_bytes(b"state")
OPTIONAL = None  # seed 002 writes step=OPTIONAL, timestamp=OPTIONAL

# --- seed 000, "Tracking In-Cluster" ----------------------------------------------------------
from incluster import Experiment  # was: from polyaxon_client.tracking import Experiment

experiment = Experiment()
experiment.log_data_ref(data=X, data_name="dataset_X")
experiment.log_data_ref(data=y, data_name="dataset_y")
experiment.log_metrics(accuracy_mean=accuracy_mean, accuracy_std=accuracy_std)
# If you are using a cloud storage
experiment.log_output(file_path)
experiment.log_outputs(dir_path)

experiment.log_metrics(step=1000, loss=0.01, accuracy=0.97)

report = {
    "get_declarations": experiment.get_declarations(),
    "get_log_level": experiment.get_log_level(),
    "get_outputs_path": experiment.get_outputs_path(),
    "get_outputs_refs_paths": experiment.get_outputs_refs_paths(),
    "get_data_paths": experiment.get_data_paths(),
    "get_cluster_def": experiment.get_cluster_def(),
    "get_tf_config": experiment.get_tf_config(),
    "get_experiment_info": experiment.get_experiment_info(),
    "get_task_info": experiment.get_task_info(),
}
try:  # the page's `client = experiment.client`; `incluster run` has no API to reach
    client = experiment.client
    report["client"] = type(client).__name__
except Exception as exc:
    report["client"] = f"unavailable: {exc}"
experiment.get_tf_config(envvar="TF_CONFIG_FROM_GETTER")
report["env"] = {
    name: os.environ.get(name)
    for name in (
        "POLYAXON_CLUSTER",
        "POLYAXON_TASK_INFO",
        "POLYAXON_EXPERIMENT_INFO",
        "POLYAXON_DECLARATIONS",
        "POLYAXON_LOG_LEVEL",
        "POLYAXON_RUN_OUTPUTS_PATH",
        "POLYAXON_REFS_OUTPUTS_PATHS",
        "POLYAXON_RUN_DATA_PATHS",
        "TF_CONFIG_FROM_GETTER",
    )
}

# --- seed 002, "Tracking in-cluster" ----------------------------------------------------------
from random import random, randint

from incluster.schemas import V1ArtifactKind  # was: from polyaxon.schemas import V1ArtifactKind
from incluster import tracking  # was: from polyaxon import tracking

if __name__ == "__main__":
    # No need to specify anything, a context is provided in-cluster
    tracking.init()

    # Log additional parameter
    tracking.log_inputs(param1=randint(0, 100))

    # Log additional tags
    tracking.log_tags(["foo", "bar"])

    # Log a single metric
    tracking.log_metric(name="metric1", value=random(), step=OPTIONAL, timestamp=OPTIONAL)
    # Log multiple metrics at once
    tracking.log_metrics(metric2=random(), metric3=random(), step=OPTIONAL, timestamp=OPTIONAL)

    # Log a final results
    tracking.log_outputs(res1=randint(0, 100), res2="test value")

    # Save the artifact
    asset_path = tracking.get_outputs_path("test.txt")
    with open(asset_path, "w") as f:
        f.write("Artifact content.")
    # Track the lineage Name will default to test
    tracking.log_artifact_ref(path=asset_path, kind=V1ArtifactKind.FILE)

    # Save a second artifact
    asset_path = tracking.get_outputs_path("file.csv")
    with open(asset_path, "w") as f:
        f.write("Artifact content.")
    # Track the with a different name
    tracking.log_artifact_ref(path=asset_path, kind=V1ArtifactKind.CSV, name="my-csv")

    # --- the report, written where the run's outputs go (uploaded at the end) -------------
    name = f"report-{me['type']}-{me['index']}.json"
    Path(tracking.get_outputs_path(name)).write_text(json.dumps(report))
    tracking.end()  # uploads the rest of the outputs path

    # --- harness: the master decides the run, so it leaves last (the runner stops the
    # others once it has exited, as the operator does in a cluster) --------------------
    done = Path(os.environ["SEED_DONE_DIR"])
    (done / f"{me['type']}-{me['index']}").write_text("done")
    if me["type"] == "master":
        deadline = time.monotonic() + 120
        while len(list(done.iterdir())) < int(os.environ["SEED_REPLICAS"]):
            if time.monotonic() > deadline:
                raise SystemExit("the other replicas did not finish within 120 s")
            time.sleep(0.05)
