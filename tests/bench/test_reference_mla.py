"""benchmarks/reference_mla.py: the pieces that need no reference checkout (export, inputs, tables)."""

import json

import numpy as np
import pytest
import torch

from polymodal.bench.tables import encode_correct
from polymodal.data.transforms import LogSTFT, STFTConfig
from tests._benchmarks import load_benchmark

ref = load_benchmark("reference_mla")


def test_a_missing_or_wrong_checkout_fails_clearly(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        ref.load_reference(tmp_path / "nowhere")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "backbone.py").write_text("")
    with pytest.raises(SystemExit, match="lacks models/fusion_modules.py, utils/utils.py"):
        ref.load_reference(tmp_path)
    with pytest.raises(SystemExit):
        ref.main([])  # no checkout given: argparse error


def test_export_quantises_the_dataset_arrays():
    arr = ref.export_split("val")
    assert arr["waveform"].dtype == np.int16 and arr["waveform"].shape == (300, 8000)
    assert arr["image"].dtype == np.uint8 and arr["image"].shape == (300, 28, 28)
    assert arr["label"].dtype == np.int64 and np.array_equal(arr["index"], np.arange(300))
    from polymodal.data.datasets.avdigits import AVDigits

    ds = AVDigits("avdigits-hard", "val", cache_features=False)
    wav, img = ref.polymodal_inputs(arr)
    assert torch.allclose(wav, ds.tensor("audio"), atol=1 / 32768)
    assert torch.allclose(img, ds.tensor("image"), atol=0.5 / 255 + 1e-6)
    assert np.array_equal(arr["label"], ds.labels)


def test_reference_inputs():
    g = np.random.default_rng(0)
    wav = (g.standard_normal((2, 8000)) * 3000).astype(np.int16)
    spec = ref.reference_spectrogram(wav)
    want = LogSTFT(STFTConfig(pad_mode="constant"))(torch.from_numpy(wav.astype(np.float32) / 32768))
    assert spec.shape == (2, 129, 63) and torch.allclose(spec, want, atol=1e-6)
    img = ref.reference_image(np.full((2, 28, 28), 255, dtype=np.uint8))
    assert img.shape == (2, 3, 1, 28, 28)
    assert torch.allclose(img, torch.full_like(img, (1 - 0.449) / 0.226))


def _record(variant, seed, correct, fixed=None, sps=10.0):
    c = np.asarray(correct, dtype=bool)
    return {"implementation": "reference" if variant == "reference" else "polymodal", "variant": variant, "seed": seed,
            "epochs": 2, "best_epoch": 2, "val_fused_acc": 0.5, "samples_per_sec": sps,
            "test_correct": encode_correct(c), "test_correct_fixed": encode_correct(c if fixed is None else fixed),
            "test_correct_audio": encode_correct(c), "test_correct_image": encode_correct(~c)}


def test_tables_and_recompute(tmp_path):
    g = np.random.default_rng(1)
    recs = []
    for seed in (0, 1):
        base = g.random(300) < 0.8
        recs.append(_record("reference", seed, base, sps=10.0))
        better = base | (g.random(300) < 0.5)
        recs.append(_record("recommended", seed, better, sps=16.0))
    rows, diffs, notes = ref.tables(recs)
    by = {(r.variant, r.metric): r for r in rows}
    assert by[("reference", "fused_acc")].method == "mla-reference" and by[("recommended", "fused_acc")].method == "mla"
    assert by[("recommended", "image_acc")].values == pytest.approx([1 - v for v in by[("recommended", "audio_acc")].values])
    own = next(d for d in diffs if d["rule"] == "own rule")
    want = np.mean([by[("recommended", "fused_acc")].values[s] - by[("reference", "fused_acc")].values[s] for s in (0, 1)])
    assert own["mean"] == pytest.approx(want) and own["ci95"][0] > 0 and own["n_seeds"] == 2
    assert "1.60x" in notes
    js, md = ref.write(recs, "p", "c", tmp_path)
    again_js, again_md = ref.recompute(js, tmp_path / "again")
    assert again_md.read_text() == md.read_text()
    assert json.loads(again_js.read_text())["differences"] == json.loads(js.read_text())["differences"]
    (tmp_path / "other.json").write_text(json.dumps({"protocol": "p", "command": "c", "rows": []}))
    with pytest.raises(SystemExit, match="not written by"):
        ref.recompute(tmp_path / "other.json", tmp_path)


def test_variant_parsing(tmp_path):
    name, config, overrides = ref.parse_variant("r=configs/avdigits_mla_reference.yaml;strategy.args.hgm=true")
    assert name == "r" and config.endswith("avdigits_mla_reference.yaml") and overrides == ["strategy.args.hgm=true"]
    with pytest.raises(SystemExit, match="NAME=CONFIG"):
        ref.parse_variant("configs/avdigits_mla_reference.yaml")
    with pytest.raises(SystemExit, match="does not exist"):
        ref.parse_variant(f"x={tmp_path / 'missing.yaml'}")


def test_step_curve_statistics():
    a = [{"loss": {"audio": 2.0, "image": 2.0}, "grad_norm": {"audio": 1.0, "image": 2.0},
          "update_norm": {"audio": 0.1, "image": 0.2}}] * 3
    b = [{"loss": {"audio": 2.5, "image": 2.0}, "grad_norm": {"audio": 2.0, "image": 2.0},
          "update_norm": {"audio": 0.1, "image": 0.1}}] * 3
    s = ref.curve_stats(a, b)
    assert s["max_loss_diff_audio"] == 0.5 and s["max_loss_diff_image"] == 0.0
    assert s["grad_ratio_audio"] == 2.0 and s["update_ratio_image"] == 0.5
    md = ref.steps_markdown([{"variant": "reference", "steps": a}, {"variant": "x", "steps": b}], "p", "c")
    assert "| x | 5.00e-01 | 0.00e+00 |" in md


def test_speed_table(tmp_path):
    times = {"reference": [2.0, 4.0], "polymodal, contiguous": [1.0, 2.0], "polymodal, channels_last": [0.5, 2.0]}
    js, md = ref.write_speed(times, "p", "c", tmp_path)
    rows = {(r["variant"], r["metric"]): r for r in json.loads(js.read_text())["rows"]}
    assert rows[("reference", "samples_per_sec")]["values"] == [32.0, 16.0]
    assert rows[("polymodal, contiguous / reference", "efficiency")]["values"] == [2.0, 2.0]
    assert rows[("polymodal, channels_last / reference", "efficiency")]["values"] == [4.0, 2.0]
    assert "polymodal, channels_last: 3.00x" in md.read_text()


def test_speed_table_recomputes_from_its_json(tmp_path):
    times = {"reference": [2.0, 4.0], "polymodal, contiguous": [1.0, 2.0], "polymodal, channels_last": [0.5, 2.0]}
    js, md = ref.write_speed(times, "p", "c", tmp_path)
    _, again = ref.recompute(js, tmp_path / "again")
    assert again.read_text() == md.read_text()
