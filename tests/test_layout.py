"""Architecture rule: ml/ is pure Python and imports neither faust nor fastapi."""

import ast
from pathlib import Path

ML = Path(__file__).resolve().parents[1] / "ml"
FORBIDDEN = {"faust", "fastapi", "streams", "api", "uvicorn", "starlette"}


def test_ml_does_not_import_adapters() -> None:
    offenders = []
    for path in ML.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders


def test_code_passes_ruff() -> None:
    import subprocess
    import sys

    root = ML.parent
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--quiet", str(root)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
