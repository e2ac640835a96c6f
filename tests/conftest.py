"""Shared fixtures: the shipped bank, and the reference data in ../shared/data when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data; skips the test (fails under DBTOOLS_REQUIRE_SHARED=1) if absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        reason = f"reference data not found: {path}"
        if os.environ.get("DBTOOLS_REQUIRE_SHARED") == "1":
            pytest.fail(reason + " (DBTOOLS_REQUIRE_SHARED=1)")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def bank():
    from dbtools.bank.store import default_bank_path, load_bank

    return load_bank(default_bank_path())


@pytest.fixture(scope="session")
def engine(bank):
    from dbtools.engine.bank_engine import BankEngine

    return BankEngine(bank, "cpu")
