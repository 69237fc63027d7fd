"""load_settings(): defaults < config file < environment < command line, every problem at once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from ..errors import ConfigError
from .files import _display_path, _file_values, _find_config_file, _read_yaml
from .keys import _KEYS_BY_ATTR, _Key
from .model import (
    ENVIRONMENT_VARIABLES,
    SOURCE_COMMAND_LINE,
    SOURCE_DEFAULT,
    SOURCE_PROMPT,
    FrozenMapping,
    Settings,
)
from .values import _Bad, _Origin

# ---------------------------------------------------------------------------------------------
# Putting it together.


# The CLI's options are named after the attributes, except these.
_CLI_OPTIONS = MappingProxyType({"username": "--user"})


def _cli_option(attr: str) -> str:
    return _CLI_OPTIONS.get(attr, "--" + attr.replace("_", "-"))


def load_settings(
    *,
    cli: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve the settings: defaults < config file < environment (CCS_...) < command line."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else Path(cwd)
    errors: list[tuple[str, str | None]] = []
    values: dict[str, object] = {}
    sources: dict[str, str] = {}

    def take(key: _Key, raw: object, origin: _Origin) -> None:
        try:
            values[key.attr] = key.parse(raw, origin)
        except _Bad as bad:
            errors.append((f"{origin.where}: {bad.text}.", bad.tip))
            return
        sources[key.attr] = origin.source

    path = _find_config_file(config_path, env, cwd)
    if path is not None:
        shown = _display_path(path, cwd)
        data = _read_yaml(path, shown)
        for key, raw, origin in _file_values(data, shown, path.parent, errors):
            take(key, raw, origin)

    for attr, variable in ENVIRONMENT_VARIABLES.items():
        raw = env.get(variable)
        if raw is None or not raw.strip():
            continue
        origin = _Origin(
            where=f"environment variable {variable}",
            source=f"environment {variable}",
            from_yaml=False,
            base_dir=cwd,
        )
        take(_KEYS_BY_ATTR[attr], raw, origin)

    for attr, raw in (cli or {}).items():
        if raw is None:
            continue
        if attr not in _KEYS_BY_ATTR:
            # A wiring mistake in the CLI, not a user error.
            raise TypeError(
                f"load_settings(cli=...): {attr!r} is not a settings attribute; "
                "use the names of Settings' fields (config_path is its own argument)"
            )
        source = SOURCE_PROMPT if attr == "password" else SOURCE_COMMAND_LINE
        origin = _Origin(
            where=f"command line option {_cli_option(attr)}",
            source=source,
            from_yaml=False,
            base_dir=cwd,
        )
        take(_KEYS_BY_ATTR[attr], raw, origin)

    base = values.get("backoff_base", Settings.backoff_base)
    cap = values.get("backoff_cap", Settings.backoff_cap)
    if not errors and cap < base:  # type: ignore[operator]
        culprit = "backoff_cap" if "backoff_cap" in sources else "backoff_base"
        errors.append(
            (
                f"retries.backoff_cap ({cap:g} s, {sources.get('backoff_cap', SOURCE_DEFAULT)}) "
                f"is below retries.backoff_base ({base:g} s, "
                f"{sources.get('backoff_base', SOURCE_DEFAULT)}); make the cap at least the base.",
                f"Change {_KEYS_BY_ATTR[culprit].path}.",
            )
        )

    if errors:
        tips = list(dict.fromkeys(tip for _, tip in errors if tip))
        raise ConfigError("\n".join(text for text, _ in errors), tip="\n".join(tips) or None)

    return Settings(
        **values,  # type: ignore[arg-type]
        config_path=path,
        sources=FrozenMapping(sources),
    )
