"""Static checks of docker/Dockerfile (no Docker engine needed): base image, user, port,
config file, and that every COPY source exists and survives .dockerignore."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from bridge.config import check_file

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        word, _, rest = text.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends in a continuation line"
    return out


def stages(items: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for item in items:
        if item[0] == "FROM":
            out.append([])
        assert out, "an instruction comes before the first FROM"
        out[-1].append(item)
    return out


def args_of(rest: str) -> list[str]:
    """Arguments of an instruction in exec (JSON) or shell form."""
    if rest.startswith("["):
        return [str(a) for a in json.loads(rest)]
    return shlex.split(rest)


def copy_sources(rest: str) -> list[str] | None:
    """The context paths a COPY/ADD reads; None for a copy from another stage."""
    words = args_of(rest)
    if any(w.startswith("--from=") for w in words):
        return None
    words = [w for w in words if not w.startswith("--")]
    return words[:-1]


def _pattern(glob: str) -> re.Pattern[str]:
    parts = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            parts.append(".*")
            i += 2
        elif glob[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(parts) + r"\Z")


def ignored(path: str, rules: list[str]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents wins."""
    pieces = path.strip("/").split("/")
    prefixes = ["/".join(pieces[: n + 1]) for n in range(len(pieces))]
    excluded = False
    for rule in rules:
        negate = rule.startswith("!")
        glob = rule[1:] if negate else rule
        pattern = _pattern(glob.strip().strip("/"))
        if any(pattern.match(p) for p in prefixes):
            excluded = not negate
    return excluded


def dockerignore_rules() -> list[str]:
    if not DOCKERIGNORE.exists():
        return []
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


ITEMS = instructions(DOCKERFILE)
FINAL = stages(ITEMS)[-1]


def test_every_stage_uses_a_pinned_python_311_image() -> None:
    images = [args_of(rest)[0] for word, rest in ITEMS if word == "FROM"]
    assert images
    for image in images:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image), (
            image
        )


def test_runs_as_a_user_that_is_not_root() -> None:
    users = [rest for word, rest in FINAL if word == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_exposes_the_bridge_port() -> None:
    ports = [p for word, rest in FINAL if word == "EXPOSE" for p in rest.split()]
    assert "1430" in ports or "1430/tcp" in ports


def test_the_config_it_serves_with_is_in_the_repo_and_valid() -> None:
    command = [a for word, rest in FINAL if word in ("ENTRYPOINT", "CMD") for a in args_of(rest)]
    assert "serve" in command
    config = command[command.index("--config") + 1]
    sources = {
        args_of(rest)[-1]: copy_sources(rest) for word, rest in FINAL if word in ("COPY", "ADD")
    }
    assert config in sources, f"{config} is not copied into the image"
    source = sources[config]
    assert source is not None and len(source) == 1
    path = ROOT / source[0]
    assert path.is_file()
    assert check_file(path) == []


@pytest.mark.parametrize(
    "source",
    sorted(
        {src for word, rest in ITEMS if word in ("COPY", "ADD") for src in copy_sources(rest) or []}
    ),
)
def test_copy_source_exists_in_the_build_context(source: str) -> None:
    assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    assert not ignored(source, dockerignore_rules()), f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_the_context_small() -> None:
    rules = dockerignore_rules()
    for path in (".venv", ".git", "tests", "bench/out", "bridge/__pycache__"):
        assert ignored(path, rules), f"{path} would be sent to the Docker daemon"
