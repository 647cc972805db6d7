"""Throughput of TS searches: the pipeline called directly vs AiiDA (SQLite profile, run in-process),
AiiDA + daemon (PostgreSQL + RabbitMQ) and AiiDA + daemon through SLURM, with 1, 8 and 32 reactions
per job.

    python benchmarks/throughput.py [--reactions 20] [--per-job 1,8,32] [--protocol moderate|fast]
                                    [--modes direct,sqlite,daemon,slurm,slurm-queued] [--workers 2]

Every configuration runs the same reactions (the eleven bundled ones, then seeded 0.02 A rattles of
them up to ``--reactions``) with GFN2-xTB energies and exact Hessians, the ``--protocol`` (default
``moderate``, what ``aiida-hip submit`` uses) and the Sella route, AiiDA caching off, the daemon with
``--workers`` workers. Jobs run one after the other (``max_concurrent`` 1), so that no two workers share
the two cores, except in ``slurm-queued``: there the batch hands SLURM up to four jobs at once (the
default of ``aiida-hip submit``) and SLURM runs them one at a time on the node's one GPU (every job asks
for ``gpu:1``), as on a cluster: the next job waits in the queue while AiiDA polls, retrieves and parses
the one before. The worker reports its own time (``worker_wall_time_s``:
imports, model/xTB start-up and the chemistry); the rest of the wall time (AiiDA engine, upload,
scheduler, polling, retrieval, parsing) is AiiDA's overhead. A second overhead column compares with
the pipeline called directly (all reactions in one process): it adds the per-job cost of starting a
worker, which packing amortises. Writes ``benchmarks/results/throughput_<protocol>.{json,md,png}``.
The daemon and SLURM modes need PostgreSQL, RabbitMQ and the local SLURM (``scripts/services.sh``,
``scripts/slurm-local.sh start``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OUT = ROOT / "benchmarks" / "results"
XTB = {"calculator": "xtb", "hessian": "reference"}
OVERRIDES = {"route": "sella", "parameters": XTB}


def make_reactions(n: int, folder: Path) -> list[str]:
    """The bundled reactions, then rattled copies (seeded), as reaction folders under ``folder``."""
    from ase.io import read, write

    from aiida_hip.reactions import bundled_reactions

    bundled = list(bundled_reactions(extended=True).items())
    rng = np.random.default_rng(20261126)
    names = []
    for i in range(n):
        name, (reactant_file, product_file) = bundled[i % len(bundled)]
        copy = i // len(bundled)
        target = folder / (name if copy == 0 else f"{name}_r{copy}")
        target.mkdir(parents=True, exist_ok=True)
        for side, path in (("reactant", reactant_file), ("product", product_file)):
            atoms = read(path)
            if copy:
                atoms.positions += rng.normal(scale=0.02, size=atoms.positions.shape)
            write(target / f"{side}.xyz", atoms)
        names.append(target.name)
    return names


def packed_settings(protocol: str) -> str:
    """A script printing the worker settings a batch with ``protocol`` uses (so the direct run does the same
    chemistry)."""
    script = """
        import json
        from aiida import orm
        from aiida_hip.workflows import ReactionBatchWorkChain
        from aiida_hip.workflows.reaction_batch import packed_settings
        from aiida_hip.calcjobs import structure_from_dict
        s = structure_from_dict({"symbols": ["H", "H"], "positions": [[0, 0, 0], [0, 0, 0.74]]})
        p = structure_from_dict({"symbols": ["H", "H"], "positions": [[0, 0, 0], [0, 0, 0.8]]})
        code = orm.load_code("hip-worker@localhost")
        b = ReactionBatchWorkChain.get_builder_from_protocol(
            code, {"x": (s, p)}, protocol=PROTOCOL, overrides=OVERRIDES
        )
        print(json.dumps(packed_settings(b.ts_search._inputs(prune=True))))
    """
    return script.replace("OVERRIDES", repr(OVERRIDES)).replace("PROTOCOL", repr(protocol))


class Profile:
    def __init__(self, name: str, production: bool, workers: int = 1):
        self.name, self.production = name, production
        self.path = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.env = os.environ | {"AIIDA_PATH": str(self.path), "PATH": f"{BIN}:{os.environ['PATH']}"}
        args = ["setup", "--profile", name, "--no-caching"]
        if production:
            args += ["--production", "--slurm", "slurm-local"]
        self.cli("aiida-hip", *args)
        if production:
            self.cli("verdi", "-p", name, "daemon", "start", str(workers))

    def cli(self, *args: str) -> str:
        done = subprocess.run([str(BIN / args[0]), *args[1:]], env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def python(self, code: str) -> dict:
        script = f"from aiida import load_profile\nload_profile({self.name!r})\n" + textwrap.dedent(code)
        return json.loads(self.cli("python", "-c", script).strip().splitlines()[-1])

    def close(self) -> None:
        if self.production:
            subprocess.run(
                [str(BIN / "verdi"), "-p", self.name, "daemon", "stop", "--timeout", "60"], env=self.env, check=False
            )
            from aiida_hip.cli.setup import drop_postgres_database

            drop_postgres_database(self.name)
        shutil.rmtree(self.path, ignore_errors=True)


def run_direct(folder: Path, names: list[str], settings: dict, workdir: Path) -> dict:
    """One ``aiida-hip-worker`` process for every reaction: the pipeline without AiiDA."""
    from ase.io import read

    from aiida_hip.worker.io import atoms_to_dict, read_results, write_input

    reactions = [
        {
            "name": name,
            "structures": {
                side: atoms_to_dict(read(folder / name / f"{side}.xyz")) for side in ("reactant", "product")
            },
        }
        for name in names
    ]
    workdir.mkdir(parents=True, exist_ok=True)
    write_input(workdir / "input.json", "ts_search", reactions, level=XTB, settings=settings, threads=1)
    start = time.perf_counter()
    subprocess.run([str(BIN / "aiida-hip-worker"), str(workdir / "input.json")], check=True, capture_output=True)
    wall = time.perf_counter() - start
    results, _ = read_results(workdir)
    statuses = [entry.get("summary", {}).get("status", entry["outcome"]) for entry in results["reactions"]]
    return {"wall_s": wall, "compute_s": results["wall_time_s"], "jobs": 1, "n_success": statuses.count("success")}


def run_aiida(
    profile: Profile, folder: Path, per_job: int, code: str, daemon: bool, gpus: bool, protocol: str, at_once: int = 1
) -> dict:
    """``hip.reaction_batch`` with packed jobs of ``per_job`` reactions; wall = the batch's lifetime."""
    options = {"custom_scheduler_commands": "#SBATCH --gres=gpu:1"} if gpus else None
    script = f"""
        import json, time
        from pathlib import Path
        from aiida import orm
        from aiida.engine import run_get_node, submit
        from aiida_hip.cli.submit import _reactions
        from aiida_hip.workflows import ReactionBatchWorkChain
        reactions = _reactions(Path({str(folder)!r}), None)
        builder = ReactionBatchWorkChain.get_builder_from_protocol(
            orm.load_code({code!r}), reactions, protocol={protocol!r}, overrides={OVERRIDES!r},
            reactions_per_job={per_job}, max_concurrent={at_once}, options={options!r},
        )
        builder.pack = orm.Bool(True)
        if {daemon!r}:
            node = submit(builder)
            while not node.is_terminated:
                time.sleep(1)
        else:
            node = run_get_node(builder)[1]
        jobs = [n for n in node.called if n.process_type.endswith("hip.ts_batch")]
        compute = sum(j.outputs.output_parameters["worker_wall_time_s"] or 0 for j in jobs)
        wall = (node.mtime - node.ctime).total_seconds()
        print(json.dumps({{"wall_s": wall, "compute_s": compute, "jobs": len(jobs),
                           "n_success": node.outputs.summary["n_success"], "exit_status": node.exit_status,
                           "max_concurrent": {at_once}}}))
    """
    return profile.python(script)


def derive(rows: list[dict]) -> list[dict]:
    """Overheads and rates from the measured times (the ``direct`` row is the baseline)."""
    direct = next((r["wall_s"] for r in rows if r["mode"] == "direct"), None)
    for r in rows:
        wall, n = r["wall_s"], r["n_reactions"]
        r["overhead_fraction"] = (wall - r["compute_s"]) / wall
        r["overhead_per_reaction_s"] = (wall - r["compute_s"]) / n
        r["overhead_vs_direct_fraction"] = (wall - direct) / wall if direct else None
        r["reactions_per_hour"] = n / wall * 3600
    return rows


def table(rows: list[dict]) -> str:
    head = (
        "| mode | reactions/job | jobs | wall [s] | worker [s] | AiiDA overhead [%] | per reaction [s] | "
        "vs direct [%] | reactions/hour | verified |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        vs = r.get("overhead_vs_direct_fraction")
        lines.append(
            f"| {r['mode']} | {r['per_job']} | {r['jobs']} | {r['wall_s']:.1f} | {r['compute_s']:.1f} | "
            f"{100 * r['overhead_fraction']:.1f} | {r['overhead_per_reaction_s']:.2f} | "
            f"{'-' if vs is None else f'{100 * vs:.1f}'} | {r['reactions_per_hour']:.0f} | "
            f"{r['n_success']}/{r['n_reactions']} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, protocol: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['mode']}\n{r['per_job']}/job" if r["mode"] != "direct" else "direct" for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    axes[0].bar(labels, [r["reactions_per_hour"] for r in rows], color="tab:blue")
    axes[0].set_ylabel("reactions per hour")
    x = np.arange(len(rows))
    axes[1].bar(x - 0.2, [100 * r["overhead_fraction"] for r in rows], 0.4, color="tab:orange", label="AiiDA")
    vs = [100 * (r.get("overhead_vs_direct_fraction") or 0) for r in rows]
    axes[1].bar(x + 0.2, vs, 0.4, color="tab:gray", label="vs direct (incl. worker start-up)")
    axes[1].set_xticks(x, labels)
    axes[1].axhline(15, color="k", ls="--", lw=1, label="target 15 %")
    axes[1].set_ylabel("overhead [% of wall time]")
    axes[1].legend()
    for ax in axes:
        ax.tick_params(axis="x", labelsize=8)
    n = rows[0]["n_reactions"]
    fig.suptitle(f"TS-search throughput, {n} reactions, GFN2-xTB, {protocol} protocol, 2-core CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reactions", type=int, default=20)
    parser.add_argument("--per-job", default="1,8,32")
    parser.add_argument("--modes", default="direct,sqlite,daemon,slurm,slurm-queued")
    parser.add_argument("--workers", type=int, default=2, help="Daemon workers of the production profile.")
    parser.add_argument("--protocol", default="moderate", choices=["fast", "moderate", "precise"])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--render", action="store_true", help="Only redo the table and plot from the JSON.")
    args = parser.parse_args()
    if args.render:
        data = json.loads((args.out / f"throughput_{args.protocol}.json").read_text())
        write(args.out, data["meta"], derive(data["rows"]))
        return
    modes = args.modes.split(",")
    per_jobs = [int(k) for k in args.per_job.split(",")]
    work = Path(tempfile.mkdtemp(prefix="hip-throughput-"))
    folder = work / "reactions"
    names = make_reactions(args.reactions, folder)
    rows: list[dict] = []

    def record(mode: str, per_job: int, result: dict) -> None:
        wall, compute = result["wall_s"], result["compute_s"]
        row = {"mode": mode, "per_job": per_job, "n_reactions": len(names), **result}
        rows.append(row)
        derive(rows)
        overhead = 100 * row["overhead_fraction"]
        print(
            f"{mode:>7} {per_job:>3}/job: wall {wall:7.1f} s, chemistry {compute:7.1f} s, "
            f"overhead {overhead:5.1f} %, {row['n_success']}/{len(names)} verified",
            flush=True,
        )

    pid = os.getpid()
    sqlite = Profile(f"bench-sqlite-{pid}", production=False) if {"sqlite", "direct"} & set(modes) else None
    production = (
        Profile(f"bench-prod-{pid}", production=True, workers=args.workers)
        if {"daemon", "slurm", "slurm-queued"} & set(modes)
        else None
    )
    try:
        if "direct" in modes:
            settings = sqlite.python(packed_settings(args.protocol))
            record("direct", len(names), run_direct(folder, names, settings, work / "direct"))
        configs = {  # mode -> (profile, code, through the daemon, GPU request, jobs handed over at once)
            "sqlite": (sqlite, "hip-worker@localhost", False, False, 1),
            "daemon": (production, "hip-worker@localhost", True, False, 1),
            "slurm": (production, "hip-worker@slurm-local", True, True, 1),
            "slurm-queued": (production, "hip-worker@slurm-local", True, True, 4),
        }
        for per_job in per_jobs:
            for mode, (profile, code, daemon, gpus, at_once) in configs.items():
                if mode in modes and not (mode == "slurm-queued" and per_job >= len(names)):  # one job: no queue
                    result = run_aiida(profile, folder, per_job, code, daemon, gpus, args.protocol, at_once)
                    record(mode, per_job, result)
    finally:
        for profile in (sqlite, production):
            if profile is not None:
                profile.close()
        shutil.rmtree(work, ignore_errors=True)

    meta = {
        "date": date.today().isoformat(),
        "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU",
        "level": f"GFN2-xTB (tblite), exact finite-difference Hessians; protocol {args.protocol}, route sella",
        "protocol": args.protocol,
        "reactions": names,
        "note": (
            f"daemon with {args.workers} workers; jobs one after the other (max_concurrent 1) except slurm-queued "
            "(up to 4 jobs queued in SLURM, run one at a time on the one GPU); AiiDA overhead = wall - worker time"
        ),
    }
    write(args.out, meta, rows)


def write(out: Path, meta: dict, rows: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"throughput_{meta.get('protocol', 'fast')}"
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    text = (
        f"# TS-search throughput ({meta['date']})\n\n{meta['level']}; {len(meta['reactions'])} reactions; "
        f"{meta['hardware']}; {meta['note']}.\n\n{table(rows)}\n"
    )
    stem.with_suffix(".md").write_text(text)
    plot(rows, stem.with_suffix(".png"), meta.get("protocol", "fast"))
    print("\n" + table(rows))


if __name__ == "__main__":
    main()
