"""Every YAML under configs/ validates, builds its model on its dataset's schema, and one batch runs."""

from pathlib import Path

import pytest
import torch

from polymodal.config import RunConfig, load_config
from polymodal.engine.build import build_datasets, build_run_model, build_strategy
from polymodal.tasks import task_of

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


def test_there_are_configs():
    assert CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_builds_and_runs_a_batch(path):
    cfg = load_config(path)
    try:
        ds = build_datasets(cfg, splits=("val",))["val"]
    except ImportError as e:  # a dataset read through an optional extra that is not installed
        if "pip install 'polymodal[" not in str(e):
            raise
        pytest.skip(str(e))
    except FileNotFoundError as e:  # a published dataset not prepared here (`polymodal prepare`; tests/data/ cover it)
        if "prepared data is absent" not in str(e):
            raise
        pytest.skip(str(e))
    strategy = build_strategy(cfg)
    model = build_run_model(cfg, ds, strategy)
    strategy.setup(model, ds)
    batch = ds.collate_fn()([ds[i] for i in range(8)])
    # as the engine does before every evaluation (MLA's calibrated rule fits its temperatures here)
    strategy.prepare_evaluation(model, lambda: [batch], 1, val_batches=lambda: [batch])
    with torch.no_grad():
        out = strategy.predict(model.eval(), batch)
    columns = task_of(ds).batch_columns(out)  # class logits, or per-modality embeddings (contrastive)
    assert columns and all(v.shape[0] == 8 and torch.isfinite(v).all() for v in columns.values())
    if "logits" in columns:
        assert out.logits.shape == (8, ds.num_outputs)


def test_main_job_config_equals_the_defaults():
    """`polymodal train` with no config runs exactly configs/avdigits_mla.yaml (but for the run name)."""
    shipped = load_config(CONFIGS[0].parent / "avdigits_mla.yaml").model_dump()
    defaults = RunConfig().model_dump()
    shipped.pop("name"), defaults.pop("name")
    args = shipped["strategy"].pop("args")
    defaults["strategy"].pop("args")
    shipped["model"]["fusion"] = None  # the default leaves the fusion to the strategy (MLA: shared_head)
    assert shipped == defaults
    from polymodal.strategies.mla import MLA

    default_mla = MLA()
    assert {k: getattr(default_mla, k) for k in args} == args
    assert MLA.default_fusion == "shared_head"


def test_bench_profile_config_is_the_main_job_with_the_two_documented_overrides():
    """configs/avdigits_mla_sgd.yaml is the bench profile of the headline tables: the main job with
    ``optim.name=sgd optim.lr=0.1`` (docs/benchmarks.md, "Bench profile"), nothing else."""
    root = CONFIGS[0].parent
    sgd = load_config(root / "avdigits_mla_sgd.yaml").model_dump()
    main = load_config(root / "avdigits_mla.yaml", ["optim.name=sgd", "optim.lr=0.1"]).model_dump()
    sgd.pop("name"), main.pop("name")
    assert sgd == main
    assert (sgd["optim"]["name"], sgd["optim"]["lr"], sgd["optim"]["momentum"]) == ("sgd", 0.1, 0.9)
