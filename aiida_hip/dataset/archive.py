"""Bulk data kept in the repository's history, not in main's tree: restored on demand, checked by hash.

A device call carries the whole tracked tree (refused over 64 MiB) and every CI checkout copies it,
so data that only some jobs need (the energy+force files of ``data/campaign/ef``) leave the tree:
the files stay in the history (an earlier commit of main holds them, so nothing is re-added and the
history does not grow), their folder's ``manifest.json`` (name and SHA-256 of every file) stays
tracked, and ``archive.json`` next to the data says which commit to take them from.
``python -m aiida_hip.dataset.archive restore`` writes the missing files back (``git show``, no
shell) and checks each hash; a clone without that history gets a clear error naming the commit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from ..common.files import sha256_of

ARCHIVE = Path("data/campaign/archive.json")


class ArchiveError(RuntimeError):
    """An archived file that cannot be restored (no git, no such commit, wrong hash)."""


def _git(args: list[str], cwd: Path) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except OSError as exc:
        raise ArchiveError(f"git is needed to restore archived data: {exc}") from exc
    if done.returncode:
        raise ArchiveError(f"git {' '.join(args)} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def read_archive(path: Path = ARCHIVE) -> dict:
    """``{"entries": [{"folder", "commit", "manifest", "list"}]}``: where each archived folder's files live."""
    return json.loads(Path(path).read_text())


def _listed(folder: Path, manifest: str, key: str) -> list[dict]:
    return json.loads((folder / manifest).read_text())[key]


def restore(path: Path = ARCHIVE, repo: Path | None = None, say=print) -> int:
    """Write every listed file that is missing or wrong from its archive commit; returns how many."""
    repo = Path(repo or Path(path).resolve().parents[2])
    written = 0
    for entry in read_archive(path)["entries"]:
        folder = repo / entry["folder"]
        for item in _listed(folder, entry["manifest"], entry["list"]):
            target = folder / item["file"]
            if target.is_file() and sha256_of(target) == item["sha256"]:
                continue
            blob = _git(["show", f"{entry['commit']}:{entry['folder']}/{item['file']}"], repo)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(blob)
            if sha256_of(tmp) != item["sha256"]:
                tmp.unlink()
                raise ArchiveError(f"{target}: the archived blob in {entry['commit'][:12]} does not match its hash")
            os.replace(tmp, target)
            written += 1
        say(f"{entry['folder']}: restored from {entry['commit'][:12]}, every file matches its SHA-256")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("restore",))
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    args = parser.parse_args(argv)
    try:
        count = restore(args.archive)
    except (ArchiveError, OSError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{count} file(s) written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
