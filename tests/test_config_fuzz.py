"""Property-based: every config value out of its range or of the wrong type, from a YAML file or from
`train --set`, ends in one `pseudovad train: error:` line and exit status 2, never a traceback."""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pseudovad.cli import main
from pseudovad.config import Config, load_config
from pseudovad.config.schema import Chosen
from pseudovad.errors import ConfigError
from pseudovad.registry import OBJECTIVES, SOURCES


def scalar_fields(cls: type, prefix: str = "") -> list[tuple[str, typing.Any, typing.Mapping]]:
    """(dotted key, annotation, limits) of every plain field below `cls` (components have their own test)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    found = []
    for spec in dataclasses.fields(cls):
        hint = hints[spec.name]
        if dataclasses.is_dataclass(hint):
            found += scalar_fields(hint, f"{prefix}{spec.name}.")
        elif typing.get_origin(hint) is not typing.Annotated and not spec.name.isupper():
            found.append((f"{prefix}{spec.name}", hint, spec.metadata))
    return found


FIELDS = scalar_fields(Config)


def invalid_values(annotation: typing.Any, limits: typing.Mapping) -> st.SearchStrategy:
    """Values a field must refuse: the wrong type always; out of range, not finite or not a choice where it has limits."""
    options = typing.get_args(annotation) or (annotation,)
    wrong = [st.dictionaries(st.text(max_size=3), st.integers(), min_size=1, max_size=2)]
    if typing.get_origin(annotation) is not list:
        wrong.append(st.lists(st.integers(), min_size=1, max_size=3))
    if {int, float} & set(options) and str not in options:
        wrong.append(st.text(alphabet="abcxyz", min_size=1, max_size=5))
    if float in options or int in options:
        wrong.append(st.sampled_from([math.nan, math.inf, -math.inf]))
        if "at_least" in limits:
            wrong.append(st.floats(max_value=limits["at_least"] - 1e-3, min_value=-1e9) if float in options
                         else st.integers(max_value=int(math.ceil(limits["at_least"])) - 1, min_value=-10**12))
        if "at_most" in limits:
            wrong.append(st.floats(min_value=limits["at_most"] + 1e-3, max_value=1e12) if float in options
                         else st.integers(min_value=int(limits["at_most"]) + 1, max_value=10**12))
    if "choices" in limits:
        wrong.append(st.text(alphabet="qwrtz", min_size=1, max_size=6))
    if typing.get_origin(annotation) is list:
        wrong.append(st.lists(st.text(alphabet="ab", min_size=1), min_size=1, max_size=3))
    return st.one_of(wrong)


# Free-text fields: any string is a valid value there (paths; the pipeline name has its own test).
UNCHECKED = {"pipeline", "data.root", "data.labels", "data.cache_dir", "flow.weights"}
CHECKED = [f for f in FIELDS if f[0] not in UNCHECKED]


def nested(key: str, value: typing.Any) -> dict:
    node: dict = {"base": "synthetic_ffp"}
    target = node
    *sections, last = key.split(".")
    for section in sections:
        target = target.setdefault(section, {})
    target[last] = value
    return node


@pytest.mark.parametrize("field", CHECKED, ids=[f[0] for f in CHECKED])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_bad_value_in_a_config_file_is_a_config_error(tmp_path: Path, field, data) -> None:
    key, annotation, limits = field
    value = data.draw(invalid_values(annotation, limits))
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(nested(key, value), allow_unicode=True))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert f"'{key}" in str(error.value), str(error.value)
    assert len(str(error.value)) < 2000


@pytest.mark.parametrize("field", CHECKED, ids=[f[0] for f in CHECKED])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_bad_value_given_with_set_exits_2_with_one_message(tmp_path: Path, capsys, field, data) -> None:
    key, annotation, limits = field
    value = data.draw(invalid_values(annotation, limits))
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip().removesuffix("...").strip()
    capsys.readouterr()
    code = main(["train", "synthetic_ffp", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "run"), "--set", f"{key}={text}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("pseudovad train: error: ") and err.count("\n") <= 3 and "Traceback" not in err
    assert f"'{key}" in err, f"the message should name {key}: {err}"
    assert not (tmp_path / "run").exists()


def test_every_number_and_word_has_a_declared_range() -> None:
    """The property tests draw from the declared limits, so a limit must not be missing: every number
    has a lower bound and every word its choices or pattern, except the free-text fields."""
    for key, annotation, limits in CHECKED:
        options = typing.get_args(annotation) or (annotation,)
        if typing.get_origin(annotation) is list:
            options = typing.get_args(annotation)
        if {int, float} & set(options):
            assert {"at_least", "above", "choices"} & set(limits), f"{key} has no lower bound"
        elif str in options:
            assert {"choices", "pattern"} & set(limits), f"{key} accepts any text"


COMPONENT_CASES = [
    ("objective", "learn_not_to_predict", "probability", 1.5),
    ("objective", "learn_not_to_predict", "probability", "often"),
    ("objective", "learn_not_to_predict", "sources", []),
    ("objective", "learn_not_to_predict", "sources", [{"name": "skip_frames", "strides": [1]}]),
    ("objective", "learn_not_to_predict", "sources", [{"name": "patch", "size": [0.5, 0.1]}]),
    ("objective", "learn_not_to_predict", "sources", [{"name": "adversarial", "amplitude": -1}]),
    ("objective", "learn_not_to_predict", "sources", [{"name": "no_such_source"}]),
    ("objective", "learn_not_to_predict", "sources", [{"strides": [2]}]),
    ("objective", "no_such_objective", None, None),
    ("pseudo.objective", "inverted_flow", "weight", -0.5),
    ("pseudo.objective", "hinge_flow", "margin", math.nan),
    ("pseudo.objective", "kl", "perceptual", "much"),
]


@pytest.mark.parametrize("section, name, key, value", COMPONENT_CASES)
def test_a_bad_component_option_exits_2_with_one_message(tmp_path, capsys, section, name, key, value) -> None:
    options = {"name": name} if key is None else {"name": name, key: value}
    text = yaml.safe_dump(options, default_flow_style=True).strip()
    assert main(["train", "synthetic_two_branch", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--set", f"{section}={text}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pseudovad train: error: --set: ") and "Traceback" not in err, err


def test_every_registered_component_has_validated_options() -> None:
    for registry in (OBJECTIVES, SOURCES):
        for name in registry.names():
            options = registry.options(name)
            assert dataclasses.is_dataclass(options) and "name" in {f.name for f in dataclasses.fields(options)}


def test_chosen_marks_every_component_field() -> None:
    hints = typing.get_type_hints(Config, include_extras=True)
    assert any(isinstance(a, Chosen) for a in typing.get_args(hints["objective"])[1:])
