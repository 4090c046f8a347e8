"""The training engine on Lightning Fabric: loop, checkpoints and resume, seeding, logging, evaluation.

    from polymodal.engine import train, evaluate_run, TrainResult
    result = train(cfg, resume=False)          # -> TrainResult; raises TrainingDiverged on NaN loss
    preds = evaluate_run(result.run_dir, "test")  # -> polymodal.report.metrics.Predictions (RegressionPredictions)
    run = load_run(result.run_dir)             # -> Run: config, results, records, predictions; run.model()
"""

from polymodal.engine.checkpoint import Checkpoint, checkpoint_exists, load_checkpoint, save_checkpoint
from polymodal.engine.evaluate import evaluate_run, load_predictions, reevaluate_run
from polymodal.engine.loop import make_fabric, train
from polymodal.engine.results import TrainingDiverged, TrainResult
from polymodal.engine.runfolder import Run, load_run
from polymodal.engine.seeding import seed_everything

__all__ = [
    "Checkpoint",
    "Run",
    "TrainResult",
    "TrainingDiverged",
    "checkpoint_exists",
    "evaluate_run",
    "load_checkpoint",
    "load_predictions",
    "load_run",
    "make_fabric",
    "reevaluate_run",
    "save_checkpoint",
    "seed_everything",
    "train",
]
