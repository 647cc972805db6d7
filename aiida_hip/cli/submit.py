"""``aiida-hip submit``: TS searches of many reactions as AiiDA work chains, by two paths: one
``ReactionBatchWorkChain`` run here or submitted to the daemon, or a throttled submission into a group
(``--max-active``) of one ``TransitionStateWorkChain`` (or one packed batch) per unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
from aiida import orm
from aiida.common.exceptions import NotExistent
from aiida.engine import run_get_node, submit

from ..calcjobs import structure_from_dict
from ..common.types import Calculator, HessianMode, Route, choices
from ..pipeline.inputs import ReactionInputError, read_batch
from ..queries import reaction_pairs_from_group
from ..submission import SubmissionError, ThrottledSubmitter, check_services
from ..workflows import ReactionBatchWorkChain, TransitionStateWorkChain
from .options import CODE_LABEL, PROFILE_OPTION, REFINE_OPTION, default_hessian
from .profile import open_profile
from .reactions import format_table


@dataclass(frozen=True)
class _Plan:
    """What every work chain of one submission runs with."""

    code: object
    protocol: str
    overrides: dict
    options: dict | None
    group: str | None
    max_concurrent: int
    reactions_per_job: int
    processes_per_job: int
    #: ``hip.reaction_batch``'s ``learn`` settings (None: the model stays as given)
    learn: dict | None = None

    @property
    def recipe(self) -> dict:
        """What makes a reaction's key in a throttled group (the same reaction under another recipe is new)."""
        return {"protocol": self.protocol, "overrides": self.overrides, "reactions_per_job": self.reactions_per_job}

    def batch_builder(self, pairs: dict, label: str):
        """A ``ReactionBatchWorkChain`` over ``pairs`` (name -> reactant, product)."""
        builder = ReactionBatchWorkChain.get_builder_from_protocol(
            self.code,
            pairs,
            protocol=self.protocol,
            overrides=self.overrides,
            max_concurrent=self.max_concurrent,
            group_label=self.group,
            reactions_per_job=self.reactions_per_job,
            processes_per_job=self.processes_per_job,
            options=self.options,
        )
        builder.metadata.label = label
        if self.learn:
            builder.learn = orm.Dict(self.learn)
        return builder

    def unit_builder(self, unit):
        """One unit of a throttled submission: a ``TransitionStateWorkChain``, or a packed batch."""
        if self.reactions_per_job == 1:
            name, (reactant, product) = next(iter(unit.reactions.items()))
            builder = TransitionStateWorkChain.get_builder_from_protocol(
                self.code, reactant, product, protocol=self.protocol, overrides=self.overrides, options=self.options
            )
            builder.metadata.label = name
            return builder
        return self.batch_builder(unit.reactions, f"packed: {', '.join(unit.reactions)}")


@click.command("submit")
@click.argument("source", type=click.Path(exists=True, path_type=Path), required=False)
@click.option("--from-group", default=None, help="Reactions stored in this group (extras 'reaction' and 'role').")
@PROFILE_OPTION
@click.option("--code", "code_label", default=f"{CODE_LABEL}@localhost", show_default=True)
@click.option("--protocol", type=click.Choice(["fast", "moderate", "precise"]), default="moderate", show_default=True)
# sorted: auto first, as --help has always listed the routes
@click.option("--route", type=click.Choice(sorted(choices(Route))), default=Route.AUTO.value, show_default=True)
@click.option("--calculator", type=click.Choice(choices(Calculator)), default=Calculator.HIP.value, show_default=True)
@REFINE_OPTION
@click.option(
    "--hessian",
    type=click.Choice(choices(HessianMode)),
    default=None,
    help="Default: predicted with --calculator hip, reference with xtb.",
)
@click.option("--max-concurrent", default=4, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--reactions-per-job",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="1: a hip.ts_search work chain per reaction; more: packed hip.ts_batch jobs of this many reactions.",
)
@click.option(
    "--processes-per-job",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="With --reactions-per-job: reactions of a job run this many at once, sharing one model (batched "
    "predictions); the job asks for as many cores.",
)
@click.option("--group", "group_label", default=None, help="Group that collects the TS searches.")
@click.option("--daemon", is_flag=True, help="Submit to the daemon and return at once (default: run here).")
@click.option(
    "--max-active",
    type=click.IntRange(min=1),
    default=None,
    help="Throttled submission (with --daemon and --group): at most this many units unfinished at once; "
    "re-running the command submits only reactions not yet in the group.",
)
@click.option("--wait", is_flag=True, help="With --max-active: keep submitting until every reaction is submitted.")
@click.option("--queue", default=None, help="Scheduler partition / queue of every job.")
@click.option("--walltime", type=click.IntRange(min=1), default=None, help="Wall-time limit of every job (seconds).")
@click.option("--gpus", type=click.IntRange(min=0), default=0, help="GPUs per job (SLURM: #SBATCH --gres=gpu:N).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Where the worker runs the model.")
@click.option("--poll", default=10.0, show_default=True, help="Seconds between throttled submission rounds.")
@click.option(
    "--learn-every",
    type=click.IntRange(min=1),
    default=None,
    help="Fine-tune the model on the batch's reference Hessians after every K verified reactions; the reactions "
    "not yet started get the new model if it is no worse on the batch's held-out reactions.",
)
@click.option("--learn-mode", type=click.Choice(["head", "end_to_end"]), default="head", show_default=True)
@click.option("--learn-minutes", type=float, default=5.0, show_default=True, help="Wall-time cap of one fine-tune.")
def submit_cmd(
    source,
    from_group,
    profile,
    code_label,
    protocol,
    route,
    calculator,
    refine,
    hessian,
    max_concurrent,
    reactions_per_job,
    processes_per_job,
    group_label,
    daemon,
    max_active,
    wait,
    poll,
    queue,
    walltime,
    gpus,
    device,
    learn_every,
    learn_mode,
    learn_minutes,
):
    """Find the TS of every reaction in SOURCE: a folder of reaction folders (reactant.* + product.*) or a
    multi-frame file (reactant, product, reactant, product, ...); or of the reactions in a group."""
    if max_active is not None and not (daemon and group_label):
        raise click.UsageError("--max-active needs --daemon and --group (the group remembers what was submitted)")
    if learn_every is not None and (max_active is not None or reactions_per_job > 1):
        raise click.UsageError(
            "--learn-every runs one batch work chain with one search per reaction: "
            "leave out --max-active and --reactions-per-job"
        )
    if learn_every is not None and calculator != Calculator.HIP.value:
        raise click.UsageError("--learn-every fine-tunes the HIP model the searches use: it needs --calculator hip")
    open_profile(profile)
    if daemon:
        _check_services()
    reactions = _reactions(source, from_group)
    plan = _Plan(
        code=_load_code(code_label),
        protocol=protocol,
        overrides=_overrides(route, calculator, hessian, device) | {"refine": refine},
        options=scheduler_options(queue, walltime, gpus),
        group=group_label,
        max_concurrent=max_concurrent,
        reactions_per_job=reactions_per_job,
        processes_per_job=processes_per_job,
        learn=None if learn_every is None else {"every": learn_every, "mode": learn_mode, "max_minutes": learn_minutes},
    )
    if max_active is not None:
        _submit_throttled(plan, reactions, max_active, wait, poll)
        return
    label = Path(source).name if source is not None else from_group
    _run_batch(plan.batch_builder(reactions, label), len(reactions), daemon)


def _check_services() -> None:
    """The broker and the daemon are up, or a message in words."""
    try:
        check_services()
    except SubmissionError as exc:
        raise click.ClickException(str(exc)) from exc


def _load_code(code_label: str):
    try:
        return orm.load_code(code_label)
    except NotExistent as exc:
        raise click.ClickException(f"code {code_label!r} not found; run `aiida-hip setup`") from exc


def _overrides(route: str, calculator: str, hessian: str | None, device: str | None) -> dict:
    """Protocol overrides: the route and the level parameters (calculator, Hessian, device)."""
    overrides = {
        "route": route,
        "parameters": {"calculator": calculator, "hessian": default_hessian(calculator, hessian)},
    }
    if device:
        overrides["parameters"]["device"] = device
    return overrides


def _submit_throttled(plan: _Plan, reactions: dict, max_active: int, wait: bool, poll: float) -> None:
    """Submit into ``plan.group`` with at most ``max_active`` units unfinished; one round, or all with ``wait``."""
    submitter = ThrottledSubmitter(
        plan.group, reactions, plan.recipe, plan.unit_builder, max_active, plan.reactions_per_job, echo=click.echo
    )
    already = len(reactions) - len(submitter.pending())
    if already:
        click.echo(f"{already} of {len(reactions)} reactions are already in group {plan.group!r}: not again")
    if wait:
        submitter.run(poll=poll)
    else:
        submitter.submit_round()
    left = len(submitter.pending())
    click.echo(f"{left} reaction(s) left to submit" + (": run the same command again later" if left else ""))


def _run_batch(builder, n_reactions: int, daemon: bool) -> None:
    """Submit the batch to the daemon, or run it here and print its table."""
    if daemon:
        node = submit(builder)
        click.echo(f"submitted ReactionBatchWorkChain<{node.pk}> with {n_reactions} reactions")
        return
    results, node = run_get_node(builder)
    click.echo(f"ReactionBatchWorkChain<{node.pk}>: {node.process_state.value} [{node.exit_status}]")
    if "summary" in results:
        click.echo(format_table(results["summary"]["reactions"]))


def scheduler_options(queue: str | None, walltime: int | None, gpus: int) -> dict | None:
    """``metadata.options`` of every job: partition, wall time and a GPU request (SLURM GRES)."""
    options: dict = {}
    if queue:
        options["queue_name"] = queue
    if walltime:
        options["max_wallclock_seconds"] = walltime
    if gpus:
        options["custom_scheduler_commands"] = f"#SBATCH --gres=gpu:{gpus}"
    return options or None


def _reactions(source: Path | None, from_group: str | None) -> dict:
    """Reaction name -> (reactant, product) ``StructureData`` from a folder/file or a stored group."""
    if (source is None) == (from_group is None):
        raise click.UsageError("give either SOURCE or --from-group")
    if from_group is not None:
        return _group_reactions(from_group)
    return _file_reactions(source)


def _group_reactions(from_group: str) -> dict:
    try:
        reactions = reaction_pairs_from_group(from_group)
    except (ValueError, NotExistent) as exc:
        raise click.ClickException(str(exc)) from exc
    if not reactions:
        raise click.ClickException(f"group {from_group!r} holds no reactions")
    return reactions


def _file_reactions(source: Path) -> dict:
    try:
        good, bad = read_batch(source)
    except ReactionInputError as exc:
        raise click.ClickException(str(exc)) from exc
    for name, message in bad.items():
        click.echo(f"skipped {name}: {message}", err=True)
    if not good:
        raise click.ClickException(f"no usable reaction in {source}")
    return {
        name: tuple(
            structure_from_dict({"symbols": a.get_chemical_symbols(), "positions": a.positions.tolist()}) for a in pair
        )
        for name, pair in good.items()
    }
