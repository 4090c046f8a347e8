"""Which runs a `polymodal bench` makes: the planning step of :func:`polymodal.bench.command.run_bench`.

A benchmark is strategies x datasets x conditions (settings) x seeds. :func:`plan_bench` checks the
command's input (every configuration is loaded once before anything runs) and lays out the runs:

- ``jobs``: one :class:`~polymodal.bench.runner.Job` per (dataset, setting, strategy, seed), in the
  order of the tables;
- ``trained``: the jobs that train a model;
- ``derived``: the jobs of a condition that changes only the test data (missing at test): they train
  nothing, the model of the plain run of the same strategy, dataset and seed (its "base") is evaluated
  under the condition;
- ``bases``: the plain runs that derived jobs need and that no trained job provides.

Nothing here runs or writes anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from polymodal.bench.runner import Job

MISSING_AT = ("train", "test", "both")


@dataclass(frozen=True)
class Setting:
    """One experimental condition shared by every strategy (e.g. a missing rate at test time)."""

    label: str  # "" for the default condition; part of run names
    overrides: tuple[str, ...] = ()
    missing_rate: float | None = None
    missing_at: str | None = None
    variant: str | None = None  # ablation name (the row's ``variant`` key)


def variant_settings(specs: Sequence[str]) -> list[Setting]:
    """``NAME:key=value,key=value`` -> one Setting per ablation variant (overrides for every strategy).

    ``NAME:`` with no overrides is the default configuration under a name (e.g. ``hgm+entropy:``).
    """
    out = []
    for spec in specs:
        name, sep, rest = spec.partition(":")
        if not sep or not name or not name.replace("-", "").replace("+", "").replace("_", "").isalnum():
            raise ValueError(f"--variant {spec!r}: expected NAME:key=value[,key=value...] with a plain NAME, e.g. no-hgm:strategy.args.hgm=false")
        ov = tuple(x for x in rest.split(",") if x)
        bad = [x for x in ov if "=" not in x]
        if bad:
            raise ValueError(f"--variant {spec!r}: {bad} are not key=value overrides")
        out.append(Setting(f"v-{name}", ov, variant=name))
    if len({s.variant for s in out}) != len(out):
        raise ValueError("--variant names must be unique")
    return out


def missing_settings(rates: Sequence[float], where: Sequence[str], seed: int = 0) -> list[Setting]:
    """docs/benchmarks.md's missing-modality protocol: rate r of (sample, modality) slots missing, masks from a
    fixed seed, at train (train split only; selection on a complete val), at test (test split only) or
    both (train, val and test)."""
    out = []
    for at in where:
        if at not in MISSING_AT:
            raise ValueError(f"--missing-at {at!r}; expected some of {', '.join(MISSING_AT)}")
        splits = {"train": ("train",), "test": ("test",), "both": ("train", "val", "test")}[at]
        for r in rates:
            if not 0 < r < 1:
                raise ValueError(f"--missing-rate {r}: expected a fraction in (0, 1)")
            ov = tuple(f"data.split_options.{sp}.{k}={v}" for sp in splits for k, v in (("missing_rate", r), ("missing_seed", seed)))
            out.append(Setting(f"miss{r:g}-{at}", ov, r, at))
    return out


def run_name(strategy: str, dataset: str, seed: int, setting: Setting | None = None) -> str:
    """The folder name of one run: ``<dataset>-<strategy>[-<setting label>]-seed<seed>``."""
    tail = f"-{setting.label}" if setting is not None and setting.label else ""
    return f"{dataset}-{strategy}{tail}-seed{seed}"


def with_seed(items: Sequence[str], seed: int) -> list[str]:
    """``{seed}`` in each item replaced by ``seed`` (e.g. a teacher run of the same seed)."""
    return [x.replace("{seed}", str(seed)) for x in items]


def strategy_overrides(strategy_args: Sequence[str], strategies: Sequence[str]) -> dict[str, list[str]]:
    """``NAME.KEY=VALUE`` items -> strategy NAME -> its ``strategy.args.KEY=VALUE`` overrides."""
    per_strategy: dict[str, list[str]] = {s: [] for s in strategies}
    for item in strategy_args:
        name, sep, rest = item.partition(".")
        if not sep or "=" not in rest or name not in per_strategy:
            raise ValueError(
                f"--strategy-args {item!r}: expected NAME.KEY=VALUE with NAME one of the benchmarked strategies "
                f"({', '.join(strategies)}), e.g. gblending.probe_epochs=2"
            )
        per_strategy[name].append(f"strategy.args.{rest}")
    return per_strategy


def config_args_reset(config: str | None, strategies: Sequence[str]) -> dict[str, list[str]]:
    """Per strategy, the overrides that go before the command's: ``strategy.args={}`` for a strategy other than
    the one the ``--config`` file names, when the file gives that strategy arguments (``configs/utd_mhad.yaml``
    names MLA's ``fusion_rule``): those arguments are the file's strategy's, and another strategy would refuse
    them. The file's own strategy keeps them; the command's overrides and ``--strategy-args`` come after."""
    from polymodal.config import load_config

    prefix: dict[str, list[str]] = {s: [] for s in strategies}
    if config is None:
        return prefix
    own = load_config(config, []).strategy
    if own.args:
        for s in strategies:
            if s != own.name:
                prefix[s] = ["strategy.args={}"]
    return prefix


@dataclass
class BenchPlan:
    """The runs of one benchmark (see the module docstring); ``runs`` is the folder they live in, and
    ``config``, ``overrides`` and ``strategy_args`` are the command's, as every run was configured."""

    strategies: list[str]
    datasets: list[str]
    seeds: list[int]
    settings: list[Setting]
    out: Path
    runs: Path
    jobs: list[Job]
    trained: list[Job]
    derived: list[Job]
    bases: list[Job]
    config: str | None = None
    overrides: tuple[str, ...] = ()
    strategy_args: tuple[str, ...] = ()

    def base_name(self, job: Job) -> str:
        """The plain run (default setting) of a job's strategy, dataset and seed."""
        return run_name(job.tags["strategy"], job.tags["dataset"], job.tags["seed"])

    def to_run(self) -> list[Job]:
        """The jobs handed to the runner: the trained ones, then the bases that derived jobs need."""
        return [*self.trained, *self.bases]


def plan_bench(
    strategies: Sequence[str],
    datasets: Sequence[str],
    seeds: Sequence[int],
    out: str | Path,
    *,
    config: str | None = None,
    overrides: Sequence[str] = (),
    runs_dir: str | Path | None = None,
    settings: Sequence[Setting] | None = None,
    strategy_args: Sequence[str] = (),
) -> BenchPlan:
    """Check the input of a benchmark and lay out its runs (nothing runs here).

    Raises a ValueError for a malformed ``--strategy-args`` item or an ``--out`` with an extension, and
    whatever loading a run's configuration raises (unknown strategy, dataset, key), before any run starts.
    """
    from polymodal.config import load_config

    per_strategy = strategy_overrides(strategy_args, strategies)
    prefix = config_args_reset(config, strategies)
    out = Path(out)
    if out.suffix:
        raise ValueError(f"--out {out} must be a path without extension (NAME.md, NAME.json, ... are written)")
    # validate the configuration of every combination before starting any run
    for s in strategies:
        for d in datasets:
            load_config(config, [*prefix[s], *overrides, *with_seed(per_strategy[s], seeds[0]), f"strategy.name={s}",
                                 f"data.dataset={d}"])
    runs = Path(runs_dir) if runs_dir is not None else Path("runs") / "bench" / out.name
    settings = list(settings) if settings else [Setting("")]
    jobs = [
        Job(
            run_name(s, d, seed, st),
            (*prefix[s], *overrides, *st.overrides, *with_seed(per_strategy[s], seed), f"strategy.name={s}", f"data.dataset={d}",
             f"seed={seed}"),
            {"strategy": s, "dataset": d, "seed": seed, "setting": st},
        )
        for d in datasets
        for st in settings
        for s in strategies
        for seed in seeds
    ]
    # a condition that changes only the test data (missing at test) needs no training of its own: the
    # model trained without it (the "base" run, same name as a plain run) is evaluated under it
    derived = [j for j in jobs if j.tags["setting"].missing_at == "test"]
    trained = [j for j in jobs if j not in derived]
    bases: dict[str, Job] = {}
    trained_names = {t.name for t in trained}
    for j in derived:
        name = run_name(j.tags["strategy"], j.tags["dataset"], j.tags["seed"])
        if name not in bases and name not in trained_names:
            bases[name] = Job(name, tuple(o for o in j.overrides if o not in j.tags["setting"].overrides),
                              {**j.tags, "setting": Setting("")})
    return BenchPlan(list(strategies), list(datasets), list(seeds), settings, out, runs, jobs, trained, derived,
                     list(bases.values()), config, tuple(overrides), tuple(strategy_args))


__all__ = [
    "MISSING_AT",
    "BenchPlan",
    "Setting",
    "missing_settings",
    "plan_bench",
    "run_name",
    "strategy_overrides",
    "variant_settings",
    "with_seed",
]
