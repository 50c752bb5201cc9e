"""What every spec shares: the base class, the roles of a suite's tasks, and reading a YAML file
into a spec with every problem named by file and key path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.errors import ConfigError
from harness.util.yaml import load_yaml_file

Role = Literal["target", "forgetting", "bias"]


@dataclass(frozen=True)
class RoleFacts:
    """What a role's delta means wherever it is shown (report, charts, CLI, curves): said once, here."""

    role: Role
    title: str  # the report's name for the role's delta
    good: int  # the sign of a delta that is good news: +1, or -1 where a rise is harm (bias)
    reading: str  # the report's one line on how to read the delta
    trade_off: bool  # part of the learning-versus-forgetting trade-off (the curves' net and best point)


# every role, in the order results are shown
ROLE_FACTS: dict[str, RoleFacts] = {f.role: f for f in (
    RoleFacts("target", "Target gain", +1, "candidate − base on the tuned task", trade_off=True),
    RoleFacts("forgetting", "Forgetting", +1, "candidate − base on general knowledge; below zero = forgotten",
              trade_off=True),
    RoleFacts("bias", "Bias change", -1, "candidate − base bias score; above zero = more stereotyped",
              trade_off=False),
)}
ROLES: tuple[str, ...] = tuple(ROLE_FACTS)


def role_rank(role: str) -> int:
    """A role's place in ROLES (sort key); a name that is no role goes last."""
    return ROLES.index(role) if role in ROLES else len(ROLES)


def refuse_duplicates(what: str, names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what}: {', '.join(dupes)}")


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- loading

T = TypeVar("T", bound=Spec)


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; a missing file, a syntax error or a key given twice names the file and line."""
    return load_yaml_file(path)


def parse_spec(cls: type[T], data: Any, source: str) -> T:
    """Validate `data` as `cls`; every problem becomes `source: key.path: message`."""
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: expected a mapping at the top level, got {type(data).__name__}"])
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling; see harness/config/ for the keys)"
            problems.append(f"{source}: {_key_path(err['loc'])}: {msg}")
        raise ConfigError(problems) from None


def is_local(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or Path(ref).exists()


def resolve_ref(ref: str, base_dir: Path) -> str:
    """A local path becomes absolute (relative to `base_dir`); a hub id stays as it is."""
    if ref.startswith(("/", "~")):
        return str(Path(ref).expanduser())
    if is_local(ref) or (base_dir / ref).exists():
        return str((base_dir / ref).resolve())
    return ref
