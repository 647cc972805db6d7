"""The README's main job: TS searches with HIP Hessians for the bundled reactions, as one AiiDA batch.

    verdi -p aiida-hip run examples/ts_batch.py [-- --protocol fast --calculator hip --refine xtb --route auto]

Five small reactions of our own (``aiida_hip.reactions``), each through ``hip.ts_search``
(endpoints -> path -> TS optimisation + frequencies -> IRC + endpoint check), at most four at a
time, all in the group ``aiida-hip/examples``. By default the two-level search: HIP finds the path and
a TS, GFN2-xTB refines it with HIP Hessians and judges it with one xTB Hessian. Prints a summary table
and the reference-level cost (xTB gradients and Hessians) at the end; afterwards
``aiida-hip reactions list --group aiida-hip/examples`` shows the same from the database.
"""

from __future__ import annotations

import argparse
import sys

from aiida import orm
from aiida.engine import run_get_node

from aiida_hip.calcjobs import structure_from_dict
from aiida_hip.cli.reactions import format_table
from aiida_hip.common.types import DEFAULT_REFINE, REFINE_LEVELS, Calculator, HessianMode, Route, choices
from aiida_hip.pipeline.inputs import read_reaction
from aiida_hip.reactions import bundled_reactions
from aiida_hip.workflows import ReactionBatchWorkChain


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ts_batch.py")
    parser.add_argument("--code", default="hip-worker@localhost")
    parser.add_argument("--protocol", default="moderate", choices=["fast", "moderate", "precise"])
    parser.add_argument("--calculator", default=Calculator.HIP.value, choices=choices(Calculator))
    parser.add_argument("--refine", default=DEFAULT_REFINE, choices=["none", *REFINE_LEVELS])
    parser.add_argument("--route", default=Route.AUTO.value, choices=choices(Route))
    parser.add_argument("--max-concurrent", type=int, default=4)
    parser.add_argument("--group", default="aiida-hip/examples")
    args = parser.parse_args(argv)

    reactions = {}
    for name, (reactant_file, product_file) in bundled_reactions().items():
        pair = read_reaction(reactant_file, product_file)
        reactions[name] = tuple(
            structure_from_dict({"symbols": a.get_chemical_symbols(), "positions": a.positions.tolist()}) for a in pair
        )
    hessian = HessianMode.PREDICTED.value if args.calculator == Calculator.HIP else HessianMode.REFERENCE.value
    level = {"calculator": args.calculator, "hessian": hessian}
    builder = ReactionBatchWorkChain.get_builder_from_protocol(
        orm.load_code(args.code),
        reactions,
        protocol=args.protocol,
        overrides={"route": args.route, "refine": args.refine, "parameters": level},
        max_concurrent=args.max_concurrent,
        group_label=args.group,
    )
    builder.metadata.label = "bundled reactions"
    two_level = f", refined at {args.refine}" if args.calculator == Calculator.HIP and args.refine != "none" else ""
    what = f"{args.calculator} / {hessian} Hessians{two_level}, {args.protocol}"
    print(f"TS searches for {len(reactions)} reactions ({what})")
    results, node = run_get_node(builder)
    print(f"\nReactionBatchWorkChain<{node.pk}> {node.process_state.value} [{node.exit_status}]")
    if "summary" not in results:
        print(f"no summary: {node.exit_message}")
        return 1
    print(format_table(results["summary"]["reactions"]))
    summary = results["summary"]
    print(f"{summary['n_success']} of {summary['n_reactions']} verified; details: aiida-hip reactions show PK")
    print(reference_cost(node))
    print(hip_use(node))
    return 0


def hip_use(batch) -> str:
    """What HIP did in the batch: in how many searches its Hessians steered TS steps, and how many attempts ran."""
    searches = [s for s in batch.called if "output_parameters" in s.outputs]
    used = sum(bool(s.outputs.output_parameters.get("model_hessians_used")) for s in searches)
    attempts = [a for s in searches for a in s.outputs.output_parameters.get("attempts") or [] if not a.get("skipped")]
    return (
        f"HIP Hessians steered the TS optimisation in {used} of {len(searches)} searches (elsewhere the guard's probe "
        f"rejected them and the search ran Hessian-free); {len(attempts)} attempts in all"
    )


def reference_cost(batch) -> str:
    """The reference-level work of the batch: gradients and Hessians over every search."""
    gradients = hessians = 0
    for search in batch.called:
        if "output_parameters" in search.outputs:
            cost = search.outputs.output_parameters.get("reference_cost") or {}
            gradients += cost.get("gradients", 0)
            hessians += cost.get("hessians", 0)
    return f"reference level (xTB/DFT) work: {gradients} gradients, {hessians} Hessians"


if __name__ == "__main__":
    # `verdi run` passes the arguments after the script name (after `--` if any)
    sys.exit(main([a for a in sys.argv[1:] if a != "--"]))
