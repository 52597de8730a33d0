import pytest

from pseudovad.config import PACKAGED_CONFIGS, build_config, load_config, parse_override
from pseudovad.errors import ConfigError


def test_every_packaged_config_loads():
    names = sorted(PACKAGED_CONFIGS.glob("*.yaml"))
    assert names, "no packaged configs"
    for path in names:
        load_config(path)


def test_override_parsing_and_types():
    config = build_config({}, [parse_override("train.iterations=7"), parse_override("loss.flow=0")])
    assert config.train.iterations == 7
    assert config.loss.flow == 0.0 and isinstance(config.loss.flow, float)


def test_unknown_key_suggests_the_nearest():
    with pytest.raises(ConfigError, match=r"unknown config key 'train.iteratons'; did you mean 'train.iterations'"):
        build_config({"train": {"iteratons": 5}}, source="x.yaml")


def test_wrong_type_and_bad_choice_are_named():
    with pytest.raises(ConfigError, match=r"'train.iterations' must be int, got str"):
        build_config({"train": {"iterations": "many"}})
    with pytest.raises(ConfigError, match=r"'generator.norm' is 'layer'; choose one of none, batch"):
        build_config({"generator": {"norm": "layer"}})


def test_missing_config_lists_packaged_names():
    with pytest.raises(ConfigError, match="synthetic_ffp"):
        load_config("no_such_config")


def test_every_packaged_grid_validates():
    from pseudovad.experiment import load_grid

    grids = sorted((PACKAGED_CONFIGS / "grids").glob("*.yaml"))
    assert grids
    for path in grids:
        grid = load_grid(path)
        assert grid.variants and grid.seeds
