"""The broker's configuration: ``flux broker -c PATH`` (``--config-path``), as
flux-core reads it: PATH is a TOML file, a JSON file (``.json``, what
``JobspecV1.from_batch_command(conf=...)`` writes into the job's tmpdir), or a
directory whose ``*.toml`` files are merged (a table named twice is an error).

The object is served whole by ``config.get`` (``flux config get``). Tables whose
keys are broker attributes the services read as tunables (``TUNABLES``: e.g.
``[job-manager] inactive-age-limit = "1h"``) set those attributes, unless
``-S`` set them on the command line; their values are checked like ``-S``'s.
"""

import json
import os

TUNABLES = ("job-manager.inactive-age-limit", "job-manager.inactive-num-limit", "broker.quorum-timeout",
            "broker.shutdown-timeout", "tbon.fanout", "tbon.timeout", "tbon.keepalive", "log-stderr-level")


class ConfigError(ValueError):
    """The configuration cannot be read; the message is one line naming the file."""


def load(path):
    """The configuration object at ``path``.

    Raises:
        ConfigError: no such file or directory, or one that does not parse.
    """
    if os.path.isdir(path):
        conf = {}
        for name in sorted(os.listdir(path)):
            if name.endswith(".toml"):
                part = _load_file(os.path.join(path, name))
                for key in part:
                    if key in conf:
                        raise ConfigError(f"{os.path.join(path, name)}: table or key {key!r} is already defined "
                                          "in another file of the directory")
                conf.update(part)
        return conf
    if not os.path.exists(path):
        raise ConfigError(f"config path {path}: no such file or directory")
    return _load_file(path)


def _load_file(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    if path.endswith(".json"):
        try:
            conf = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    else:
        import tomllib

        try:
            conf = tomllib.loads(data.decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if not isinstance(conf, dict):
        raise ConfigError(f"{path}: the configuration must be a table (a JSON object)")
    return conf


def apply(conf, attrs, given):
    """Set the ``TUNABLES`` that ``conf`` has into ``attrs`` (as strings), except
    those in ``given`` (set with ``-S``).

    Raises:
        ConfigError: a tunable that is a table or a list.
    """
    for name in TUNABLES:
        section, _, key = name.rpartition(".")
        table = conf.get(section) if section else conf
        if not isinstance(table, dict) or key not in table or name in given:
            continue
        value = table[key]
        if isinstance(value, (dict, list)):
            raise ConfigError(f"config: {name}: expected a value, got a {type(value).__name__}")
        attrs[name] = ("1" if value else "0") if isinstance(value, bool) else str(value)
