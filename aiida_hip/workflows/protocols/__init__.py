"""Protocol files (YAML) and the helper that turns one into builder inputs."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

FOLDER = Path(__file__).parent


def recursive_merge(base: dict, update: dict) -> dict:
    """``update`` merged into a copy of ``base``, nested mappings merged key by key."""
    out = copy.deepcopy(base)
    for key, value in (update or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = recursive_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_protocol_file(name: str) -> dict:
    return yaml.safe_load((FOLDER / f"{name}.yaml").read_text())


def get_protocol_inputs(name: str, protocol: str | None = None, overrides: dict | None = None) -> dict:
    """Default inputs, then the protocol's changes, then the caller's ``overrides``."""
    data = load_protocol_file(name)
    protocol = protocol or data["default_protocol"]
    if protocol not in data["protocols"]:
        raise ValueError(f"unknown protocol {protocol!r}; available: {sorted(data['protocols'])}")
    changes = {k: v for k, v in data["protocols"][protocol].items() if k != "description"}
    return recursive_merge(recursive_merge(data["default_inputs"], changes), overrides or {})


def available_protocols(name: str) -> dict[str, str]:
    data = load_protocol_file(name)
    return {key: value.get("description", "") for key, value in data["protocols"].items()}
