"""Component arguments are bound to the registered factories when the config is loaded."""

import pytest

from polymodal.config import ConfigError, load_config


@pytest.mark.parametrize("override,path,hint", [
    ("strategy.args.hgmm=true", "strategy.args.hgmm", "did you mean 'hgm'?"),
    ("model.fusion_args.hiddne=8", "model.fusion_args.hiddne", "did you mean 'hidden'?"),
    ("model.encoders.audio.widht=8", "model.encoders.audio.widht", "did you mean 'width'?"),
    ("data.options.snr_dbb=3", "data.options.snr_dbb", "did you mean 'snr_db'?"),
    ("data.split_options.test.missing_rat=0.3", "data.split_options.test.missing_rat", "did you mean 'missing_rate'?"),
])
def test_a_typo_in_each_argument_group_fails_at_load(override, path, hint):
    base = ["strategy.name=mla", "model.fusion=mult"] if "fusion_args" in override else ["strategy.name=mla"]
    with pytest.raises(ConfigError) as err:
        load_config(None, [*base, override])
    assert path in str(err.value) and hint in str(err.value) and "allowed:" in str(err.value)


def test_every_problem_is_reported_at_once_before_any_data_is_read(tmp_path):
    overrides = ["strategy.args.hgmm=true", "model.encoders.image.name=image_cnn", "model.encoders.image.chanels=[4]",
                 "data.options.snr_dbb=3", f"data.root={tmp_path / 'nothing-here'}"]
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    text = str(err.value)
    for path in ("strategy.args.hgmm", "model.encoders.image.chanels", "data.options.snr_dbb"):
        assert path in text
    assert "got value True" in text


def test_valid_arguments_and_open_ended_factories_pass():
    cfg = load_config(None, ["strategy.name=mla", "strategy.args.hgm=false", "model.encoders.audio.width=32",
                             "data.cache_features=false", "data.split_options.test.missing_rate=0.3"])
    assert cfg.strategy.args == {"hgm": False}
    load_config(None, ["data.dataset=synthetic", "data.options.size=20", "model.fusion=lmf", "model.fusion_args.rank=2"])
    with pytest.raises(ConfigError, match="data.options.sise"):
        load_config(None, ["data.dataset=synthetic", "data.options.sise=20"])


@pytest.mark.parametrize("overrides,message", [
    (["model.fusion=late", "model.fusion_args.mode=bogus"],
     "model.fusion_args.mode: fusion 'late' takes one of 'sum', 'mean', 'learned'; got 'bogus'"),
    (["strategy.name=mla", "strategy.args.fusion_rule=bogus"],
     "strategy.args.fusion_rule: strategy 'mla' takes one of 'calibrated', 'calibrated-entropy', 'entropy', 'entropy-batch', 'fixed'; got 'bogus'"),
    (["strategy.name=pmr", "strategy.args.distance=l1"], "strategy 'pmr' takes one of 'euclidean', 'squared'; got 'l1'"),
    (["strategy.name=mla", "strategy.args.hgm=maybe"], "strategy.args.hgm: strategy 'mla' takes no such value"),
    (["model.encoders.audio.front=mfcc"], "model.encoders.audio.front: encoder 'audio_cnn' takes one of 'logmel', 'stft'"),
])
def test_a_bad_value_of_an_enumerated_option_fails_at_load(overrides, message, tmp_path, monkeypatch):
    """A value an argument does not take (its annotation: ``Literal`` for an enumerated option) is refused when
    the config is loaded, before any dataset is read."""
    import polymodal.data.base

    def no_data(*args, **kwargs):
        raise AssertionError("a dataset was read before the configuration was checked")

    monkeypatch.setattr(polymodal.data.base, "build_dataset", no_data)
    with pytest.raises(ConfigError) as err:
        load_config(None, [*overrides, f"out_dir={tmp_path}"])
    assert message in str(err.value)


def test_the_strategy_is_built_before_the_datasets(tmp_path, monkeypatch):
    """A value the strategy itself refuses (beyond its annotation) stops training before any dataset is read."""
    import polymodal.engine.build
    from polymodal.engine import train

    def no_data(*args, **kwargs):
        raise AssertionError("a dataset was read before the strategy was built")

    monkeypatch.setattr(polymodal.engine.build, "build_dataset", no_data)
    cfg = load_config(None, ["strategy.name=pmr", "strategy.args.alpha=-1", f"out_dir={tmp_path}",
                             "trainer.progress=false"])
    with pytest.raises(ValueError, match=r"strategy.args.alpha=-1"):
        train(cfg)
