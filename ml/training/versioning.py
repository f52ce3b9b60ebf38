"""Version strings ``v{major}.{minor}.{patch}-{YYYYMMDD}`` and atomic artifact files.

major = the domain's schema version; minor goes up when the algorithm or the feature set
changes from the previous version of the scope; patch goes up on every retrain of the same
algorithm and features.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import joblib

__all__ = [
    "parse_version",
    "next_version",
    "artifact_path",
    "write_artifact",
    "to_bytes",
    "load_model",
]

_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)-(\d{8})$")


def parse_version(version: str) -> tuple[int, int, int, str]:
    match = _VERSION.match(version)
    if not match:
        raise ValueError(f"not a model version: {version!r}")
    major, minor, patch, day = match.groups()
    return int(major), int(minor), int(patch), day


def next_version(previous: str | None, *, major: int, same_model: bool, today: date) -> str:
    """The version after ``previous`` (the latest version of the scope, or None)."""
    stamp = today.strftime("%Y%m%d")
    if previous is None:
        return f"v{major}.0.0-{stamp}"
    p_major, p_minor, p_patch, _ = parse_version(previous)
    if p_major != major:
        return f"v{major}.0.0-{stamp}"
    if same_model:
        return f"v{major}.{p_minor}.{p_patch + 1}-{stamp}"
    return f"v{major}.{p_minor + 1}.0-{stamp}"


def artifact_path(model_dir: Path, domain: str, scope: str, version: str) -> Path:
    return Path(model_dir) / domain / scope / f"model_{version}.pkl"


def write_artifact(obj: Any, path: Path) -> Path:
    """joblib-dump ``obj`` to ``path`` atomically (temp file in the same folder + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            joblib.dump(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def to_bytes(obj: Any) -> bytes:
    """The joblib serialisation of ``obj`` (for artifacts kept in the database)."""
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


def load_model(store: Any, domain: str, scope: str, version: str) -> Any:
    """Load a version's model from its file, or from the database when it was stored there."""
    row = store.models.get_version(domain, scope, version)
    if row is None:
        raise KeyError(f"unknown version {version!r} for {domain}/{scope}")
    if row.artifact_path:
        return joblib.load(row.artifact_path)
    blob = store.models.get_artifact(domain, scope, version)
    if blob is None:
        raise FileNotFoundError(f"version {version} has no artifact")
    return joblib.load(io.BytesIO(blob))
