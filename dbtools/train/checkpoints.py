"""Resumable training state on disk: one safetensors file per batched run, in a folder.

A run's states are tied to a fingerprint of everything that determines its result (data
checksums, specs, options); `--resume` refuses states written for a different run, so a
resumed run always ends where the uninterrupted one would. Files are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from dbtools.io.atomic import atomic_path
from dbtools.errors import DbtoolsError


def fingerprint(doc) -> str:
    """SHA-256 of a JSON-serialisable description of a run."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


class Checkpoints:
    """States of a run's batched groups, keyed by name, in `folder`."""

    def __init__(self, folder: str | Path, run_fingerprint: str):
        self.folder = Path(folder)
        self.fingerprint = run_fingerprint

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.safetensors"

    def exists(self) -> bool:
        return self.folder.is_dir() and any(self.folder.glob("*.safetensors"))

    def check(self) -> None:
        """Fail if the folder holds states of another run."""
        for path in sorted(self.folder.glob("*.safetensors")):
            if self._read_meta(path).get("fingerprint") != self.fingerprint:
                raise DbtoolsError(f"{self.folder}: the saved state is from a different run (data, spec or "
                                   "options changed); remove the folder or run without --resume")

    def _read_meta(self, path: Path) -> dict:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return f.metadata() or {}
        except (SafetensorError, OSError, ValueError) as e:
            raise DbtoolsError(f"{path}: unreadable checkpoint ({e}); remove it and rerun") from None

    def load(self, key: str) -> dict | None:
        """The saved state of `key`, or None if there is none."""
        from safetensors import safe_open

        path = self._path(key)
        if not path.exists():
            return None
        meta = self._read_meta(path)
        if meta.get("fingerprint") != self.fingerprint:
            raise DbtoolsError(f"{path}: checkpoint of a different run; remove {self.folder} or run without --resume")
        state = json.loads(meta["state"])
        with safe_open(str(path), framework="pt") as f:
            state["tensors"] = {k: f.get_tensor(k) for k in f.keys()}
        return state

    def save(self, key: str, state: dict) -> None:
        from safetensors.torch import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        rest = {k: v for k, v in state.items() if k != "tensors"}
        with atomic_path(self._path(key)) as tmp:
            save_file(state["tensors"], str(tmp),
                      metadata={"fingerprint": self.fingerprint, "state": json.dumps(rest)})

    def clear(self) -> None:
        if self.folder.is_dir():
            shutil.rmtree(self.folder)

