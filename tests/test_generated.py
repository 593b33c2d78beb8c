"""Generated files (docs tables, CRDs) must match their single source."""

from tools import generate


def test_generated_files_are_fresh():
    assert generate.stale() == [], "run `make generate` and commit the result"
