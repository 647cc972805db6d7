"""The README's main job: TS searches with HIP Hessians for the bundled reactions, as one AiiDA batch.

    verdi -p aiida-hip run examples/ts_batch.py [-- --protocol fast --calculator hip --route auto]

Five small reactions of our own (``aiida_hip.reactions``), each through ``hip.ts_search``
(endpoints -> path -> TS optimisation + frequencies -> IRC + endpoint check), at most four at a
time, all in the group ``aiida-hip/examples``. Prints a summary table at the end; afterwards
``aiida-hip reactions list --group aiida-hip/examples`` shows the same from the database.
"""

from __future__ import annotations

import argparse
import sys

from aiida import orm
from aiida.engine import run_get_node

from aiida_hip.calcjobs import structure_from_dict
from aiida_hip.cli.database import format_table
from aiida_hip.pipeline.inputs import read_reaction
from aiida_hip.reactions import bundled_reactions
from aiida_hip.workflows import ReactionBatchWorkChain


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ts_batch.py")
    parser.add_argument("--code", default="hip-worker@localhost")
    parser.add_argument("--protocol", default="moderate", choices=["fast", "moderate", "precise"])
    parser.add_argument("--calculator", default="hip", choices=["hip", "xtb"])
    parser.add_argument("--route", default="auto", choices=["auto", "pysisyphus", "sella"])
    parser.add_argument("--max-concurrent", type=int, default=4)
    parser.add_argument("--group", default="aiida-hip/examples")
    args = parser.parse_args(argv)

    reactions = {}
    for name, (reactant_file, product_file) in bundled_reactions().items():
        pair = read_reaction(reactant_file, product_file)
        reactions[name] = tuple(
            structure_from_dict({"symbols": a.get_chemical_symbols(), "positions": a.positions.tolist()}) for a in pair
        )
    hessian = "predicted" if args.calculator == "hip" else "reference"
    builder = ReactionBatchWorkChain.get_builder_from_protocol(
        orm.load_code(args.code),
        reactions,
        protocol=args.protocol,
        overrides={"route": args.route, "parameters": {"calculator": args.calculator, "hessian": hessian}},
        max_concurrent=args.max_concurrent,
        group_label=args.group,
    )
    builder.metadata.label = "bundled reactions"
    print(f"TS searches for {len(reactions)} reactions ({args.calculator} / {hessian} Hessians, {args.protocol})")
    results, node = run_get_node(builder)
    print(f"\nReactionBatchWorkChain<{node.pk}> {node.process_state.value} [{node.exit_status}]")
    if "summary" not in results:
        print(f"no summary: {node.exit_message}")
        return 1
    print(format_table(results["summary"]["reactions"]))
    summary = results["summary"]
    print(f"{summary['n_success']} of {summary['n_reactions']} verified; details: aiida-hip reactions show PK")
    return 0


if __name__ == "__main__":
    # `verdi run` passes the arguments after the script name (after `--` if any)
    sys.exit(main([a for a in sys.argv[1:] if a != "--"]))
