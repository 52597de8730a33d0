import pytest

from pseudovad.config import PACKAGED_CONFIGS, build_config, config_names, load_config, parse_override
from pseudovad.config.loading import RENAMED
from pseudovad.errors import ConfigError


def test_every_packaged_config_and_every_scale_x_method_loads():
    names = config_names()
    assert {"synthetic_ffp", "ped2_ffp", "ped2_128_two_branch", "synthetic_ognet"} <= set(names)
    for name in names:
        load_config(name)


def test_every_config_name_of_earlier_versions_still_loads_as_before():
    """The names the README and results used before configs became scale x method."""
    old = ["ped2_ffp_128", "ped2_two_branch", "ped2_single_branch", "ped2_two_branch_kl", "ped2_autoencoder",
           "synthetic_two_branch_kl_perceptual", "synthetic_ognet", "ped2_ognet", "ped2_ffp_paper"]
    # Written out here, not read from RENAMED: each old name must still be Ped2 at 128 px with its method.
    methods = {"ped2_ffp_128": "ffp", "ped2_autoencoder": "autoencoder", "ped2_two_branch": "two_branch",
               "ped2_single_branch": "single_branch", "ped2_two_branch_hinge_flow": "two_branch_hinge_flow",
               "ped2_two_branch_kl": "two_branch_kl", "ped2_two_branch_skip_frames": "two_branch_skip_frames",
               "ped2_two_branch_swapped_flow": "two_branch_swapped_flow"}
    assert set(methods) == set(RENAMED)
    for alias, method in methods.items():
        assert load_config(alias) == load_config(["scale/ped2_128", f"method/{method}"]), f"{alias} no longer loads as before"
    assert load_config("ped2_two_branch").data.height == 128 and load_config("ped2_ffp_128").train.iterations == 4000
    for name in old:
        load_config(name)


def test_a_flat_pseudo_section_of_an_old_checkpoint_is_upgraded():
    config = build_config({"pipeline": "two_branch", "pseudo": {"objective": "hinge_flow", "lambda_flow": 0.3, "flow_margin": 2.0}})
    assert (config.pseudo.objective.name, config.pseudo.objective.weight, config.pseudo.objective.margin) == ("hinge_flow", 0.3, 2.0)


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
    with pytest.raises(ConfigError, match=r"a named config \(camera_ffp, ped2_ffp.*SCALE one of .*synthetic.* and METHOD one of .*two_branch"):
        load_config("no_such_config")


def test_every_packaged_grid_validates():
    from pseudovad.experiment import load_grid

    grids = sorted((PACKAGED_CONFIGS / "grids").glob("*.yaml"))
    assert grids
    for path in grids:
        grid = load_grid(path)
        assert grid.variants and grid.seeds


METHOD_PSEUDO = ["scale/synthetic", "method/pseudo"]


@pytest.mark.parametrize("grid_name, variant, shipped", [
    ("ffp_vs_pseudo", "pseudo", METHOD_PSEUDO), ("ntp_ablation", "pseudo", METHOD_PSEUDO),
    ("ffp_vs_pseudo", "ffp_no_flow", "synthetic_ffp"), ("ffp_vs_pseudo_long", "ffp_no_flow", "synthetic_ffp"),
    ("synthetic_defaults", "pseudo_no_flow", "synthetic_pseudo"), ("synthetic_defaults", "ffp_no_flow", "synthetic_ffp"),
    ("ped2_pseudo_vs_ffp", "pseudo", "ped2_pseudo"), ("ped2_pseudo_vs_ffp", "ffp", "ped2_ffp_test_chosen"),
])
def test_a_grid_that_restates_the_shipped_method_matches_it(grid_name, variant, shipped):
    """Grids write method/pseudo (and the synthetic configs) out as overrides on method/ffp; if either
    drifts, the table would report a method that is not the shipped one. A grid's own `train.*`
    overrides (its budget) apply to both sides: they change the budget, not the method."""
    from pseudovad.experiment import grid_path, load_grid

    ped2_config = isinstance(shipped, str) and shipped.startswith("ped2")   # compared at the grid's own scale
    grid = load_grid(grid_path(grid_name), scale=None if ped2_config else "synthetic")
    restated = load_config(grid.base, grid.variant_overrides(variant))
    budget = [(key, value) for key, value in grid.overrides.items() if key.startswith("train.")]
    assert restated == load_config(shipped, budget)
