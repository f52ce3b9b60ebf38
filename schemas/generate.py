"""Generate the JSON Schema file of every event model into the ``schemas/`` folder."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.events import EVENT_MODELS

__all__ = ["SCHEMA_DIR", "render", "write_all"]

SCHEMA_DIR = Path(__file__).resolve().parent


def render(name: str) -> str:
    """The JSON Schema text of one event model, stable across runs."""
    schema = EVENT_MODELS[name].model_json_schema()
    schema["$id"] = f"https://millrace.local/schemas/{name}.schema.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_all(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write ``<name>.schema.json`` for every event; return the paths written."""
    paths = []
    for name in EVENT_MODELS:
        path = directory / f"{name}.schema.json"
        path.write_text(render(name), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_all():
        print(written)
