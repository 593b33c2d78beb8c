"""Read a mounted data store by name, and record which data the run saw.

``get_data_paths()`` maps each store named in ``spec.data`` to where it is mounted
(read-only); ``log_data_ref`` records a content hash, so two runs can be compared on
the data they trained on, not only on its name.
"""

from __future__ import annotations

from pathlib import Path

from incluster import Experiment, tracking


def main() -> None:
    store = Path(Experiment.get_data_paths()["mnist"])
    files = sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file())
    digest = tracking.log_data_ref(store, "mnist")
    print(f"data store mnist at {store}: {len(files)} file(s), {digest}", flush=True)
    tracking.log_outputs(files=len(files))


if __name__ == "__main__":
    main()
