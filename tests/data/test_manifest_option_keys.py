"""Option keys given in the wrong place are named with what to set instead: ``data.options.split`` (the
split is chosen by polymodal; the split column is ``splits.column``) was a raw ``TypeError: build_dataset()
got multiple values for argument 'split'``, and an unknown key under ``splits`` listed the top-level keys."""

from __future__ import annotations

import pytest

from polymodal.cli import main
from polymodal.config import ConfigError, load_config
from polymodal.data.datasets.manifest import ManifestError, parse_options
from polymodal.engine.build import build_datasets


def _manifest_config(tmp_path, *overrides: str):
    table = tmp_path / "table.csv"  # never read: the options are refused before any data is
    return load_config(None, [f"data.manifest={table}", "data.label=label", f"out_dir={tmp_path / 'runs'}",
                              *overrides])


def test_data_options_split_names_the_key_and_the_split_column_option(tmp_path):
    cfg = _manifest_config(tmp_path, "data.options.split=split")
    with pytest.raises(ConfigError) as err:
        build_datasets(cfg)
    msg = str(err.value)
    assert "data.options.split='split'" in msg and "data.options.splits.column=<column>" in msg
    assert "data.split_options.<train|val|test>" in msg and "multiple values" not in msg


def test_each_key_the_builder_sets_itself_is_named_with_its_config_key(tmp_path):
    cfg = _manifest_config(tmp_path, f"data.options.root={tmp_path}", "data.split_options.test.cache_features=false")
    with pytest.raises(ConfigError) as err:
        build_datasets(cfg, ["train", "test"])
    msg = str(err.value)
    assert "data.options.root=" in msg and "set data.root instead" in msg
    assert "data.split_options.test.cache_features=False" in msg and "set data.cache_features instead" in msg


def test_polymodal_train_stops_with_the_message_and_leaves_no_run_folder(tmp_path, capsys):
    table = tmp_path / "table.csv"
    code = main(["train", f"data.manifest={table}", "data.label=label", "data.options.split=split",
                 f"out_dir={tmp_path / 'runs'}", "name=r"])
    err = capsys.readouterr().err
    assert code != 0 and "data.options.split" in err and "splits.column" in err and "TypeError" not in err
    assert not (tmp_path / "runs" / "r").exists()


def test_manifest_options_name_the_keys_allowed_where_the_unknown_one_is():
    with pytest.raises(ManifestError) as err:
        parse_options({"label": "y", "split": "split"})
    assert "manifest option split: not an option (the split column is splits.column" in str(err.value)
    with pytest.raises(ManifestError) as err:
        parse_options({"label": "y", "splits": {"grup": "speaker"}})
    msg = str(err.value)
    assert "splits.grup: not an option (did you mean group?)" in msg
    assert "allowed here: column, group, val, test, seed, folds, fold" in msg and "tabular_groups" not in msg
    with pytest.raises(ManifestError, match=r"image\.sise: not an option \(did you mean size\?\).*allowed here: size, mode"):
        parse_options({"image": {"sise": [8, 8]}})
