"""Bulk data kept in the repository's history, not in main's tree: restored on demand, checked by hash.

A device call carries the whole tracked tree (refused over 64 MiB) and every CI checkout copies it,
so data that only some jobs need (the energy+force files of ``data/campaign/ef``) leave the tree:
the files stay in the history (an earlier commit of main holds them, so nothing is re-added and the
history does not grow), their folder's ``manifest.json`` (name and SHA-256 of every file) stays
tracked, and ``archive.json`` next to the data says which commit to take them from.
``python -m aiida_hip.dataset.archive restore`` writes the missing files back (``git show``, no
shell) and checks each hash; a clone without that history gets a clear error naming the commit.
``python -m aiida_hip.dataset.archive retire FILE...`` moves committed files of a folder out of the
tree: it records HEAD as their commit, untracks them and lists them in the folder's ``.gitignore``.
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
    """``{"entries": [{"folder", "commit", "manifest", "list", "files"?}]}``: where archived files live.

    An entry covers the files of its folder's manifest named in ``files``, or all of them without it.
    """
    return json.loads(Path(path).read_text())


def _listed(folder: Path, manifest: str, key: str) -> list[dict]:
    return json.loads((folder / manifest).read_text())[key]


def _source(entries: list[dict], name: str) -> dict | None:
    """The entry a file comes back from: the latest that names it, else the latest that covers its folder."""
    explicit = [e for e in entries if name in e.get("files", ())]
    covering = [e for e in entries if "files" not in e]
    return (explicit or covering or [None])[-1]


def restore(path: Path = ARCHIVE, repo: Path | None = None, say=print) -> int:
    """Write every listed file that is missing or wrong from its archive commit; returns how many."""
    repo = Path(repo or Path(path).resolve().parents[2])
    entries = read_archive(path)["entries"]
    written = 0
    for name in dict.fromkeys(e["folder"] for e in entries):
        of_folder = [e for e in entries if e["folder"] == name]
        folder = repo / name
        for item in _listed(folder, of_folder[0]["manifest"], of_folder[0]["list"]):
            target, entry = folder / item["file"], _source(of_folder, item["file"])
            if entry is None or (target.is_file() and sha256_of(target) == item["sha256"]):
                continue
            blob = _git(["show", f"{entry['commit']}:{name}/{item['file']}"], repo)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(blob)
            if sha256_of(tmp) != item["sha256"]:
                tmp.unlink()
                raise ArchiveError(f"{target}: the archived blob in {entry['commit'][:12]} does not match its hash")
            os.replace(tmp, target)
            written += 1
        say(f"{name}: every archived file is here and matches its SHA-256")
    return written


def retire(files: list[Path], manifest: str, listed: str, path: Path = ARCHIVE, repo: Path | None = None) -> str:
    """Move committed ``files`` (one folder, each in its manifest) out of the tree; returns the commit."""
    repo = Path(repo or Path(path).resolve().parents[2])
    folders = {Path(f).resolve().parent for f in files}
    if len(folders) != 1:
        raise ArchiveError(f"retire files of one folder at a time, not {sorted(map(str, folders))}")
    folder = Path(os.path.relpath(folders.pop(), repo.resolve()))
    names = sorted(Path(f).name for f in files)
    known = {item["file"] for item in _listed(repo / folder, manifest, listed)}
    if set(names) - known:
        raise ArchiveError(f"not listed in {folder / manifest}: {sorted(set(names) - known)}")
    commit = _git(["rev-parse", "HEAD"], repo).decode().strip()
    for name in names:  # each must be in HEAD exactly as it is on disk: the history is the only copy
        blob = _git(["rev-parse", f"HEAD:{folder / name}"], repo).decode().strip()
        if blob != _git(["hash-object", str(folder / name)], repo).decode().strip():
            raise ArchiveError(f"{folder / name} differs from HEAD: commit it before retiring it")
    data = read_archive(path)
    data["entries"].append(
        {"folder": str(folder), "commit": commit, "manifest": manifest, "list": listed, "files": names}
    )
    Path(path).write_text(json.dumps(data, indent=1) + "\n")
    ignore = repo / folder / ".gitignore"
    lines = ignore.read_text().splitlines() if ignore.is_file() else ["# archived (data/campaign/archive.json)"]
    ignore.write_text("\n".join([*lines, *(f"/{n}" for n in names if f"/{n}" not in lines)]) + "\n")
    _git(["rm", "-q", "--cached", *(str(folder / n) for n in names)], repo)
    return commit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("restore", "retire"))
    parser.add_argument("files", nargs="*", type=Path, help="retire: committed files of one folder")
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    parser.add_argument("--manifest", default="manifest.json", help="retire: the folder's manifest")
    parser.add_argument("--list", default="shards", help="retire: the manifest's list of files")
    args = parser.parse_args(argv)
    try:
        if args.command == "retire":
            commit = retire(args.files, args.manifest, args.list, args.archive)
            print(f"{len(args.files)} file(s) retired from the tree; their copy is commit {commit[:12]}")
            return 0
        count = restore(args.archive)
    except (ArchiveError, OSError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{count} file(s) written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
