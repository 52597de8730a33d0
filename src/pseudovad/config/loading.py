"""Reading configs: YAML files composed by `base:`, `--set` overrides, and validation into the schema.

Unknown keys and wrongly typed or out-of-range values are errors that name the key, the file (or
`--set`) and the nearest valid key or the allowed range, because a typo in a hyper-parameter
otherwise costs a whole training run. YAML is read strictly: a key given twice and aliases are
errors (an alias bomb would otherwise expand to billions of values).

Packaged configs compose a *scale* (data size, network widths, budget: `scale/ped2_128`) with a
*method* (pipeline and its hyper-parameters: `method/ffp`). A name `SCALE_METHOD` (for example
`ped2_128_two_branch`) is that composition; a file `configs/NAME.yaml` is a named config that may
add its own values; `pseudovad configs` lists them all.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import re
import reprlib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from pseudovad.config.schema import Chosen, Config
from pseudovad.errors import ConfigError
from pseudovad.files import write_text

PACKAGED_CONFIGS = Path(__file__).resolve().parent.parent / "configs"
ENVIRONMENT_OVERRIDES = "PSEUDOVAD_SET"

# Config names of earlier versions -> their name now (the composition they always were).
RENAMED = {
    "ped2_ffp_128": "ped2_128_ffp",
    "ped2_autoencoder": "ped2_128_autoencoder",
    "ped2_two_branch": "ped2_128_two_branch",
    "ped2_single_branch": "ped2_128_single_branch",
    "ped2_two_branch_hinge_flow": "ped2_128_two_branch_hinge_flow",
    "ped2_two_branch_kl": "ped2_128_two_branch_kl",
    "ped2_two_branch_skip_frames": "ped2_128_two_branch_skip_frames",
    "ped2_two_branch_swapped_flow": "ped2_128_two_branch_swapped_flow",
}
# Values that no longer exist, and what to write instead.
REMOVED_VALUES = {
    ("flow.estimator", "exported"): "torch.export (.pt2) flow networks were removed because loading one runs code "
                                    "stored in the file; use flow.estimator: spynet with a state dict in flow.weights",
}


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, minus two traps: a key given twice (silently the last one wins) and
    aliases (`*name`, with which a few lines expand to billions of values)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not accepted here", event.start_mark)
        return super().compose_node(parent, index)


def read_yaml(text: str, source: str) -> Any:
    """Parse YAML text strictly (see _StrictLoader); errors are ConfigErrors naming `source`."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = str(getattr(error, "problem", None) or error)
        raise ConfigError(f"{source}: not valid YAML: {problem[:200]}{where}") from None


def short_repr(value: Any, limit: int = 60) -> str:
    """repr(value) cut to about `limit` characters, for error messages about values from files."""
    shortener = reprlib.Repr()  # attributes, not keyword arguments: Python 3.10 and 3.11 take none
    shortener.maxstring = shortener.maxother = limit
    shortener.maxlist = shortener.maxdict = shortener.maxtuple = 6
    shortener.maxlevel = 2
    text = shortener.repr(value)
    return text if len(text) <= limit + 10 else text[:limit] + "..."


# --- validation ------------------------------------------------------------------------------------


def _type_error(key: str, expected: str, value: Any, source: str) -> ConfigError:
    hint = ""
    if isinstance(value, str) and "float" in expected:
        try:
            float(value)
            hint = f" (YAML reads {value} as text: write it with a decimal point, e.g. 1.0e-3)"
        except ValueError:
            pass
    return ConfigError(f"{source}: '{key}' must be {expected}, got {type(value).__name__} {short_repr(value)}{hint}")


def _coerce(value: Any, annotation: Any, key: str, source: str) -> Any:
    """`value` as the annotated type (int -> float allowed; a chosen component validated by its
    registered Options), else a ConfigError."""
    if typing.get_origin(annotation) is typing.Annotated:
        chosen = next(a for a in typing.get_args(annotation)[1:] if isinstance(a, Chosen))
        return _component(chosen, value, key, source)
    if typing.get_origin(annotation) is list:
        if not isinstance(value, list):
            raise _type_error(key, "a list", value, source)
        (item_type,) = typing.get_args(annotation)
        return [_coerce(item, item_type, f"{key}[{i}]", source) for i, item in enumerate(value)]
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    options = typing.get_args(annotation) if union else (annotation,)
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option in (str, bool) and isinstance(value, option):
            return value
    expected = " or ".join("null" if o is type(None) else ("float" if o is float else o.__name__) for o in options)
    raise _type_error(key, expected, value, source)


def _component(chosen: Chosen, value: Any, key: str, source: str) -> Any:
    if dataclasses.is_dataclass(value):
        return value
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ConfigError(f"{source}: '{key}' must be a mapping with a 'name' ({', '.join(chosen.registry.names())}), "
                          f"got {short_repr(value)}")
    options = chosen.registry.options(value["name"], f"{source}: '{key}.name'")
    return _from_dict(options, value, f"{key}.", source)


def _check_limits(key: str, value: Any, metadata: typing.Mapping, source: str) -> None:
    """`value` against its field's limits (see schema.option); lists item by item."""
    if value is None or not metadata:
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_limits(f"{key}[{index}]", item, metadata, source)
        return
    choices = metadata.get("choices")
    if choices is not None and str(value) not in choices:
        removed = REMOVED_VALUES.get((key, value))
        raise ConfigError(f"{source}: '{key}' is {short_repr(value)}; " + (removed or f"choose one of {', '.join(choices)}"))
    pattern = metadata.get("pattern")
    if pattern is not None and isinstance(value, str) and not re.fullmatch(pattern, value):
        raise ConfigError(f"{source}: '{key}' is {short_repr(value)}; it must match {pattern}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if not math.isfinite(value):
        raise ConfigError(f"{source}: '{key}' must be a finite number, got {value}")
    if any(bound in metadata and outside(value, metadata[bound]) for bound, outside in _OUTSIDE.items()):
        raise ConfigError(f"{source}: '{key}' must be {_range_text(metadata)}, got {short_repr(value)}")


_OUTSIDE = {"at_least": lambda v, b: v < b, "above": lambda v, b: v <= b, "at_most": lambda v, b: v > b, "below": lambda v, b: v >= b}
_BOUND_WORDS = {"at_least": "at least", "above": "above", "at_most": "at most", "below": "below"}


def _range_text(metadata: typing.Mapping) -> str:
    def number(value: float) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    return " and ".join(f"{words} {number(metadata[bound])}" for bound, words in _BOUND_WORDS.items() if bound in metadata)


def _from_dict(cls: type, values: Any, prefix: str, source: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: '{prefix.rstrip('.') or 'top level'}' must be a mapping, got {short_repr(values)}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(_unknown_key_message(f"{prefix}{key}", list(fields), prefix, source))
        if dataclasses.is_dataclass(hints[key]):
            kwargs[key] = _from_dict(hints[key], value, f"{prefix}{key}.", source)
        else:
            kwargs[key] = _coerce(value, hints[key], f"{prefix}{key}", source)
            _check_limits(f"{prefix}{key}", kwargs[key], fields[key].metadata, source)
    return cls(**kwargs)


def _unknown_key_message(key: str, valid: list[str], prefix: str, source: str) -> str:
    name = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {', '.join(prefix + v for v in valid)}"
    return f"{source}: unknown config key '{key[:80]}'{hint}"


def _check_config(config: Config, source: str) -> Config:
    """Checks across fields, which only the pipeline knows (network sizes against the frame size...)."""
    from pseudovad.registry import PIPELINES

    pipeline = PIPELINES.get(config.pipeline, f"{source}: 'pipeline'")
    problem = pipeline.check_config(config)
    if problem:
        raise ConfigError(f"{source}: {problem}")
    return config


# --- legacy layouts ---------------------------------------------------------------------------------


def _upgrade(values: dict) -> dict:
    """Configs and checkpoints written before objectives were components had a flat `pseudo` section
    (`objective: kl`, `lambda_kl: ...`): rewrite it into today's layout."""
    pseudo = values.get("pseudo")
    if not isinstance(pseudo, dict) or not isinstance(pseudo.get("objective", {}), str):
        return values
    pseudo = dict(pseudo)
    legacy = {key: pseudo.pop(key) for key in ("lambda_flow", "swap_flow_inputs", "flow_margin", "lambda_kl",
                                                "lambda_perceptual", "perceptual_weights", "skip") if key in pseudo}
    name = pseudo.pop("objective")
    renames = {
        "inverted_flow": {"lambda_flow": "weight", "swap_flow_inputs": "swap_flow_inputs"},
        "hinge_flow": {"lambda_flow": "weight", "flow_margin": "margin", "swap_flow_inputs": "swap_flow_inputs"},
        "kl": {"lambda_kl": "weight", "lambda_perceptual": "perceptual", "perceptual_weights": "perceptual_weights"},
        "skip_frames": {"skip": "skip"},
    }.get(name, {})
    pseudo["objective"] = {"name": name, **{new: legacy[old] for old, new in renames.items() if old in legacy}}
    return {**values, "pseudo": pseudo}


# --- files, names and composition -------------------------------------------------------------------


def _scales() -> list[str]:
    return sorted((p.stem for p in (PACKAGED_CONFIGS / "scale").glob("*.yaml")), key=len, reverse=True)


def _methods() -> list[str]:
    return sorted(p.stem for p in (PACKAGED_CONFIGS / "method").glob("*.yaml"))


def _composition(name: str) -> list[str] | None:
    """`SCALE_METHOD` -> ["scale/SCALE", "method/METHOD"] when both exist, else None."""
    for scale in _scales():
        method = name[len(scale) + 1:]
        if name.startswith(f"{scale}_") and method in _methods():
            return [f"scale/{scale}", f"method/{method}"]
    return None


def _what_names_exist() -> str:
    named = sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.yaml"))
    return (f"give a YAML path, a named config ({', '.join(named)}), or SCALE_METHOD with SCALE one of "
            f"{', '.join(sorted(_scales()))} and METHOD one of {', '.join(_methods())} (`pseudovad configs` lists them)")


def config_names() -> list[str]:
    """Every name `load_config` accepts besides paths: named configs and each scale x method."""
    named = {p.stem for p in PACKAGED_CONFIGS.glob("*.yaml")}
    return sorted(named | {f"{scale}_{method}" for scale in _scales() for method in _methods()})


def _packaged(name: str) -> Path | list[str] | None:
    """A packaged config by name: a file (`ped2_ffp`, `scale/ped2_128`), or a scale x method list."""
    name = name.removesuffix(".yaml")
    name = RENAMED.get(name, name)
    candidate = PACKAGED_CONFIGS / f"{name}.yaml"
    if ".." not in name and candidate.is_file():
        return candidate
    return _composition(name)


def _read_source(source: str | Path | list, beside: Path | None, seen: tuple[str, ...]) -> dict:
    """The values of a config given as a path, a packaged name, or a list of either (merged in order)."""
    if isinstance(source, list):
        merged: dict = {}
        for item in source:
            merged = _merge(merged, _read_source(item, beside, seen))
        return merged
    if not isinstance(source, (str, Path)):
        raise ConfigError(f"'base' must be a config name or a list of names, got {short_repr(source)}")
    near = beside / str(source) if beside is not None else None
    path = Path(source)
    found = near if near is not None and near.is_file() else path if path.is_file() else _packaged(str(source))
    if found is None:
        raise ConfigError(f"config {source} not found; {_what_names_exist()}")
    if isinstance(found, list):
        return _read_source(found, None, seen)
    return _read_file(found, seen)


def _read_file(path: Path, seen: tuple[str, ...]) -> dict:
    """A config file's values over those of its `base` (one name or a list): variants list only what they change."""
    key = str(path.resolve())
    if key in seen:
        raise ConfigError(f"{path}: 'base' chain loops back to itself")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config: {error}") from None
    values = read_yaml(text, str(path)) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(values).__name__}")
    base = values.pop("base", None)
    if base is None:
        return values
    return _merge(_read_source(base, path.parent, (*seen, key)), values)


def _merge(base: dict, update: dict) -> dict:
    """`update` over `base`, section by section; a component whose `name` changes is replaced whole."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        old = merged.get(key)
        same_component = not (isinstance(value, dict) and isinstance(old, dict) and "name" in value and value.get("name") != old.get("name"))
        if isinstance(value, dict) and isinstance(old, dict) and same_component:
            merged[key] = _merge(old, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def describe_configs() -> list[tuple[str, str]]:
    """(name, first comment line) of every packaged config file: named, scales and methods."""
    rows = []
    for path in sorted(PACKAGED_CONFIGS.rglob("*.yaml")):
        if path.parent.name == "grids":
            continue
        first = next((line for line in path.read_text().splitlines() if line.startswith("#")), "# ")
        rows.append((str(path.relative_to(PACKAGED_CONFIGS).with_suffix("")), first.lstrip("# ").strip()))
    return rows


# --- the public entry points ------------------------------------------------------------------------


def parse_override(text: str) -> tuple[str, Any]:
    """`train.iterations=500` -> ("train.iterations", 500); the value is parsed as (strict) YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {short_repr(text)}: expected key=value, e.g. --set train.iterations=500")
    key, raw = text.split("=", 1)
    return key.strip(), read_yaml(raw, f"--set {short_repr(key.strip())}")


def build_config(values: dict, overrides: list[tuple[str, Any]] = (), source: str = "config") -> Config:
    """Merge dotted overrides into `values` and validate the result into a Config.

    The values are validated alone first, so an error names the file it is in, or `--set`."""
    values = _upgrade(values) if isinstance(values, dict) else values
    config = _from_dict(Config, values, "", source)
    if not overrides:
        return _check_config(config, source)
    merged = copy.deepcopy(values)
    for key, value in overrides:
        node = merged
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {short_repr(key)}: '{short_repr(part)}' is not a section")
        node[parts[-1]] = value
    return _check_config(_from_dict(Config, _upgrade(merged), "", "--set"), "--set")


def config_values(name_or_path: str | Path) -> tuple[dict, str]:
    """The merged values of a config (path or packaged name) and a name for error messages."""
    path = Path(name_or_path)
    if path.is_file():
        return _read_file(path, ()), str(path)
    found = _packaged(str(name_or_path))
    if found is None:
        raise ConfigError(f"config file {name_or_path} not found; {_what_names_exist()}")
    return (_read_source(found, None, ()), str(name_or_path)) if isinstance(found, list) else (_read_file(found, ()), str(found))


def environment_overrides() -> list[tuple[str, Any]]:
    """The overrides in $PSEUDOVAD_SET (whitespace-separated key=value, as `--set` takes them), applied
    after all others to every config a command reads: one switch that runs any command line at another
    budget (the README's commands are tested this way, at a tiny one)."""
    try:
        return [parse_override(text) for text in os.environ.get(ENVIRONMENT_OVERRIDES, "").split()]
    except ConfigError as error:
        raise ConfigError(f"${ENVIRONMENT_OVERRIDES}: {error}") from None


def load_config(name_or_path: str | Path | list, overrides: list[tuple[str, Any]] = ()) -> Config:
    """Read a YAML config (a path, a packaged config name, or a list of them merged) and apply
    overrides, then those of $PSEUDOVAD_SET."""
    environment = environment_overrides()
    if isinstance(name_or_path, list):
        values, source = _read_source(name_or_path, None, ()), " + ".join(map(str, name_or_path))
    else:
        values, source = config_values(name_or_path)
    try:
        return build_config(values, [*overrides, *environment], source=source)
    except ConfigError as error:
        if environment and str(error).startswith("--set"):
            raise ConfigError(f"{error} (the overrides include ${ENVIRONMENT_OVERRIDES})") from None
        raise


def without_training_files(config: Config) -> Config:
    """`config` with every file that only training opens (fields marked `file`) set to None.

    A run folder can come from anyone: loading its checkpoint to score or evaluate must not open a
    file its config names. Scoring needs none of them; training takes them from the user's own
    config or `--set`, never from a saved run."""
    stripped = copy.deepcopy(config)

    def clear(node: Any) -> None:
        for item in node if isinstance(node, list) else [node]:
            if not dataclasses.is_dataclass(item):
                continue
            for spec in dataclasses.fields(item):
                if spec.metadata.get("file"):
                    setattr(item, spec.name, None)
                else:
                    clear(getattr(item, spec.name))

    clear(stripped)
    if stripped.flow.estimator == "spynet":
        stripped.flow.estimator = "horn_schunck"
    return stripped


def config_to_dict(config: Config, sections: tuple[str, ...] | None = None) -> dict:
    """The config as plain data; with `sections`, only those (what a pipeline reads)."""
    values = dataclasses.asdict(config)
    return values if sections is None else {key: value for key, value in values.items() if key in sections}


def flat(values: dict, prefix: str = "") -> dict:
    """Nested plain data as {"section.key": value}, so two configs compare key by key."""
    out = {}
    for key, value in values.items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def save_config(config: Config, path: Path, sections: tuple[str, ...] | None = None) -> None:
    write_text(yaml.safe_dump(config_to_dict(config, sections), sort_keys=False), path)
