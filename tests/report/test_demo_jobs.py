"""What the demo trains, with which budget, and in which order its lanes take the models."""

from neuralfactor.amortized.factorizer import TrainSettings
from neuralfactor.amortized.study import StudyConfig
from neuralfactor.demo import DemoConfig, _jobs, longest_first


def _plan(cfg):
    settings = TrainSettings(epochs=cfg.epochs, batch_size=cfg.batch_size)
    sketch = TrainSettings(epochs=cfg.sketch_epochs, batch_size=25)
    return _jobs(cfg, "data.zarr", settings, StudyConfig, sketch)


def test_the_headline_rank_gets_the_full_budget_and_both_splits_of_a_rank_the_same():
    cfg = DemoConfig()
    epochs = {name: sc.settings.epochs for name, sc in _plan(cfg)}
    head, other = cfg.epochs, cfg.other_epochs or cfg.epochs
    x = cfg.extrapolation_rank
    assert epochs == {
        **{f"interpolation-convmf-r{k}": head if k == max(cfg.ranks) else other for k in cfg.ranks},
        f"extrapolation-convmf-r{x}": head if x == max(cfg.ranks) else other,
        **{f"interpolation-sketch-r{k}": cfg.sketch_epochs for k in cfg.ranks},
        f"extrapolation-sketch-r{x}": cfg.sketch_epochs,
    }
    # the two splits of the extrapolation rank are compared at equal budgets
    assert x in cfg.ranks
    assert epochs[f"extrapolation-convmf-r{x}"] == epochs[f"interpolation-convmf-r{x}"]
    assert cfg.lanes == 2
    # other_epochs: every ConvMF but those of the largest interpolation rank, on either split
    for xr, short_expected in (
        (4, {"interpolation-convmf-r4", "extrapolation-convmf-r4"}),
        (8, {"interpolation-convmf-r4"}),
    ):
        plan = _plan(DemoConfig(ranks=(4, 8), extrapolation_rank=xr, epochs=50, other_epochs=30))
        short = {name for name, sc in plan if sc.settings.epochs == 30}
        assert short == short_expected


def test_lanes_take_the_longest_training_first():
    cfg = DemoConfig(ranks=(4, 8), extrapolation_rank=8, epochs=50, other_epochs=30)
    jobs = [(i, name, sc) for i, (name, sc) in enumerate(_plan(cfg), 1)]
    order = [name for _, name, _ in longest_first(jobs)]
    assert order == [
        "interpolation-convmf-r8",
        "extrapolation-convmf-r8",
        "interpolation-convmf-r4",
        "interpolation-sketch-r4",
        "interpolation-sketch-r8",
        "extrapolation-sketch-r8",
    ]
