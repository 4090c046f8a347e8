import pytest
import torch
import torch.nn.functional as F

from polymodal.data.batch import Batch
from polymodal.data.datasets.synthetic import SyntheticDataset
from polymodal.engine.data import make_loader
from polymodal.models import build_model
from polymodal.strategies.base import STRATEGIES, StepContext
from polymodal.strategies.joint import Joint, JointConcat, masked_cross_entropy


class Recorder:
    """A StepContext whose backward/step record what the strategy did (and step ``optimizer`` if given)."""

    def __init__(self, class_weights=None, optimizer=None):
        self.losses, self.steps, self.optimizer = [], 0, optimizer
        self.ctx = StepContext(
            epoch=0, batch_idx=0, batches_per_epoch=1, optimizer=None,  # type: ignore[arg-type]
            backward=self.backward, step=self.step, zero_grad=lambda set_to_none=True: None,
            all_reduce_mean=lambda x: x, extra={"class_weights": class_weights},
        )

    def backward(self, loss):
        self.losses.append(loss.detach())
        loss.backward()

    def step(self, params=None, set_to_none=True):
        self.steps += 1
        if self.optimizer is not None:
            self.optimizer.step()
            self.optimizer.zero_grad()
        return True


def _batch(missing: float = 0.0) -> tuple:
    torch.manual_seed(0)
    ds = SyntheticDataset("train", size=24, missing=missing)
    model = build_model(ds.schema, 4, fusion="late", width=8)
    (batch,) = list(make_loader(ds, batch_size=24, seed=0, shuffle=False))
    return model, batch


def test_registered_with_their_default_fusions():
    assert isinstance(STRATEGIES.create("joint"), Joint) and Joint.default_fusion == "late"
    assert isinstance(STRATEGIES.create("joint-concat"), JointConcat) and JointConcat.default_fusion == "concat"


def test_joint_is_cross_entropy_of_the_summed_head_logits():
    model, batch = _batch()
    model.eval()
    rec = Recorder()
    out = Joint().training_step(model, batch, rec.ctx)
    feats = {m: model.encoders[m](batch.inputs[m]) for m in model.modalities}
    logits = sum(model.fusion.heads[m](feats[m]) for m in model.modalities)
    expected = F.cross_entropy(logits, batch.label)
    torch.testing.assert_close(rec.losses[0], expected)
    torch.testing.assert_close(out["loss"], expected)
    assert rec.steps == 1
    assert out["grad_norm/a"] > 0 and out["grad_norm/b"] > 0


def test_class_weights_enter_the_cross_entropy():
    model, batch = _batch()
    model.eval()
    weights = torch.tensor([1.0, 2.0, 0.5, 3.0])
    rec = Recorder(class_weights=weights)
    Joint().training_step(model, batch, rec.ctx)
    with torch.no_grad():
        logits = model(batch).logits
    torch.testing.assert_close(rec.losses[0], F.cross_entropy(logits, batch.label, weight=weights))
    assert not torch.allclose(rec.losses[0], F.cross_entropy(logits, batch.label))


def test_rows_without_any_modality_are_dropped():
    model, batch = _batch()
    model.eval()
    none = torch.zeros(batch.size, dtype=torch.bool)
    none[:5] = True  # rows 0-4 lose every modality
    present = {m: p & ~none for m, p in batch.present.items()}
    holed = Batch({m: torch.where(present[m][:, None], x, 0.0) for m, x in batch.inputs.items()},
                  present, batch.label, batch.index)
    rec = Recorder()
    Joint().training_step(model, holed, rec.ctx)
    with torch.no_grad():
        logits = model(holed).logits
    torch.testing.assert_close(rec.losses[0], F.cross_entropy(logits[5:], batch.label[5:]))


def test_masked_cross_entropy_with_no_row_is_a_connected_zero():
    logits = torch.randn(3, 4, requires_grad=True)
    loss = masked_cross_entropy(logits, torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.bool))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(3, 4))


@pytest.mark.parametrize("missing", [0.0, 0.4])
def test_joint_reduces_its_loss(missing):
    model, batch = _batch(missing)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = last = None
    for _ in range(20):
        rec = Recorder(optimizer=opt)
        loss = float(Joint().training_step(model, batch, rec.ctx)["loss"])
        first = loss if first is None else first
        last = loss
    assert last < first
