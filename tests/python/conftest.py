"""Shared fixtures: where the bulkhead binary is, and the anyio backend."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def bulkhead_bin() -> str:
    path = pathlib.Path(os.environ.get("BULKHEAD_BIN", REPO / "target" / "debug" / "bulkhead"))
    assert path.is_file(), f"{path} is missing: run `cargo build --workspace` first"
    return str(path)
