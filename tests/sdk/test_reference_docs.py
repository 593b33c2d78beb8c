"""docs/context.md is generated from the contract; it must name every env var there."""

from pathlib import Path

from incluster import contract


def test_reference_docs_name_every_contract_env_var():
    text = (Path(__file__).resolve().parents[2] / "docs" / "context.md").read_text()
    names = [
        v
        for k, value in vars(contract).items()
        if k.startswith("ENV_") and k != "ENV_PREFIX"
        for v in (value if isinstance(value, tuple) else (value,))
    ]
    assert len(names) > 20
    assert [n for n in names if f"`{n}`" not in text] == []
