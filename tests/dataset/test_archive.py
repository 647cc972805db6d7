"""Archived bulk data: files removed from main's tree come back from its history, checked by hash."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from aiida_hip.common.files import sha256_of
from aiida_hip.dataset.archive import ArchiveError, restore


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    done = subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, env={**env, "PATH": "/usr/bin:/bin"}
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A repository whose data folder held two files, then kept only their manifest."""
    folder = tmp_path / "data" / "campaign" / "ef"
    folder.mkdir(parents=True)
    files = {"a.h5": b"alpha" * 100, "b.h5": b"beta" * 50}
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    manifest = {"files": [{"file": n, "sha256": sha256_of(folder / n)} for n in files]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "data")
    commit = _git(tmp_path, "rev-parse", "HEAD")
    _git(tmp_path, "rm", "-q", "--cached", "data/campaign/ef/a.h5", "data/campaign/ef/b.h5")
    archive = tmp_path / "data" / "campaign" / "archive.json"
    entry = {"folder": "data/campaign/ef", "commit": commit, "manifest": "manifest.json", "list": "files"}
    archive.write_text(json.dumps({"entries": [entry]}))
    _git(tmp_path, "add", "data/campaign/archive.json")
    _git(tmp_path, "commit", "-q", "-m", "archive")
    for name in files:
        (folder / name).unlink()
    return tmp_path, archive, files


def test_restore_writes_missing_files_back_and_checks_them(repo):
    root, archive, files = repo
    folder = root / "data" / "campaign" / "ef"
    (folder / "b.h5").write_bytes(b"corrupted")  # wrong content is replaced too
    assert restore(archive, root, say=lambda m: None) == 2
    for name, blob in files.items():
        assert (folder / name).read_bytes() == blob
    assert restore(archive, root, say=lambda m: None) == 0  # nothing left to do


def test_restore_refuses_a_blob_that_does_not_match_its_hash(repo):
    root, archive, _ = repo
    manifest = root / "data" / "campaign" / "ef" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["files"][0]["sha256"] = "0" * 64
    manifest.write_text(json.dumps(data))
    with pytest.raises(ArchiveError, match="does not match"):
        restore(archive, root, say=lambda m: None)
    assert not (root / "data" / "campaign" / "ef" / "a.h5").exists()


def test_restore_names_an_unknown_commit(repo):
    root, archive, _ = repo
    data = json.loads(archive.read_text())
    data["entries"][0]["commit"] = "f" * 40
    archive.write_text(json.dumps(data))
    with pytest.raises(ArchiveError, match="git show"):
        restore(archive, root, say=lambda m: None)


def test_the_projects_archive_lists_only_files_its_manifest_hashes():
    """main's own archive entry points at a commit and a manifest that exist in this checkout."""
    root = Path(__file__).resolve().parents[2]
    data = json.loads((root / "data" / "campaign" / "archive.json").read_text())
    for entry in data["entries"]:
        listed = json.loads((root / entry["folder"] / entry["manifest"]).read_text())[entry["list"]]
        assert listed and all(len(item["sha256"]) == 64 for item in listed)
        assert len(entry["commit"]) == 40


def test_retire_untracks_committed_files_and_restore_brings_them_back(repo):
    """retire: HEAD becomes the files' commit, they leave the index and are ignored; restore round-trips."""
    from aiida_hip.dataset.archive import retire

    root, archive, _ = repo
    restore(archive, root, say=lambda m: None)
    folder = root / "data" / "campaign" / "ef"
    (folder / "c.h5").write_bytes(b"gamma" * 30)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"].append({"file": "c.h5", "sha256": sha256_of(folder / "c.h5")})
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArchiveError, match="HEAD"):  # not committed yet: nothing would hold it
        retire([folder / "c.h5"], "manifest.json", "files", archive, root)
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "c")
    commit = retire([folder / "c.h5"], "manifest.json", "files", archive, root)
    assert commit == _git(root, "rev-parse", "HEAD")
    assert "/c.h5" in (folder / ".gitignore").read_text()
    assert "c.h5" not in _git(root, "ls-files", "data/campaign/ef")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "retire c")
    assert "c.h5" not in _git(root, "status", "--porcelain")  # ignored from now on
    (folder / "c.h5").unlink()
    assert restore(archive, root, say=lambda m: None) == 1
    assert (folder / "c.h5").read_bytes() == b"gamma" * 30
    with pytest.raises(ArchiveError, match="not listed"):
        retire([folder / "zzz.h5"], "manifest.json", "files", archive, root)
