"""The config file: YAML read strictly, secrets refused, unknown keys named with a did-you-mean."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path

import yaml

from ..errors import ConfigError
from .folders import user_config_path
from .keys import _COLUMNS_KEY, _GROUPS, _IGNORED_COLUMNS_KEY, _KEYS, _Key
from .model import CONFIG_ENVIRONMENT_VARIABLE, DEFAULT_CONFIG_FILE_NAME, SOURCE_CONFIG_FILE
from .values import _BACKSLASH_TIP, _Origin, _show

# ---------------------------------------------------------------------------------------------
# The config file.


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice (safe_load would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[object] = set()
        for key_node, _value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f'the key "{key}" is given twice; keep one', key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def _display_path(path: Path, cwd: Path) -> str:
    """The config file's name as messages show it: relative to the current folder when inside."""
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def _read_yaml(path: Path, shown: str) -> object:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(
            f"{shown}: the file is not UTF-8 text.", tip="Save it as UTF-8 in your editor."
        ) from None
    except OSError as exc:
        raise ConfigError(f"{shown}: the file cannot be read ({exc.strerror or exc}).") from exc
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        place = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "unreadable"
        tip = None
        if "escape character" in problem:
            tip = _BACKSLASH_TIP
        elif "'\\t'" in problem:
            tip = "Indent with spaces, not tabs."
        elif "given twice" not in problem:
            tip = (
                "Check the indentation and that every key ends with a colon; "
                "config.example.yaml shows the layout."
            )
        # Not str(exc): that quotes the offending line, which could hold a password.
        raise ConfigError(f"{shown}{place}: not valid YAML: {problem}.", tip=tip) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{shown}: not valid YAML: {exc}.") from None


_PASSWORD_WORDS = ("password", "passwd")
_PASSWORD_NAMES = {"pwd", "pass", "passphrase"}
_SECRET_WORDS = ("secret", "apikey", "api_key", "credential", "bearer", "authorization")


def _secret_kind(key: str, *, exact: bool = False) -> str | None:
    """'a password', 'a token' or 'a secret' when a config key looks like one, else None.

    exact: match whole names only (under columns:, where keys are header text, not settings).
    """
    name = key.strip().lower().replace("-", "_").replace(" ", "_")
    if name in ("password_encoding", "token_lifetime"):  # settings about secrets, not secrets
        return None
    if exact:
        words = name.split("_")
        if words[-1] in {*_PASSWORD_WORDS, *_PASSWORD_NAMES}:
            return "a password"
        return "a token" if words[-1] == "token" else None
    if any(word in name for word in _PASSWORD_WORDS) or name in _PASSWORD_NAMES:
        return "a password"
    if "token" in name:
        return "a token"
    if any(word in name for word in _SECRET_WORDS):
        return "a secret"
    return None


def _refuse_secrets(data: object, shown: str, prefix: str = "") -> None:
    if isinstance(data, Mapping):
        for key, value in data.items():
            path = f"{prefix}{key}"
            kind = _secret_kind(str(key), exact=prefix == "columns.")
            if kind == "a password":
                raise ConfigError(
                    f'{shown}: a password does not belong in a config file (key "{path}"). '
                    "Set the CCS_PASSWORD environment variable, or leave it unset to be asked "
                    "at the prompt."
                )
            if kind is not None:
                raise ConfigError(
                    f'{shown}: {kind} does not belong in a config file (key "{path}"). '
                    "The tool gets its own tokens from the server with the user name and "
                    "password; set the password in the CCS_PASSWORD environment variable, or "
                    "leave it unset to be asked at the prompt."
                )
            _refuse_secrets(value, shown, f"{path}.")
    elif isinstance(data, list):
        for item in data:
            _refuse_secrets(item, shown, prefix)


def _suggest(path: str) -> str | None:
    """The valid key nearest to a mistyped one: the same name in another group, or a close one.

    A key inside a group is only ever matched with keys (never with a group name); a key at the
    top level may be a mistyped group or a key written without its group.
    """
    leaf = path.rsplit(".", 1)[-1]
    key_paths = [key.path for key in _KEYS]
    candidates = key_paths if "." in path else [*_GROUPS, *key_paths]
    for candidate in key_paths:
        if candidate != path and candidate.rsplit(".", 1)[-1] == leaf:
            return candidate
    for key in _KEYS:  # the Python name of a key, e.g. output_dir for output.dir
        if key.attr == leaf and key.path != path:
            return key.path
    close = difflib.get_close_matches(path, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown_key(shown: str, path: str, group: str | None) -> tuple[str, str | None]:
    if group is None:
        accepted = "The groups are " + ", ".join(_GROUPS) + "."
    else:
        accepted = f'The keys under "{group}" are ' + ", ".join(_GROUPS[group]) + "."
    suggestion = _suggest(path)
    if suggestion:
        return f'{shown}: unknown key "{path}"; did you mean "{suggestion}"?', accepted
    return f'{shown}: unknown key "{path}". {accepted}', None


def _file_values(
    data: object, shown: str, base_dir: Path, errors: list[tuple[str, str | None]]
) -> list[tuple[_Key, object, _Origin]]:
    """The (key, raw value, origin) triples of a config file, unknown keys added to errors."""
    if data is None:
        return []
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{shown}: the file holds {_show(data)}, not a mapping of settings; "
            "use groups such as server: and pacing: with their keys indented below them.",
            tip="config.example.yaml shows every key.",
        )
    _refuse_secrets(data, shown)
    found: list[tuple[_Key, object, _Origin]] = []
    for group_name, group_value in data.items():
        group_path = str(group_name)
        if group_name not in _GROUPS:
            errors.append(_unknown_key(shown, group_path, None))
            continue
        if group_value is None:
            continue
        origin = _Origin(
            where=f'{shown}, key "{group_path}"',
            source=SOURCE_CONFIG_FILE,
            from_yaml=True,
            base_dir=base_dir,
        )
        if group_name == "columns":
            found.append((_COLUMNS_KEY, group_value, origin))
            found.append((_IGNORED_COLUMNS_KEY, group_value, origin))
            continue
        if not isinstance(group_value, Mapping):
            errors.append(
                (
                    f'{shown}, key "{group_path}": {_show(group_value)} is not a group of keys; '
                    f"indent its keys below it: " + ", ".join(_GROUPS[group_path]) + ".",
                    None,
                )
            )
            continue
        for name, value in group_value.items():
            path = f"{group_path}.{name}"
            key = _GROUPS[group_path].get(name) if isinstance(name, str) else None
            if key is None:
                errors.append(_unknown_key(shown, path, group_path))
                continue
            if value is None:
                continue
            found.append(
                (
                    key,
                    value,
                    _Origin(
                        where=f'{shown}, key "{path}"',
                        source=SOURCE_CONFIG_FILE,
                        from_yaml=True,
                        base_dir=base_dir,
                        key_hint=str(name),
                    ),
                )
            )
    return found


def _find_config_file(config_path: Path | None, env: Mapping[str, str], cwd: Path) -> Path | None:
    if config_path is not None or env.get(CONFIG_ENVIRONMENT_VARIABLE, "").strip():
        if config_path is not None:
            given, where = Path(config_path), ""
        else:
            given = Path(env[CONFIG_ENVIRONMENT_VARIABLE].strip())
            where = f"environment variable {CONFIG_ENVIRONMENT_VARIABLE}: "
        path = given.expanduser()
        if not path.is_absolute():
            path = cwd / path
        if not path.is_file():
            problem = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise ConfigError(
                f'{where}config file "{path}" {problem}.',
                tip="config.example.yaml, beside the README, shows every key.",
            )
        return path
    for candidate in (cwd / DEFAULT_CONFIG_FILE_NAME, user_config_path()):
        if candidate.is_file():
            return candidate
    return None
