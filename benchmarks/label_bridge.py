"""Label bridge: free-text queries over the real photos that installed packages ship, offline.

The photos: scikit-learn's ``load_sample_images`` (china.jpg, flower.jpg) and matplotlib's sample data
(grace_hopper.jpg), copied at run time by ``polymodal.coordinated.bridge.sample_photos``, plus a short
video made of two of them (china 0-2 s, flower 2-4 s) so that video frames are ranked too. Each query
is bridged to ImageNet classes through MiniLM; the photos are ranked by the Bhattacharyya coefficient of
their EfficientNet-Lite0 class distribution with the query's (docs/search.md, "The label bridge").
Recorded per query: the classes it is bridged to, every item's score, and, where one photo is the
obvious answer, whether it ranks first.

    python benchmarks/label_bridge.py

Writes benchmarks/results/label_bridge.md and .json.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
from PIL import Image

from polymodal.coordinated.bridge import sample_photos
from polymodal.coordinated.embedders import load_embedder
from polymodal.coordinated.index import Index
from polymodal.report.table import markdown_table

# (query, the photo a person would pick, or None where none of the three photos fits)
QUERIES: list[tuple[str, str | None]] = [
    ("a flower", "flower.jpg"),
    ("a dahlia in a garden", "flower.jpg"),
    ("a bee on a flower", "flower.jpg"),
    ("a palace", "china.jpg"),
    ("a chinese temple", "china.jpg"),
    ("a pagoda by a lake", "china.jpg"),
    ("a soldier in uniform", "grace_hopper.jpg"),
    ("a navy officer", "grace_hopper.jpg"),
    ("a graduation gown", "grace_hopper.jpg"),
    ("a woman", "grace_hopper.jpg"),
    ("an old person wearing glasses", "grace_hopper.jpg"),
    ("the American flag", "grace_hopper.jpg"),
    ("a sunny day", None),
    ("a dog", None),
    ("a computer", None),
]


def write_clip(path: Path, photos: list[Path], seconds_each: int = 2, rate: int = 5) -> None:
    shown = [np.asarray(Image.open(p).convert("RGB").resize((320, 240))) for p in photos]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for img in shown:
            for _ in range(seconds_each * rate):
                out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())


def main() -> int:
    bridge = load_embedder("label-bridge")
    with tempfile.TemporaryDirectory() as tmp:
        media = Path(tmp) / "photos"
        photos = sample_photos(media)
        write_clip(media / "clip.mp4", photos[:2])
        index = Index.create(Path(tmp) / "ix", bridge.model_id, bridge.dim, model_spec="label-bridge")
        index.add([media], bridge, fps=1.0)
        classified = []
        for p in photos:
            probs = bridge.image.class_probs([Image.open(p).convert("RGB")])[0]
            top = np.argsort(-probs)[:3]
            classified.append({"file": p.name, "top_classes": [[bridge.classes[i], round(float(probs[i]), 3)] for i in top]})
        results = []
        for query, expected in QUERIES:
            hits = index.search_items(bridge, "text", [query], k=len(index))[0]
            ranked = [{"file": Path(h.path).name, "t": h.timestamp, "score": round(h.score, 4)} for h in hits]
            photo_rank = [r["file"] for r in ranked if r["t"] is None]
            photo_scores = [r["score"] for r in ranked if r["t"] is None]
            results.append({
                "margin": round(photo_scores[0] / max(photo_scores[1], 1e-9), 2),
                "query": query, "expected": expected,
                "bridged_to": [[c, round(w, 3)] for c, w in bridge.explain(query, 3)],
                "ranked": ranked,
                "top_photo": photo_rank[0],
                "correct": None if expected is None else photo_rank[0] == expected,
            })
    scored = [r for r in results if r["correct"] is not None]
    hits_at_1 = sum(r["correct"] for r in scored)
    clear = sum(1 for r in scored if r["correct"] and r["margin"] >= 2)
    protocol = ("label bridge (EfficientNet-Lite0 ImageNet softmax x MiniLM similarity to the 1,000 class names, "
                "top 5 classes, temperature 0.05) over 3 real photos and 4 frames (1 fps) of a 4 s clip made of two of them")
    doc = {"protocol": protocol, "command": "python benchmarks/label_bridge.py", "model_id": bridge.model_id,
           "photos": classified, "queries": results, "top1_correct": hits_at_1, "top1_clear": clear,
           "top1_scored": len(scored)}
    out = Path("benchmarks/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "label_bridge.json").write_text(json.dumps(doc, indent=2) + "\n")

    def fmt(r: dict) -> str:
        where = "" if r["t"] is None else f" @{r['t']:g}s"
        return f"{r['file']}{where} {r['score']:.3f}"

    body = [[r["query"], ", ".join(f"{c} {w:.2f}" for c, w in r["bridged_to"]), "; ".join(fmt(x) for x in r["ranked"][:3]),
             r["expected"] or "(none fits)", {True: "yes", False: "**no**", None: "-"}[r["correct"]],
             f"{r['margin']:.1f}"] for r in results]
    photo_rows = [[c["file"], ", ".join(f"{n} {p:.2f}" for n, p in c["top_classes"])] for c in classified]
    lines = [
        "# Label bridge: text search over real photos, offline", "", f"Protocol: {protocol}.", "",
        "Command: `python benchmarks/label_bridge.py`", "", f"Model id: `{bridge.model_id}`", "",
        "What EfficientNet-Lite0 sees in each photo (top 3 ImageNet classes):", "",
        *markdown_table(["photo", "top classes (probability)"], photo_rows, "ll"), "",
        "Queries (top 3 of 7 indexed items; `@Ns`: a video frame at N seconds):", "",
        *markdown_table(["query", "bridged to (weight)", "top results (score)", "a person would pick", "first photo right?",
                         "margin"], body, "lllllr"),
        "",
        "margin: score of the first photo / score of the second photo (video frames left out).",
        "",
        f"The photo a person would pick ranks first for {hits_at_1} of {len(scored)} queries that have one; with a "
        f"clear margin (at least 2x the next photo) for {clear}. A first place, even with a margin, does not prove "
        "the bridge understood: read the \"bridged to\" column (\"a dahlia in a garden\" reaches the flower through "
        "*garden spider*, \"an old person wearing glasses\" reaches the portrait through *sunglasses* by a hair).",
        "",
        "What this shows: queries whose words sit near an ImageNet class (flower, bee, palace, military "
        "uniform, academic gown) find the right photo with a wide margin, and video frames rank with the "
        "photo they show. What it cannot show: accuracy on a real collection (three photos give no "
        "statistics). It exposes the bridge's blind spots: people, scenes and attributes have no ImageNet "
        "class (\"a woman\" is bridged to *lady's slipper* orchids and *black widow* spiders; \"the American "
        "flag\" to *flagpole*), so such queries rank by accident. Queries with no fitting photo score low "
        "(below 0.06 here), but right answers reached through weak bridges score as low (0.02 to 0.1), so no "
        "score threshold separates \"nothing like this\" from \"found it\".",
        "",
    ]
    (out / "label_bridge.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
