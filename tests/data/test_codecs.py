"""Manifest column kinds: every registered codec on real files, and a new kind added by one class and a
registry line (a test-only codec, inferred from its files' extension, trained and predicted end to end)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from PIL import Image

from polymodal.data.datasets.avdigits import read_idx_gz
from polymodal.data.datasets.manifest import (
    CODECS,
    FILE_EXTENSIONS,
    Codec,
    Manifest,
    ManifestError,
    column_kinds,
    infer_kind,
)
from polymodal.data.io import MediaError
from polymodal.data.schema import Modality

from ._byod import shared_data

DIGITS = (0, 1)
PER_CLASS = 6  # 12 rows: 6 train, 3 val, 3 test with the split fractions below
SPLITS = {"val": 0.25, "test": 0.25}


def _recordings() -> list[tuple[int, Path]]:
    folder = shared_data() / "fsdd" / "recordings"
    return [(d, folder / f"{d}_{spk}_{k}.wav") for d in DIGITS for k, spk in
            enumerate(["george", "jackson", "lucas", "nicolas", "theo", "yweweler"][:PER_CLASS])]


def _mnist(d: int) -> list[np.ndarray]:
    root = shared_data() / "mnist"
    images = read_idx_gz(root / "t10k-images-idx3-ubyte.gz", 3)
    labels = read_idx_gz(root / "t10k-labels-idx1-ubyte.gz", 1)
    return [images[i] for i in np.flatnonzero(labels == d)[:PER_CLASS]]


def _audio(folder: Path) -> list[str]:
    return [str(p) for _, p in _recordings()]


def _image(folder: Path) -> list[str]:
    cells = []
    for d in DIGITS:
        for k, im in enumerate(_mnist(d)):
            Image.fromarray(im).save(folder / f"{d}_{k}.png")
            cells.append(f"{d}_{k}.png")
    return cells


def _video(folder: Path) -> list[str]:
    import av

    cells = []
    for d in DIGITS:
        for k, im in enumerate(_mnist(d)):
            with av.open(str(folder / f"{d}_{k}.mp4"), "w") as out:
                stream = out.add_stream("mpeg4", rate=5)
                stream.width = stream.height = 32
                stream.pix_fmt = "yuv420p"
                for t in range(3):  # the digit sliding right
                    frame = np.zeros((32, 32, 3), dtype=np.uint8)
                    frame[2:30, t:28 + t] = im[..., None]
                    for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                        out.mux(packet)
                for packet in stream.encode():
                    out.mux(packet)
            cells.append(f"{d}_{k}.mp4")
    return cells


def _timeseries(folder: Path) -> list[str]:
    cells = []
    for i, (_, wav) in enumerate(_recordings()):
        x, _ = sf.read(wav, dtype="float32")
        series = x[: 2 * (20 + i)].reshape(-1, 2)  # (steps, 2 channels) of real samples, lengths differ
        np.save(folder / f"s{i}.npy", series)
        cells.append(f"s{i}.npy")
    return cells


def _text(folder: Path) -> list[str]:
    return [f"the speaker {wav.stem.split('_')[1]} says the digit {d}" for d, wav in _recordings()]


def _numeric(folder: Path) -> list[str]:
    return [f"{float(np.sqrt(np.mean(sf.read(wav, dtype='float32')[0] ** 2))):.5f}" for _, wav in _recordings()]


def _categorical(folder: Path) -> list[str]:
    return [wav.stem.split("_")[1] for _, wav in _recordings()]


# one real column per kind; a new kind adds its case here (test_every_kind_has_a_case says so)
CASES: dict[str, Callable[[Path], list[str]]] = {
    "audio": _audio, "image": _image, "video": _video, "timeseries": _timeseries, "text": _text,
    "numeric": _numeric, "categorical": _categorical,
}


def test_every_kind_has_a_case():
    assert set(CODECS.names()) <= set(CASES), f"add a case for {sorted(set(CODECS.names()) - set(CASES))} to CASES"
    assert column_kinds() == ("audio", "image", "video", "timeseries", "text", "numeric", "categorical", "ignore")
    assert CODECS.tabular_kinds() == ("numeric", "categorical")  # features laid out in this order


def _table(kind: str, folder: Path) -> pd.DataFrame:
    cells = CASES[kind](folder)
    return pd.DataFrame({"x": cells, "digit": [str(d) for d in DIGITS for _ in range(PER_CLASS)]})


@pytest.mark.parametrize("kind", CODECS.names())
def test_every_codec_reads_fits_and_restores(kind, tmp_path):
    """The tiny variant of each kind on a real column: inputs have the modality's shape, statistics come
    from the train split, and a manifest read with the saved state gives the same inputs."""
    entry = CODECS.get(kind)
    codec_cls = entry.factory
    assert entry.summary and issubclass(codec_cls, Codec) and codec_cls.kind == kind
    df = _table(kind, tmp_path)
    opts: dict[str, Any] = {"label": "digit", "root": str(tmp_path), "schema": {"x": kind}, "splits": SPLITS}
    if codec_cls.Options is not None:
        opts[kind] = entry.tiny
    m = Manifest(df, opts)
    assert m.kinds["x"] == kind
    name = "tabular" if codec_cls.tabular else "x"
    mod = m.schema_for[name]
    assert isinstance(mod, Modality) and m.present[name].all()
    inputs = {r: m.item(name, r) for r in range(m.n)}
    for r, x in inputs.items():
        assert tuple(x.shape) == tuple(mod.shape), (r, x.shape, mod.shape)
        assert torch.isfinite(x.float()).all()
    state = json.loads(json.dumps(m.state()))  # JSON-able, as data_state.json
    column_state = state["stats"][name][kind][0] if codec_cls.tabular else state["stats"][name]
    assert column_state, f"{kind}: nothing fitted or set up is kept in the state"

    # the state alone reads the rows again to the same inputs (prediction: no label, no fitting)
    again = Manifest(df.drop(columns="digit"), {"root": str(tmp_path)}, state=state)
    assert again.schema_for[name] == mod
    for r, x in inputs.items():
        assert torch.equal(again.item(name, r), x), (kind, r)

    # the codec by itself: restored from its state, one cell read and made a tensor like the manifest's
    codec = codec_cls("x", "x", entry.tiny if codec_cls.Options else None, resolve=lambda c: tmp_path / c)
    codec.load_state_dict(column_state)
    cell = df["x"][0]
    if codec_cls.tabular:
        first = codec.encode(cell)
        assert first.shape == (codec.width,) and first.dtype == np.float32
        assert np.array_equal(inputs[0].numpy()[: codec.width], first)
    else:
        got = codec.finish({0: codec.read(codec.source(cell))}, _NoReport())
        assert codec.modality() == mod
        # allclose: the manifest computes log-mels in batches, whose float sums may round differently
        assert torch.allclose(codec.to_tensor(got[0]), inputs[0], rtol=1e-5, atol=1e-5)


def test_statistics_are_fitted_on_the_train_split_only(tmp_path):
    """A numeric column whose val/test rows are far off: the mean and std are those of the train rows."""
    df = _table("numeric", tmp_path)
    m = Manifest(df, {"label": "digit", "splits": SPLITS})
    train = [float(df["x"][r]) for r in m.rows["train"]]
    held_out = [r for s in ("val", "test") for r in m.rows[s]]
    shifted = df.copy()
    shifted.loc[held_out, "x"] = [str(float(v) + 1000.0) for v in df["x"][held_out]]
    st = Manifest(shifted, {"label": "digit", "splits": SPLITS}).stats["tabular"]["numeric"][0]
    assert st["mean"] == pytest.approx(np.mean(train)) and st["std"] == pytest.approx(np.std(train))


def test_registering_a_kind_twice_or_a_taken_extension_is_an_error():
    with pytest.raises(ValueError, match="registered twice"):
        CODECS.register("audio")(type("Again", (Codec,), {"__doc__": "Again."}))
    with pytest.raises(ValueError, match=r"extensions \['.wav'\] already belong to \['audio'\]"):
        CODECS.register("wave2")(type("Wave2", (Codec,), {"__doc__": "Wave.", "extensions": (".wav",)}))
    assert "wave2" not in CODECS
    with pytest.raises(KeyError, match="unknown column kind 'audi'.*close matches: audio"):
        CODECS.get("audi")


# --------------------------------------------------------------------------- a new kind, end to end


class SpectrumCodec(Codec):
    """Band energies in a .spec text file: log energies standardised with the train split's statistics."""

    extensions = (".spec",)

    def read(self, source: Path) -> np.ndarray:
        values = np.array(source.read_text().split(), dtype=np.float64)
        if "bands" in self.state and len(values) != self.state["bands"]:
            raise MediaError(f"{source} holds {len(values)} bands; expected {self.state['bands']}")
        return np.log(values + 1e-6).astype(np.float32)

    def fit(self, values: list[np.ndarray]) -> None:
        stack = np.stack(values)
        self.state = {"bands": stack.shape[1], "mean": stack.mean(0).tolist(), "std": (stack.std(0) + 1e-3).tolist()}

    def to_tensor(self, x: np.ndarray) -> torch.Tensor:
        return (torch.from_numpy(x) - torch.tensor(self.state["mean"])) / torch.tensor(self.state["std"])

    def modality(self) -> Modality:
        return Modality(self.name, "tabular", (self.state["bands"],), representation="features")


@pytest.fixture
def spectrum_kind():
    """The test-only kind, registered for one test: one class and one registry line."""
    CODECS.register("spectrum", tiny={})(SpectrumCodec)
    try:
        yield SpectrumCodec
    finally:
        CODECS.unregister("spectrum")
    assert "spectrum" not in CODECS and "spectrum" not in FILE_EXTENSIONS


def _spectra(folder: Path, bands: int = 16) -> pd.DataFrame:
    rows = []
    for i, (d, wav) in enumerate(_recordings()):
        x, _ = sf.read(wav, dtype="float32")
        power = np.abs(np.fft.rfft(x[:4000])) ** 2
        energies = [float(b.sum()) for b in np.array_split(power, bands)]
        (folder / f"r{i}.spec").write_text(" ".join(f"{e:.6g}" for e in energies))
        rows.append({"id": f"r{i}", "spectrum": f"r{i}.spec", "digit": str(d)})
    return pd.DataFrame(rows)


def test_a_new_kind_is_one_codec_and_a_registry_line(spectrum_kind, tmp_path, monkeypatch):
    import polymodal

    monkeypatch.chdir(tmp_path)
    df = _spectra(tmp_path)
    assert infer_kind(df["spectrum"]) == "spectrum" and "spectrum" in column_kinds()
    df["spectrum"] = [str(tmp_path / c) for c in df["spectrum"]]
    p = polymodal.Predictor(label="digit", id="id", path=tmp_path / "run").fit(
        df, strategy="joint", max_epochs=1, overrides=["model.width=8", "trainer.progress=false"])
    state = json.loads((tmp_path / "run" / "data_state.json").read_text())
    assert state["columns"]["spectrum"] == "spectrum" and state["stats"]["spectrum"]["bands"] == 16
    assert {"fused_acc", "spectrum_acc"} <= set(p.test_metrics)
    pred = p.predict(df.drop(columns="digit").head(4))
    assert len(pred) == 4 and pred["present_spectrum"].all() and set(pred["prediction"]) <= {"0", "1"}

    broken = df.drop(columns="digit").head(2).copy()
    (tmp_path / "short.spec").write_text("1 2 3")  # 3 bands, not 16: the codec's read error names the file
    broken.loc[0, "spectrum"] = str(tmp_path / "short.spec")
    skipped = p.predict(broken, bad_files="skip")
    assert not skipped.loc[0, "present_spectrum"] and skipped.loc[1, "present_spectrum"]


def test_a_state_with_a_kind_not_registered_is_refused(spectrum_kind, tmp_path):
    df = _spectra(tmp_path)
    state = Manifest(df, {"label": "digit", "root": str(tmp_path), "splits": SPLITS}).state()
    CODECS.unregister("spectrum")
    try:
        with pytest.raises(ManifestError, match=r"column kinds \['spectrum'\] are not registered"):
            Manifest(df.drop(columns="digit"), {"root": str(tmp_path)}, state=state)
    finally:
        CODECS.register("spectrum", tiny={})(SpectrumCodec)


class _NoReport:
    """A column context for a codec used alone: nothing may be reported for good cells."""

    column, fitted = "x", True

    def info(self, *args: Any, **kwargs: Any) -> None:
        pass

    def bad(self, rows: list, *args: Any, **kwargs: Any) -> None:
        assert not rows, rows
