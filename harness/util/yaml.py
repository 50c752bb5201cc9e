"""The one YAML loader of the harness: safe, and a key given twice in a mapping is an error.

PyYAML keeps the last of two equal keys without a word, so a second `gates:` in a config or a
second `extra_metrics:` in a suite entry would silently drop the first. Every YAML file the
harness reads (configs, suites, task YAML) goes through `load_yaml_file` or `load_yaml_text`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError

# libyaml's parser where it is installed (task folders hold many files); the constructor,
# where duplicates are caught, is PyYAML's Python SafeConstructor either way
_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping gives the same key twice."""

    def __init__(self, key: Any, line: int, first_line: int):
        super().__init__(None, None, f"key '{key}' given twice", None)
        self.key, self.line, self.first_line = key, line, first_line


class StrictLoader(_Base):  # type: ignore[misc, valid-type]
    """A safe loader whose mappings refuse a key given twice (merge keys `<<` may still be
    overridden, as YAML intends)."""

    refuse_duplicates = True

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict:
        if self.refuse_duplicates and isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in seen:
                        raise DuplicateKeyError(key, key_node.start_mark.line + 1, seen[key] + 1)
                except TypeError:  # an unhashable key: SafeConstructor says so below
                    continue
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _loader(functions: Callable[[str], Any] | None, duplicates: bool) -> type[StrictLoader]:
    if functions is None and not duplicates:
        return StrictLoader

    class TaskLoader(StrictLoader):
        """With lm-eval's `!function module.name` tag, given to `functions`."""

        refuse_duplicates = not duplicates

    if functions is not None:
        TaskLoader.add_constructor("!function", lambda loader, node: functions(loader.construct_scalar(node)))
    return TaskLoader


def load_yaml_text(text: str, source: str, functions: Callable[[str], Any] | None = None,
                   allow_duplicate_keys: bool = False) -> Any:
    """Parse YAML text; a syntax error or a duplicate key raises ConfigError naming `source:line`.
    `functions` resolves lm-eval's `!function` tag (task YAML only). `allow_duplicate_keys` keeps
    the last of equal keys, as lm-eval does: only for lm-eval's own task files, which the user
    cannot fix and which must mean to the harness what they mean to lm-eval."""
    try:
        return yaml.load(text, Loader=_loader(functions, allow_duplicate_keys))  # noqa: S506 (SafeLoader)
    except DuplicateKeyError as e:
        raise ConfigError([f"{source}:{e.line}: key '{e.key}' given twice (first on line {e.first_line}); "
                           "keep one"]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError([f"{where}: invalid YAML: {getattr(e, 'problem', e)}"]) from None


def load_yaml_file(path: str | Path, functions: Callable[[str], Any] | None = None,
                   allow_duplicate_keys: bool = False) -> Any:
    """Parse a YAML file (see `load_yaml_text`); a missing file is a ConfigError too."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: file not found"])
    return load_yaml_text(path.read_text(encoding="utf-8"), str(path), functions, allow_duplicate_keys)
