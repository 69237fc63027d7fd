"""load_settings(): defaults < config file < environment < command line, every problem at once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    layers = _Layers()
    # Each layer is taken after the one below it, so that its values replace theirs.
    path = _take_file(layers, config_path, env, cwd)
    _take_environment(layers, env, cwd)
    _take_command_line(layers, cli or {}, cwd)
    _check_backoff(layers)
    _raise_errors(layers.errors)
    return Settings(
        **layers.values,  # type: ignore[arg-type]
        config_path=path,
        sources=FrozenMapping(layers.sources),
    )


@dataclass
class _Layers:
    """The values taken so far, where each one came from, and every problem found on the way."""

    values: dict[str, object] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    errors: list[tuple[str, str | None]] = field(default_factory=list)

    def take(self, key: _Key, raw: object, origin: _Origin) -> None:
        """Parse one raw value into its setting, or record why it cannot be."""
        try:
            self.values[key.attr] = key.parse(raw, origin)
        except _Bad as bad:
            self.errors.append((f"{origin.where}: {bad.text}.", bad.tip))
            return
        self.sources[key.attr] = origin.source


def _take_file(
    layers: _Layers, config_path: Path | None, env: Mapping[str, str], cwd: Path
) -> Path | None:
    """Take the config file's values, if there is a file; return its path (None without one)."""
    path = _find_config_file(config_path, env, cwd)
    if path is not None:
        shown = _display_path(path, cwd)
        data = _read_yaml(path, shown)
        for key, raw, origin in _file_values(data, shown, path.parent, layers.errors):
            layers.take(key, raw, origin)
    return path


def _take_environment(layers: _Layers, env: Mapping[str, str], cwd: Path) -> None:
    """Take the CCS_... environment variables that are set to something other than blanks."""
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
        layers.take(_KEYS_BY_ATTR[attr], raw, origin)


def _take_command_line(layers: _Layers, cli: Mapping[str, object], cwd: Path) -> None:
    """Take the command line's options that were given (None is an option left out)."""
    for attr, raw in cli.items():
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
        layers.take(_KEYS_BY_ATTR[attr], raw, origin)


def _check_backoff(layers: _Layers) -> None:
    """Record a backoff cap below the backoff base, once every value on its own is good."""
    values, sources = layers.values, layers.sources
    base = values.get("backoff_base", Settings.backoff_base)
    cap = values.get("backoff_cap", Settings.backoff_cap)
    if not layers.errors and cap < base:  # type: ignore[operator]
        culprit = "backoff_cap" if "backoff_cap" in sources else "backoff_base"
        layers.errors.append(
            (
                f"retries.backoff_cap ({cap:g} s, {sources.get('backoff_cap', SOURCE_DEFAULT)}) "
                f"is below retries.backoff_base ({base:g} s, "
                f"{sources.get('backoff_base', SOURCE_DEFAULT)}); make the cap at least the base.",
                f"Change {_KEYS_BY_ATTR[culprit].path}.",
            )
        )


def _raise_errors(errors: list[tuple[str, str | None]]) -> None:
    """Raise one ConfigError with every problem found, each tip once, if there was any."""
    if errors:
        tips = list(dict.fromkeys(tip for _, tip in errors if tip))
        raise ConfigError("\n".join(text for text, _ in errors), tip="\n".join(tips) or None)
