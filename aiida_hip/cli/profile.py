""":func:`open_profile`: load the AiiDA profile a command works in, or fail with a message in words."""

from __future__ import annotations

import click
from aiida import load_profile
from aiida.common.exceptions import MissingConfigurationError, ProfileConfigurationError
from aiida.manage import get_manager


def open_profile(profile: str | None):
    """Load ``profile`` (or the default one) and open its storage, or fail with a message in words."""
    loaded = get_manager().get_profile()
    if loaded is not None and profile in (None, loaded.name):
        return loaded
    try:
        loaded = load_profile(profile, allow_switch=True)
    except (MissingConfigurationError, ProfileConfigurationError) as exc:
        raise click.ClickException(f"no AiiDA profile to use ({exc}); run `aiida-hip setup` first") from exc
    try:  # a database that is down fails here, in words, not later in a traceback
        get_manager().get_profile_storage()
    except Exception as exc:
        storage = loaded.storage_config
        where = f" at {storage['database_hostname']}:{storage['database_port']}" if "database_port" in storage else ""
        raise click.ClickException(
            f"cannot open the storage of profile {loaded.name!r}{where}: {type(exc).__name__}: {exc}"
        ) from exc
    return loaded
