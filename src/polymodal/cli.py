"""`polymodal` command line: thin, one library call per command.

    polymodal list {datasets,encoders,fusions,strategies}
    polymodal train [CONFIG] [key=value ...] [--resume]
    polymodal eval RUN_DIR [--split test] [--allow-changed-table]
    polymodal predict RUN_DIR --manifest new.csv --out predictions.csv [--bad-files skip]
    polymodal prepare utd-mhad --raw DOWNLOAD_DIR [--out DIR]
    polymodal bench --strategies mla,joint --dataset avdigits-hard --seeds 0,1,2 --out benchmarks/results/NAME
    polymodal index add PATHS --index DIR --model TOWER | search --index DIR "text" | serve --index DIR
    polymodal generate RUN_DIR --train | --condition audio:FILE.wav|text:DIGITS [--n 8] [--out grid.png]
    polymodal translate RUN_DIR --audio FILE.wav
    polymodal align RUN_DIR --audio FILE.wav --to image:ROW.png --image-run RUN | text:DIGITS [--json]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polymodal import __version__
from polymodal.runpaths import RunPaths


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="polymodal", description="Multimodal machine learning toolkit.")
    p.add_argument("--version", action="version", version=f"polymodal {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ls = sub.add_parser("list", help="list registered components")
    ls.add_argument("kind", choices=["datasets", "encoders", "fusions", "strategies", "tasks"])

    tr = sub.add_parser("train", help="train a model from a YAML config and key=value overrides")
    tr.add_argument(
        "args", nargs="*", metavar="[CONFIG] [key=value ...]",
        help="optional YAML config (default: the built-in main job), then overrides such as optim.lr=0.01",
    )
    tr.add_argument("--resume", action="store_true", help="continue the run in runs/<name> from its last checkpoint")
    tr.add_argument("--allow-changed-table", action="store_true",
                    help="with --resume: a table whose rows changed since the start trains on the rows whose stored split "
                         "is known (else it is an error)")

    ev = sub.add_parser("eval", help="evaluate a finished run's best checkpoint")
    ev.add_argument("run_dir", type=Path)
    ev.add_argument("--split", default="test", choices=["train", "val", "test"])
    ev.add_argument("--allow-changed-table", action="store_true",
                    help="a table whose rows changed since training: score only the rows whose stored split is known "
                         "(else it is an error)")
    pr = sub.add_parser("predict", help="predict a table of new samples with a run trained on a manifest")
    pr.add_argument("run_dir", type=Path)
    pr.add_argument("--manifest", required=True, type=Path, help="CSV / Parquet / JSON Lines table of the new samples")
    pr.add_argument("--out", required=True, type=Path, help="CSV to write: id, prediction, prob_<class>..., present_<modality>...")
    pr.add_argument("--root", type=Path, default=None, help="folder relative file paths resolve against (default: the table's)")
    pr.add_argument("--bad-files", choices=["error", "skip", "drop"], default=None,
                    help="a missing or unreadable file, an odd cell or a cell that is not a number: error, skip (predict "
                         "the row without it) or drop (leave the row out); default: the setting the run was trained with")

    bn = sub.add_parser("bench", help="strategies x datasets x seeds, parallel and resumable, with tables")
    bn.add_argument("--strategies", default=None, help="comma-separated strategy names (required unless --recompute)")
    bn.add_argument("--dataset", default=None, help="comma-separated dataset names (required unless --recompute)")
    bn.add_argument("--seeds", default="0,1,2")
    bn.add_argument("--out", default=None, type=Path, help="output path without extension (NAME.md/.json/.csv/.png)")
    bn.add_argument("--recompute", default=None, type=Path, metavar="NAME.json",
                    help="rebuild a benchmark's tables from its results JSON alone (no runs, no run folders)")
    bn.add_argument("--replace-runs", default=None, type=Path, metavar="NEW.json",
                    help="with --recompute: first put the run records of NEW.json (a bench of some of the same "
                         "methods, datasets and seeds) in place of the records with the same keys")
    bn.add_argument("--no-poe", action="store_true",
                    help="leave out the poe rows (product of the unimodal runs' calibrated experts) when unimodal is benchmarked")
    bn.add_argument("--config", default=None, help="base YAML config (default: the built-in bench profile)")
    bn.add_argument("--processes", type=int, default=None, help="parallel runs (default: CPU cores)")
    bn.add_argument("--runs-dir", type=Path, default=None, help="where the runs live (default: runs/bench/NAME)")
    bn.add_argument("--strategy-args", action="append", default=[], metavar="NAME.KEY=VALUE",
                    help="hyper-parameter for one strategy's runs only, e.g. gblending.probe_epochs=2 (repeatable)")
    bn.add_argument("--variant", action="append", default=[], metavar="NAME:key=value,...",
                    help="ablation variant applied to every strategy, e.g. no-hgm:strategy.args.hgm=false (repeatable)")
    bn.add_argument("--baseline", default=None, metavar="STRATEGY|variant:NAME",
                    help="what every row is compared with (paired bootstrap): a strategy of --strategies (default: "
                         "joint, when benchmarked), or variant:NAME, one of the --variant names, within each strategy")
    bn.add_argument("--missing-rate", default=None, help="missing-modality protocol: comma-separated rates, e.g. 0.1,0.3,0.5")
    bn.add_argument("--missing-at", default="train,test,both", help="where modalities go missing: train, test, both")
    bn.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides applied to every run")

    pp = sub.add_parser("prepare", help="check your own copy of a published dataset, put it in place, build its caches")
    pp.add_argument("dataset", help="dataset name, e.g. utd-mhad")
    pp.add_argument("--raw", required=True, type=Path, help="folder of your download (unpacked, or its zip files)")
    pp.add_argument("--out", type=Path, default=None,
                    help="where the dataset goes (default: its folder under $POLYMODAL_DATA, e.g. utd_mhad/)")

    for module in challenge_cli_modules():  # e.g. index / search / serve (docs/search.md)
        module.add_parsers(sub)
    return p


def challenge_cli_modules() -> list[Any]:
    """The ``cli`` modules of the challenge packages (``polymodal/<challenge>/cli.py`` with ``COMMANDS``,
    ``add_parsers(subparsers)`` and ``run(namespace)``; docs/architecture.md, "Add a challenge package")."""
    import importlib
    import importlib.util

    from polymodal.registry import challenge_packages

    names = [f"polymodal.{pkg}.cli" for pkg in challenge_packages()]
    return [importlib.import_module(n) for n in names if importlib.util.find_spec(n) is not None]


def _cmd_bench(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from polymodal.bench.command import check_baseline, missing_settings, run_bench, variant_settings

    if ns.recompute is not None:
        from polymodal.bench.tables import recompute

        given = [f"--{k}" for k in ("strategies", "dataset", "out") if getattr(ns, k) is not None]
        if given or ns.overrides:
            raise ValueError(f"--recompute rebuilds tables from a results file alone; drop {given + list(ns.overrides)}")
        for kind, path in recompute(ns.recompute, replace=ns.replace_runs).items():
            print(f"{kind}: {path}")
        return 0
    if ns.replace_runs is not None:
        raise ValueError("--replace-runs only goes with --recompute NAME.json (the benchmark whose runs it replaces)")
    missing = [f"--{k}" for k in ("strategies", "dataset", "out") if getattr(ns, k) is None]
    if missing:
        raise ValueError(f"polymodal bench needs {', '.join(missing)} (or --recompute NAME.json to rebuild tables)")
    bad = [o for o in ns.overrides if "=" not in o]
    if bad:
        raise ValueError(f"unexpected argument(s) {bad}: only key=value overrides may follow the options")
    try:
        seeds = [int(s) for s in ns.seeds.split(",")]
    except ValueError:
        raise ValueError(f"--seeds {ns.seeds!r}: expected comma-separated integers such as 0,1,2") from None
    settings = variant_settings(ns.variant) if ns.variant else None
    if ns.missing_rate is not None:
        if settings:
            raise ValueError("--variant and --missing-rate cannot be combined; run them as two benchmarks")
        try:
            rates = [float(r) for r in ns.missing_rate.split(",")]
        except ValueError:
            raise ValueError(f"--missing-rate {ns.missing_rate!r}: expected comma-separated fractions such as 0.1,0.3,0.5") from None
        settings = missing_settings(rates, ns.missing_at.split(","))
    paths = run_bench(
        ns.strategies.split(","), ns.dataset.split(","), seeds, ns.out, config=ns.config, overrides=ns.overrides,
        processes=ns.processes, runs_dir=ns.runs_dir, command="polymodal " + " ".join(argv), settings=settings,
        strategy_args=ns.strategy_args, poe=not ns.no_poe, baseline=check_baseline(ns.baseline, ns.strategies, settings),
    )
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def _cmd_list(kind: str) -> int:
    from polymodal.registries import ALL

    reg = ALL[kind]
    width = max((len(e.name) for e in reg), default=0)
    for entry in reg:
        print(f"{entry.name:<{width}}  {entry.summary}")
    return 0


def _split_train_args(args: Sequence[str]) -> tuple[str | None, list[str]]:
    config, overrides = None, []
    for i, a in enumerate(args):
        if "=" in a:
            overrides.append(a)
        elif i == 0:
            config = a
        else:
            raise ValueError(f"unexpected argument {a!r}: after the config file only key=value overrides may follow")
    return config, overrides


def default_run_name(out_dir: str | Path, base: str, resume: bool) -> str:
    """Run name when none is given: ``base``, ``base-2``, ... the first free one (the latest when resuming)."""
    names = [base] + [f"{base}-{i}" for i in range(2, 10_000)]
    existing = [n for n in names if (Path(out_dir) / n).exists()]
    if resume:
        if not existing:
            raise FileNotFoundError(f"no run named {base!r} in {out_dir} to resume; pass name=<run name>")
        return existing[-1]
    return next(n for n in names if not (Path(out_dir) / n).exists())


def _print_metrics(title: str, metrics: dict) -> None:
    """Every scalar metric of a split (accuracies in %, the rest as numbers); ``n`` goes into the title.
    A task's metrics are printed whatever their names, so a task with other keys (retrieval R@k,
    C-index) never shows an empty block."""
    shown = {k: v for k, v in metrics.items() if k != "n" and (v is None or isinstance(v, (int, float)))}
    n = metrics.get("n")
    print(f"{title[:-1]} on {n} rows:" if isinstance(n, int) and title.endswith(":") else title)
    if not shown:
        print("  (no metrics: the split was not evaluated; see the run's results.json)")
    for key in sorted(shown):
        value = shown[key]
        text = "n/a" if value is None else f"{100 * value:.2f} %" if key.endswith("_acc") else f"{value:.4f}"
        print(f"  {key:<24} {text}")


def _cmd_train(args: Sequence[str], resume: bool, allow_changed_table: bool = False) -> int:
    from polymodal.config import load_config
    from polymodal.data.datasets.run_splits import run_splits
    from polymodal.engine import train

    config, overrides = _split_train_args(args)
    cfg = load_config(config, overrides)
    if "name" not in cfg.model_fields_set:
        data = cfg.data.dataset if cfg.data.manifest is None else Path(cfg.data.manifest).stem
        cfg.name = default_run_name(cfg.out_dir, f"{data}-{cfg.strategy.name}-seed{cfg.seed}", resume)
    if allow_changed_table and not resume:
        raise ValueError("--allow-changed-table goes with --resume (a new training splits the table anew)")
    with run_splits(allow_changed_table=allow_changed_table):  # a resumed run keeps the stored split of its rows
        result = train(cfg, resume=resume)
    _print_metrics(f"test metrics of {result.run_dir} (best epoch {result.best_epoch}, {result.stopped_reason}):", result.metrics)
    print(f"report: {RunPaths(result.run_dir).report}")
    return 0


def _cmd_eval(run_dir: Path, split: str, allow_changed_table: bool = False) -> int:
    from polymodal.data.datasets.run_splits import run_splits
    from polymodal.engine import evaluate_run
    from polymodal.tasks import get_task

    with run_splits(run_dir, allow_changed_table=allow_changed_table):  # the rows' splits stored with this run
        preds = evaluate_run(run_dir, split=split)  # weights that do not fit config.yaml: the tensors are named
    _print_metrics(f"{split} metrics of {run_dir}:", get_task(preds.task).summarize(preds))
    return 0


def _cmd_predict(run_dir: Path, manifest: Path, out: Path, root: Path | None, bad_files: str | None = None) -> int:
    from polymodal.predictor import Predictor

    if out.suffix.lower() != ".csv":
        raise ValueError(f"--out {out}: predictions are written as CSV; give a path ending in .csv")
    predictor = Predictor.load(run_dir)
    frame = predictor.predict(manifest, root=root, bad_files=bad_files)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    missing = {m: int((~frame[f"present_{m}"]).sum()) for m in predictor.modalities}
    empty = int(frame["no_input"].sum())
    print(f"{len(frame)} predictions written to {out} (rows without a modality: "
          f"{', '.join(f'{m} {n}' for m, n in missing.items())}"
          f"{f'; {empty} row(s) with no input at all, marked no_input' if empty else ''})")
    if "stored_split" in frame:
        seen = int(frame["stored_split"].isin(["train", "val"]).sum())
        if seen:
            print(f"note: {seen} row(s) are rows this model was trained or selected on (column stored_split)")
    return 0


def _cmd_prepare(dataset: str, raw: Path, out: Path | None) -> int:
    from polymodal.data.prepare import prepare

    report = prepare(dataset, raw, out, log=lambda line: print(line, flush=True))
    for key, value in report.items():
        print(f"{key}: {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process; returns the exit code (0 ok, 1 failure, 2 bad usage/config)."""
    from polymodal.config import ConfigError

    parser = _parser()
    try:
        ns = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as e:  # argparse already printed the message
        return int(e.code or 0)
    try:
        if ns.command == "list":
            return _cmd_list(ns.kind)
        if ns.command == "train":
            return _cmd_train(ns.args, ns.resume, ns.allow_changed_table)
        if ns.command == "eval":
            return _cmd_eval(ns.run_dir, ns.split, ns.allow_changed_table)
        if ns.command == "predict":
            return _cmd_predict(ns.run_dir, ns.manifest, ns.out, ns.root, ns.bad_files)
        if ns.command == "bench":
            return _cmd_bench(ns, list(argv) if argv is not None else sys.argv[1:])
        if ns.command == "prepare":
            return _cmd_prepare(ns.dataset, ns.raw, ns.out)
        for module in challenge_cli_modules():
            if ns.command in module.COMMANDS:
                return module.run(ns)
    except (ConfigError, KeyError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, RuntimeError, ImportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {ns.command!r}")
    return 2


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
