"""The Predictor API and `polymodal train data.manifest=... / polymodal predict` on real files."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import polymodal
from polymodal.cli import main
from polymodal.data.validation import DatasetValidationError

from .data._byod import write_csv, write_digits

TINY = ["model.width=8", "trainer.progress=false"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    folder = tmp_path_factory.mktemp("byod")
    rows = write_digits(folder, per_class=5)
    df = pd.DataFrame(rows).drop(columns=["speaker"])
    df["image"] = [str(folder / p) for p in df["image"]]
    return folder, df


def test_fit_evaluate_predict_save_load(table, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder, df = table
    test = df.groupby("digit").head(1)
    train = df.drop(test.index)
    p = polymodal.Predictor(label="digit", id="sample", path=tmp_path / "run").fit(
        train, strategy="joint", max_epochs=2, overrides=TINY)
    run = tmp_path / "run"
    for f in ("data_state.json", "splits.csv", "data_check.md", "config.yaml", "report.md", "train_table.parquet"):
        assert (run / f).is_file(), f
    splits = pd.read_csv(run / "splits.csv")
    assert len(splits) == len(train) and set(splits["split"]) == {"train", "val", "test"}
    assert set(p.test_metrics) >= {"fused_acc", "audio_acc", "image_acc", "note_acc", "tabular_acc"}

    metrics = p.evaluate(test)
    assert metrics["n"] == 10 and 0 <= metrics["fused_acc"] <= 1
    assert {"audio_acc", "image_acc", "note_acc", "tabular_acc"} <= set(metrics)

    new = test.drop(columns="digit").reset_index(drop=True)
    new.loc[0, "image"] = ""  # a missing image: predicted from the other modalities
    pred = p.predict(new)
    assert list(pred["id"]) == list(new["sample"]) and len(pred) == 10
    probs = pred[[f"prob_{d}" for d in range(10)]].to_numpy()
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    assert list(pred["prediction"]) == [str(i) for i in probs.argmax(1)]
    assert not pred.loc[0, "present_image"] and pred["present_image"][1:].all() and pred["present_audio"].all()

    gone = new.copy()
    gone.loc[1, "audio"] = str(folder / "no_such.wav")  # a file that does not exist
    with pytest.raises(DatasetValidationError, match="no_such.wav"):
        p.predict(gone)
    skipped = p.predict(gone, bad_files="skip")
    assert not skipped.loc[1, "present_audio"] and len(skipped) == 10

    saved = p.save(tmp_path / "saved")
    again = polymodal.Predictor.load(saved)
    assert again.class_names == tuple(str(d) for d in range(10)) and again.modalities == ["audio", "image", "note", "tabular"]
    assert np.allclose(again.predict_proba(new), probs, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="not a run trained on a manifest"):
        polymodal.Predictor.load(tmp_path)


def test_regression_predictor_needs_fixed_fusion_for_mla(table, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, df = table
    df = df.drop(columns=["digit"])
    with pytest.raises(ValueError, match="fusion_rule=fixed"):
        polymodal.Predictor(label="ink", task="regression", path=tmp_path / "r0").fit(df, max_epochs=1, overrides=TINY)
    p = polymodal.Predictor(label="ink", task="regression", path=tmp_path / "r1").fit(
        df, strategy="mla", strategy_args={"fusion_rule": "fixed"}, max_epochs=2, overrides=TINY)
    assert p.task == "regression" and {"rmse", "r2", "audio_rmse"} <= set(p.test_metrics)
    pred = p.predict(df.head(4))
    assert pred["prediction"].dtype.kind == "f" and "prob_0" not in pred
    with pytest.raises(ValueError, match="embed\\(\\) is for coordinated towers.*task is regression"):
        p.embed(df.head(2))
    with pytest.raises(ValueError, match="classification"):
        p.predict_proba(df.head(4))
    with pytest.warns(UserWarning, match="optimistic"):  # its own training rows: said so
        assert p.evaluate(df)["n"] == len(df)


def test_contrastive_predictor_embeds_each_modality(table, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, df = table
    pairs = df[["sample", "audio", "image", "digit"]]
    with pytest.raises(ValueError, match="strategy 'joint' trains a prediction per row.*strategy.name=contrastive"):
        polymodal.Predictor(label="digit", id="sample", task="contrastive", path=tmp_path / "c0").fit(
            pairs, strategy="joint", max_epochs=1, overrides=TINY)
    assert not (tmp_path / "c0").exists()  # refused before anything was written
    p = polymodal.Predictor(label="digit", id="sample", task="contrastive", path=tmp_path / "c1").fit(
        pairs, strategy="contrastive", max_epochs=2, overrides=TINY)
    assert p.task == "contrastive" and {"audio_to_image_R1", "image_to_audio_mAP"} <= set(p.test_metrics)

    new = pairs.drop(columns="digit").head(6).reset_index(drop=True)
    new.loc[2, "image"] = ""  # a pair without its image
    vectors = p.embed(new)
    assert set(vectors) == {"audio", "image"} and vectors["audio"].shape[0] == 6
    np.testing.assert_allclose(np.linalg.norm(vectors["audio"], axis=1), 1.0, rtol=1e-5)
    assert np.isnan(vectors["image"][2]).all() and not np.isnan(np.delete(vectors["image"], 2, axis=0)).any()
    pred = p.predict(new)
    assert list(pred["id"]) == list(new["sample"]) and pred["emb_image"][2] is None and not pred["present_image"][2]
    np.testing.assert_allclose(np.stack(pred["emb_audio"]), vectors["audio"], atol=1e-6)
    alone = p.embed(new.iloc[[4]])  # a row embeds the same alone as in a batch
    np.testing.assert_allclose(alone["image"][0], vectors["image"][4], atol=1e-5)

    own = p.evaluate()  # the run's stored test rows
    rows = pd.read_csv(tmp_path / "c1" / "splits.csv")
    test_ids = set(rows.loc[rows["split"] == "test", "id"].astype(str))
    again = p.evaluate(pairs[pairs["sample"].isin(test_ids)])  # the same rows given as a table
    for key in ("audio_to_image_R1", "image_to_audio_mAP", "zeroshot_image_from_audio"):
        assert again[key] == pytest.approx(own[key], abs=1e-6), key
    with pytest.raises(ValueError, match="predict_proba is for classification.*use embed"):
        p.predict_proba(new)


def test_cli_train_on_a_manifest_then_predict(table, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder, df = table
    manifest = write_csv(tmp_path / "digits.csv", df.to_dict("records"))
    assert main(["train", f"data.manifest={manifest}", "data.label=digit", "data.options.id=sample", "strategy.name=joint",
                 "trainer.max_epochs=1", "out_dir=runs", *TINY]) == 0, capsys.readouterr().err
    run = Path("runs/digits-joint-seed0")
    assert (run / "data_state.json").is_file() and "test metrics of runs/digits-joint-seed0" in capsys.readouterr().out
    new = write_csv(tmp_path / "new.csv", df.drop(columns=["digit"]).head(6).to_dict("records"))
    assert main(["predict", str(run), "--manifest", str(new), "--out", str(tmp_path / "p.csv")]) == 0
    out = pd.read_csv(tmp_path / "p.csv")
    assert len(out) == 6 and {"id", "prediction", "prob_0", "present_audio", "present_tabular"} <= set(out.columns)
    assert "6 predictions written" in capsys.readouterr().out
    assert main(["predict", str(run), "--manifest", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "q.csv")]) == 1
    assert "nope.csv does not exist" in capsys.readouterr().err
    assert main(["train", f"data.manifest={manifest}", "data.label=digt", *TINY]) == 1
    assert "did you mean 'digit'" in capsys.readouterr().err


def test_the_docs_worked_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "byod.md").read_text()
    code = re.search(r"## Worked example.*?```python\n(.*?)```", doc, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/byod.md", "exec"), namespace)  # noqa: S102 - the documented example, verbatim
    preds = namespace["predictions"]
    assert len(preds) == 5 and not preds["present_image"].iloc[0]
    assert (tmp_path / "models" / "digits" / "data_state.json").is_file()
    assert 0 <= namespace["metrics"]["fused_acc"] <= 1


def test_binary_labels_with_a_balancing_baseline(table, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, df = table
    df = df.assign(parity=["odd" if int(d) % 2 else "even" for d in df["digit"]]).drop(columns=["digit"])
    p = polymodal.Predictor(label="parity", path=tmp_path / "b").fit(df, strategy="ogm_ge", max_epochs=1, overrides=TINY)
    assert p.class_names == ("even", "odd") and p.task == "classification"
    pred = p.predict(df.head(3))
    assert set(pred["prediction"]) <= {"even", "odd"} and {"prob_even", "prob_odd"} <= set(pred.columns)


def test_cross_validation_runs_one_model_per_fold(table, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, df = table
    cv = polymodal.Predictor(label="digit", path=tmp_path / "cv", schema={"note": "ignore"}).cross_validate(
        df, folds=2, strategy="joint", max_epochs=1, overrides=TINY)
    assert len(cv["folds"]) == 2 and len(cv["test"]["fused_acc"]["values"]) == 2
    s0 = pd.read_csv(tmp_path / "cv" / "fold0" / "splits.csv")
    s1 = pd.read_csv(tmp_path / "cv" / "fold1" / "splits.csv")
    assert (s0["split"] == "test").equals(s1["split"] == "test")  # one held-out test set
    assert not ((s0["split"] == "val") & (s1["split"] == "val")).any()  # disjoint validation folds
    assert ((s0["split"] == "val") | (s1["split"] == "val") | (s0["split"] == "test")).all()


# ---- a failed start leaves nothing; a run's own table is scored on its stored split ----------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from .data._faults import write_table

    folder = tmp_path_factory.mktemp("small")
    df = write_table(folder, per_class=6)
    df.to_csv(folder / "t.csv", index=False)
    return folder, df


def test_a_failed_start_leaves_no_run_folder(small, tmp_path):
    from polymodal.data.datasets.manifest import ManifestError

    folder, df = small
    schema = tmp_path / "schema.yaml"
    schema.write_text("size: !!python/name:os.system\n")
    with pytest.raises(ManifestError, match="schema.yaml"):
        polymodal.Predictor(label="label", path=tmp_path / "a", schema=schema).fit(folder / "t.csv", max_epochs=1)
    assert not (tmp_path / "a").exists()
    bad = df.copy()
    bad.loc[2, "audio"] = "wav/missing.wav"
    with pytest.raises(DatasetValidationError, match="missing.wav"):
        polymodal.Predictor(label="label", path=tmp_path / "b", root=folder).fit(bad, max_epochs=1, overrides=TINY)
    assert not (tmp_path / "b").exists()


def test_evaluate_without_data_uses_the_stored_split_and_refuses_a_changed_table(small, tmp_path):
    folder, df = small
    table = folder / "t.csv"
    p = polymodal.Predictor(label="label", id="id", path=tmp_path / "run").fit(
        table, strategy="joint", max_epochs=1, overrides=TINY)
    stored = pd.read_csv(tmp_path / "run" / "splits.csv", dtype=str, keep_default_na=False)
    first = p.evaluate()
    assert first["n"] == (stored["split"] == "test").sum() and first["fused_acc"] == p.test_metrics["fused_acc"]
    df.sample(frac=1.0, random_state=0).to_csv(table, index=False)
    try:
        assert p.evaluate() == first
        df.drop(index=[0, 1]).to_csv(table, index=False)
        with pytest.raises(ValueError, match="allow_changed_table=True"):
            p.evaluate()
        kept = p.evaluate(allow_changed_table=True)
        lost = stored.loc[stored["id"].isin(["s000", "s001"]), "split"].eq("test").sum()
        assert kept["n"] == first["n"] - lost
        assert p.evaluate(split="val", allow_changed_table=True)["n"] == (stored["split"] == "val").sum() - \
            stored.loc[stored["id"].isin(["s000", "s001"]), "split"].eq("val").sum()
    finally:
        df.to_csv(table, index=False)


def test_predictions_say_which_rows_the_model_was_trained_on(small, tmp_path):
    folder, df = small
    p = polymodal.Predictor(label="label", id="id", path=tmp_path / "run").fit(
        folder / "t.csv", strategy="joint", max_epochs=1, overrides=TINY)
    stored = pd.read_csv(tmp_path / "run" / "splits.csv", dtype=str, keep_default_na=False)
    new = df.drop(columns="label").copy()
    new.loc[0, "size"] = "9.5"  # no longer the row it was in training
    new.to_csv(folder / "new.csv", index=False)
    pred = p.predict(folder / "new.csv")
    assert pred.loc[0, "stored_split"] == "" and list(pred["stored_split"][1:]) == list(stored["split"][1:])
    with pytest.warns(UserWarning, match="used to train or select this model"):
        p.evaluate(folder / "t.csv")
