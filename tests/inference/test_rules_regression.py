"""The fixed rule on real-valued (regression) outputs."""

import torch

from polymodal.inference import fixed_fusion, fuse


def test_fixed_rule_averages_regression_outputs_over_present_modalities():
    out = {"a": torch.tensor([[1.0, -2.0], [3.0, 0.5], [5.0, 1.0]]), "b": torch.tensor([[-3.0, 4.0], [7.0, 1.5], [2.0, 2.0]])}
    present = {"a": torch.tensor([True, True, False]), "b": torch.tensor([True, False, False])}
    fused = fixed_fusion(out, present)
    torch.testing.assert_close(fused, torch.tensor([[-1.0, 1.0], [3.0, 0.5], [0.0, 0.0]]))
    weighted = fuse("fixed", out, present, {"a": 3.0, "b": 1.0})
    torch.testing.assert_close(weighted[0], 0.75 * out["a"][0] + 0.25 * out["b"][0])
    torch.testing.assert_close(weighted[1], out["a"][1])  # renormalised over the present modality
