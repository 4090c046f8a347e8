import pytest

from polymodal.config import ConfigError, RunConfig, dump_config, load_config, validate_config


def test_defaults_validate_and_round_trip(tmp_path):
    cfg = load_config()
    assert isinstance(cfg, RunConfig)
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


def test_overrides_are_typed():
    cfg = load_config(None, ["optim.lr=0.05", "trainer.max_epochs=3", "data.dataset=synthetic", "data.options.size=16", "trainer.patience=null"])
    assert cfg.optim.lr == 0.05 and cfg.trainer.max_epochs == 3
    assert cfg.data.options == {"size": 16} and cfg.trainer.patience is None


def test_unknown_key_names_path_and_allowed_keys():
    with pytest.raises(ConfigError, match=r"optim\.lrr: unknown key \(did you mean 'lr'\?\); allowed keys here: .*momentum"):
        load_config(None, ["optim.lrr=0.1"])


def test_bad_value_names_path_value_and_allowed():
    with pytest.raises(ConfigError, match=r"optim\.name: .*'sgd', 'adam' or 'adamw'.*got 'rmsprop'"):
        load_config(None, ["optim.name=rmsprop"])
    with pytest.raises(ConfigError, match=r"optim\.lr: .*greater than 0.*got -1"):
        load_config(None, ["optim.lr=-1"])


def test_unknown_registry_name_lists_allowed():
    with pytest.raises(ConfigError, match=r"model\.fusion: unknown fusion 'lte' \(did you mean 'late'"):
        load_config(None, ["model.fusion=lte"])
    with pytest.raises(ConfigError, match=r"data\.dataset: unknown dataset 'nope'.*allowed: .*synthetic"):
        validate_config({"data": {"dataset": "nope"}})


def test_bad_files_and_overrides(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping at top level"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not of the form key=value"):
        load_config(None, ["optim.lr"])
    with pytest.raises(ConfigError, match="plain folder name"):
        load_config(None, ["name=a/b"])


def test_split_options_only_name_splits():
    cfg = load_config(None, ["data.split_options.test.missing_rate=0.3"])
    assert cfg.data.split_options == {"test": {"missing_rate": 0.3}}
    with pytest.raises(ConfigError, match=r"data\.split_options: .*unknown split\(s\) \['dev'\]; allowed: train, val, test"):
        load_config(None, ["data.split_options.dev.missing_rate=0.3"])
