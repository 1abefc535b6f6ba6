"""The package passes ruff with the rules in pyproject.toml (pyflakes,
pycodestyle, import order): unused imports and names, undefined names and
long lines fail here rather than in review."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_passes_ruff():
    pytest.importorskip("ruff", reason="ruff is in the test extra: pip install -e '.[test]'")
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    assert ruff, "the ruff package is installed but its executable is not on PATH"
    done = subprocess.run([ruff, "check", "--no-cache", "nn_gpu"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
