"""Where the project's files are, and how to run the SAM venv's tools offline."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
SAM_VENV_BIN = REPO_ROOT / ".venv-sam" / "bin"
BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"

# SAM and cfn-lint run offline: a region and dummy credentials keep them from looking for real ones.
SAM_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
    "SAM_CLI_TELEMETRY": "0",
}


@dataclass(frozen=True)
class SamTools:
    """The SAM venv's executables (aws-sam-cli, cfn-lint, and its Python with samtranslator)."""

    bin_dir: Path = SAM_VENV_BIN

    def missing(self) -> list[str]:
        return [tool for tool in ("sam", "cfn-lint", "python") if not (self.bin_dir / tool).exists()]

    def run(self, tool: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run one of the tools from the repository root, offline; never raises on a non-zero exit."""
        return subprocess.run(
            [str(self.bin_dir / tool), *args],
            cwd=REPO_ROOT,
            env={**os.environ, **SAM_ENV},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def script(name: str) -> ModuleType:
    """A script in scripts/ (``gen_layer_requirements``) loaded as a module, so tests call its functions."""
    path = REPO_ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
