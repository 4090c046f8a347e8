"""Judging generated digit images (docs/align_translate.md, "Judging the pictures").

- **Recognition**: a digit classifier trained separately from the generator, on the MNIST rows of the
  AV-digits train pool only (t10k rows 0-5999; best epoch on the val pool, rows 6000-7999; its own accuracy
  on the test pool, rows 8000-9999, is reported beside every recognition rate), reads each generated image;
  :func:`recognition_accuracy` is the fraction read as the digit that was said or written.
- **Diversity**: :func:`pairwise_distance`, the mean Euclidean pixel distance (pixels in [0, 1]) between two
  samples of the same condition, averaged over conditions; :func:`real_diversity` gives the same number for
  real images of one digit drawn in groups of the same size, the reference a generator's diversity is
  compared with (their ratio: 1 = as varied as real handwriting of one digit, 0 = one picture repeated).
- **Copying**: :func:`nearest_distance`, each image's Euclidean distance to its nearest training image; a
  generator that copies its training set gives samples nearer to it than real unseen images are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class DigitJudge(nn.Module):
    """(B, 1, 28, 28) in [0, 1] -> digit logits (B, 10): two conv-ReLU-maxpool blocks, a hidden layer."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                 nn.Linear(32 * 49, width), nn.ReLU(), nn.Linear(width, 10))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"digit judge: images of shape {tuple(x.shape)}; expected (B, 1, 28, 28) in [0, 1]")
        return self.net(x.float())


@dataclass(frozen=True)
class JudgeScores:
    """The judge's accuracy on the val and test pools of real MNIST images."""

    val_acc: float
    test_acc: float


def train_judge(seed: int = 0, epochs: int = 4, images: int | None = None) -> tuple[DigitJudge, JudgeScores]:
    """The digit judge on the train pool (``images`` of its 6,000 rows, seeded; None: all), best epoch on the
    val pool; its val and test accuracies."""
    from polymodal.translation.generate import image_pool

    torch.manual_seed(seed)
    x, y = image_pool("train")
    if images is not None:
        keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:images]
        x, y = x[keep], y[keep]
    vx, vy = image_pool("val")
    tx, ty = image_pool("test")
    judge = DigitJudge()
    opt = torch.optim.Adam(judge.parameters(), 2e-3)
    g = torch.Generator().manual_seed(seed)
    best, state = -1.0, None
    for _ in range(epochs):
        judge.train()
        for idx in torch.randperm(len(x), generator=g).split(64):
            loss = F.cross_entropy(judge(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        acc = recognition_accuracy(judge, vx, vy)
        if acc > best:
            best, state = acc, {k: v.clone() for k, v in judge.state_dict().items()}
    judge.load_state_dict(state)  # type: ignore[arg-type]
    return judge.eval(), JudgeScores(best, recognition_accuracy(judge, tx, ty))


def _images(images: np.ndarray | Tensor, name: str = "images") -> Tensor:
    x = torch.as_tensor(np.asarray(images, dtype=np.float32)) if not isinstance(images, Tensor) else images.float()
    if x.shape[-2:] != (28, 28) or x.numel() == 0:
        raise ValueError(f"{name} of shape {tuple(x.shape)}; expected (..., 28, 28) pixels in [0, 1]")
    return x.reshape(-1, 1, 28, 28)


def judge_digits(judge: nn.Module, images: np.ndarray | Tensor, batch: int = 1024) -> np.ndarray:
    """The digit the judge reads in each image, (N,) int64 (``images`` (..., 28, 28), flattened in order)."""
    x = _images(images)
    with torch.no_grad():
        judge.eval()
        return torch.cat([judge(chunk).argmax(1) for chunk in x.split(batch)]).numpy().astype(np.int64)


def recognition_accuracy(judge: nn.Module, images: np.ndarray | Tensor, digits: np.ndarray | Tensor) -> float:
    """Fraction of ``images`` (N, ..., 28, 28) the judge reads as their digit in ``digits`` (N,) (the
    condition's digit; a leading axis of samples per condition is allowed: (N, n, 1, 28, 28))."""
    x = _images(images)
    d = np.asarray(digits).reshape(-1)
    if len(x) % max(len(d), 1) or len(d) == 0:
        raise ValueError(f"{len(x)} images for {len(d)} digits; expected the same number of images per digit")
    want = np.repeat(d, len(x) // len(d))
    return float((judge_digits(judge, x) == want).mean())


def pairwise_distance(samples: np.ndarray | Tensor) -> float:
    """Mean Euclidean pixel distance between two different samples of one condition, averaged over the
    conditions: ``samples`` (conditions, n, ..., 28, 28) with n >= 2."""
    x = torch.as_tensor(np.asarray(samples, dtype=np.float64)) if not isinstance(samples, Tensor) else samples.double()
    if x.dim() < 3 or x.shape[1] < 2 or x.shape[-2:] != (28, 28):
        raise ValueError(f"samples of shape {tuple(x.shape)}; expected (conditions, n >= 2, ..., 28, 28)")
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    d = torch.cdist(flat, flat)  # (C, n, n)
    n = flat.shape[1]
    return float((d.sum(dim=(1, 2)) / (n * (n - 1))).mean())


def real_diversity(images: np.ndarray | Tensor, digits: np.ndarray | Tensor, n: int, groups: int = 20,
                   seed: int = 0) -> float:
    """:func:`pairwise_distance` of real images: for each digit, ``groups`` seeded draws of ``n`` of its
    images (without replacement inside a draw)."""
    x = _images(images)
    d = np.asarray(digits).reshape(-1)
    if len(d) != len(x):
        raise ValueError(f"{len(x)} images but {len(d)} digits")
    rng = np.random.default_rng(seed)
    draws = []
    for digit in np.unique(d):
        rows = np.flatnonzero(d == digit)
        if len(rows) < n:
            raise ValueError(f"digit {digit} has {len(rows)} images; a group needs n={n}")
        draws += [x[rng.choice(rows, n, replace=False)] for _ in range(groups)]
    return pairwise_distance(torch.stack(draws))


def nearest_distance(images: np.ndarray | Tensor, reference: np.ndarray | Tensor, batch: int = 512) -> np.ndarray:
    """(N,) Euclidean pixel distance from each image to its nearest ``reference`` image."""
    x, r = _images(images).flatten(1), _images(reference, "reference images").flatten(1)
    return torch.cat([torch.cdist(chunk, r).min(1).values for chunk in x.split(batch)]).numpy()


__all__ = ["DigitJudge", "JudgeScores", "judge_digits", "nearest_distance", "pairwise_distance", "real_diversity",
           "recognition_accuracy", "train_judge"]
