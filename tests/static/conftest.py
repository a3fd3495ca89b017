"""Shared helpers for the static checks of docker/ and ecs-task-defs/ (no Docker engine, no AWS account needed).

Run:  python3 -m venv .venv && .venv/bin/pip install -r tests/static/requirements.txt && .venv/bin/pytest tests/static
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
TASK_DEFS = REPO / "ecs-task-defs"
CONFIG_PATH_IN_IMAGE = "/etc/oidc-sidecar/config.toml"

# Which example sidecar config each task definition runs with.
TASK_DEF_CONFIG = {
    "ui-service.json": "config/ecs-ui.toml",
    "api-service.json": "config/ecs-api.toml",
}

# Names that must never carry a literal value in an image or a task definition's `environment`.
SECRET_NAME = re.compile(r"SECRET|KEY|PASSWORD|PASSWD|PASSPHRASE|TOKEN|CREDENTIAL|REDIS_URL|AUTH", re.IGNORECASE)


# === config files ===

def load_config(rel: str) -> dict:
    with open(REPO / rel, "rb") as f:
        return tomllib.load(f)


_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


def humantime_seconds(text: str) -> float:
    """`10s`, `5m`, `1h 30m`, `250ms` -> seconds (the subset of humantime the configs use)."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s+", "", text.strip().lower()):
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def listen_port(cfg: dict) -> int:
    listen = cfg.get("server", {}).get("listen", "0.0.0.0:80")
    return int(listen.rsplit(":", 1)[1])


def health_path(cfg: dict) -> str:
    return cfg.get("server", {}).get("health_path", "/healthz")


def shutdown_budget(cfg: dict) -> float:
    server = cfg.get("server", {})
    return humantime_seconds(server.get("grace_period", "10s")) + humantime_seconds(
        server.get("shutdown_timeout", "5s")
    )


def env_refs(value) -> set[str]:
    """Every ${VAR} referenced anywhere in a parsed TOML value."""
    found: set[str] = set()
    if isinstance(value, str):
        found.update(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", value))
    elif isinstance(value, dict):
        for v in value.values():
            found |= env_refs(v)
    elif isinstance(value, list):
        for v in value:
            found |= env_refs(v)
    return found


# === Dockerfile ===

@dataclass
class Instruction:
    line: int
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> tuple[list[Instruction], list[Stage]]:
    """Logical instructions (continuations joined, comments dropped) and the stages they belong to."""
    instructions: list[Instruction] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by Docker too
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        keyword, _, args = buf.partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))
        buf = ""
    if buf.strip():
        keyword, _, args = buf.partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))

    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            base = words[0]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(base=base, name=name, line=ins.line))
        elif stages:
            stages[-1].instructions.append(ins)
    return instructions, stages


@pytest.fixture(scope="session")
def dockerfile() -> tuple[list[Instruction], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="session")
def example_configs() -> dict[str, dict]:
    return {rel: load_config(rel) for rel in sorted(set(TASK_DEF_CONFIG.values()))}


@pytest.fixture(scope="session")
def task_defs() -> dict[str, dict]:
    out = {}
    for path in sorted(TASK_DEFS.glob("*.json")):
        out[path.name] = json.loads(path.read_text())
    return out
