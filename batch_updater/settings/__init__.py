"""The settings of a run: one frozen object built from defaults < config file < environment < CLI.

``load_settings()`` resolves everything once; every other module gets the resulting ``Settings``
passed in and never reads the environment or a file for its own configuration.

Where the settings come from, lowest precedence first:

1. the defaults below;
2. one YAML config file (``yaml.safe_load`` semantics): the ``config_path`` argument (``--config``),
   else ``CCS_CONFIG``, else ``./batch-update.yaml``, else the per-user file
   (``user_config_path()``); only the first one found is read, files are not merged;
3. the ``CCS_...`` environment variables (see ``ENVIRONMENT_VARIABLES``); an empty variable counts
   as not set;
4. the command line, which passes its already-parsed values keyed by attribute name.

Rules worth knowing:

- In the config file, numbers and true/false are written without quotes; ``rate: "5"`` is an
  error rather than a guess (values from the environment and the command line are text by nature
  and are parsed).
- A ``null`` (or empty) value in the config file means "not set": the default applies.
- Relative paths in the config file are relative to the config file's folder; relative paths from
  the environment or the command line are relative to the current directory.
- The password never comes from the config file (a ``password`` or token key there is refused);
  it comes from ``CCS_PASSWORD`` or from the CLI's prompt, and is kept in a ``Secret``.
- Unknown keys are an error with a did-you-mean; every problem found in one pass is reported at
  once.

Modules: `model` (Settings, Secret, constants), `folders` (per-user folders, network locations),
`values` (parsing one value), `keys` (the config keys), `files` (the config file), `load`
(load_settings).
"""

from ..tickets import Field, PriorityFormat
from .folders import (
    DRIVE_REMOTE,
    STATE_DIR_VARIABLE,
    network_location,
    user_config_path,
    user_state_folder,
    windows_drive_type,
)
from .load import load_settings
from .model import (
    API_PATH,
    APP_NAME,
    AUTO,
    CONFIG_ENVIRONMENT_VARIABLE,
    DEFAULT_CONFIG_FILE_NAME,
    DEFAULT_PORT,
    ENVIRONMENT_VARIABLES,
    MAX_ATTEMPTS,
    MAX_CONCURRENCY,
    MAX_RATE,
    SOURCE_COMMAND_LINE,
    SOURCE_CONFIG_FILE,
    SOURCE_DEFAULT,
    SOURCE_PROMPT,
    FrozenMapping,
    PasswordEncoding,
    Secret,
    Settings,
)
from .values import IGNORE_COLUMN, normalize_url, parse_field_name

__all__ = [
    "API_PATH",
    "APP_NAME",
    "AUTO",
    "CONFIG_ENVIRONMENT_VARIABLE",
    "DEFAULT_CONFIG_FILE_NAME",
    "DEFAULT_PORT",
    "DRIVE_REMOTE",
    "ENVIRONMENT_VARIABLES",
    "IGNORE_COLUMN",
    "MAX_ATTEMPTS",
    "MAX_CONCURRENCY",
    "MAX_RATE",
    "SOURCE_COMMAND_LINE",
    "SOURCE_CONFIG_FILE",
    "SOURCE_DEFAULT",
    "SOURCE_PROMPT",
    "STATE_DIR_VARIABLE",
    "Field",
    "FrozenMapping",
    "PasswordEncoding",
    "PriorityFormat",
    "Secret",
    "Settings",
    "load_settings",
    "network_location",
    "normalize_url",
    "parse_field_name",
    "user_config_path",
    "user_state_folder",
    "windows_drive_type",
]
