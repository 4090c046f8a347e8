"""Co-learning and transference (docs/colearning.md): a model of a weak modality helped by a strong one.

Four registered strategies, each trained on a seeded fraction of the training labels
(``strategy.args.label_fraction``; the other training rows are used without their labels, validation and test
are never touched) and each predicting with the TARGET modality alone (the other modality is absent at test):

- ``labelled-only``: supervised training of every modality's head on the labelled rows (the baseline);
- ``co-training``: Blum & Mitchell's two views, each pseudo-labelling the unlabelled rows it is confident about
  (above a threshold, class-balanced) for the other (:mod:`polymodal.colearning.strategy`);
- ``cross-distill``: a teacher on the source modality teaches the target through unlabelled pairs (soft targets
  with temperature, T^2-scaled; feature matching as an option);
- ``contrastive-aux``: the symmetric InfoNCE of the coordinated strategies as an auxiliary loss over all pairs
  while the target's classifier learns from its labels.

:mod:`polymodal.colearning.budget` chooses the labelled rows; :mod:`polymodal.colearning.losses` holds the
distillation loss and the pseudo-labelling rule.
"""

from polymodal.colearning.budget import labelled_mask
from polymodal.colearning.losses import balanced_cross_entropy, distillation_loss, pseudo_labels

__all__ = ["balanced_cross_entropy", "distillation_loss", "labelled_mask", "pseudo_labels"]
