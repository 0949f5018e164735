"""What the demo trains, with which budget, and in which order its lanes take the models."""

from neuralfactor.amortized.factorizer import TrainSettings
from neuralfactor.amortized.study import StudyConfig
from neuralfactor.demo import DemoConfig, _jobs, longest_first


def _plan(cfg):
    settings = TrainSettings(epochs=cfg.epochs, batch_size=cfg.batch_size)
    sketch = TrainSettings(epochs=cfg.sketch_epochs, batch_size=25)
    return _jobs(cfg, "data.zarr", settings, StudyConfig, sketch)


def test_the_headline_model_gets_the_full_budget_the_others_theirs():
    cfg = DemoConfig()
    epochs = {name: sc.settings.epochs for name, sc in _plan(cfg)}
    assert cfg.other_epochs is None  # equal budgets: the two splits compared fairly
    assert epochs == {
        "interpolation-convmf-r4": cfg.epochs,
        "interpolation-convmf-r8": cfg.epochs,
        "extrapolation-convmf-r8": cfg.epochs,
        "interpolation-sketch-r4": cfg.sketch_epochs,
        "interpolation-sketch-r8": cfg.sketch_epochs,
        "extrapolation-sketch-r8": cfg.sketch_epochs,
    }
    assert cfg.lanes == 2
    # other_epochs: every ConvMF but the headline one (the largest interpolation rank)
    head = DemoConfig(other_epochs=30)
    short = {name for name, sc in _plan(head) if sc.settings.epochs == 30}
    assert short == {"interpolation-convmf-r4", "extrapolation-convmf-r8"}


def test_lanes_take_the_longest_training_first():
    jobs = [(i, name, sc) for i, (name, sc) in enumerate(_plan(DemoConfig(other_epochs=30)), 1)]
    order = [name for _, name, _ in longest_first(jobs)]
    assert order == [
        "interpolation-convmf-r8",
        "interpolation-convmf-r4",
        "extrapolation-convmf-r8",
        "interpolation-sketch-r4",
        "interpolation-sketch-r8",
        "extrapolation-sketch-r8",
    ]
