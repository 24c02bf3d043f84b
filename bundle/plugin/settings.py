"""The Go plugin's configuration, read the way its viper setup did.

The Edge Worker does not pass its own ``--execution-api-url`` to the plugin: a Go bundle found the
Execution API (and the task-log folder) only through the inherited environment or
``$AIRFLOW_HOME/go-sdk.yaml``, with viper's key mapping ``AIRFLOW__`` + key upper-cased, ``.`` to
``__`` and ``-`` to ``_``. A Python bundle must read the same places to work in the same deployment.

The YAML file is tiny (a few scalar keys, maybe nested one or two levels), so a small reader covers
it without importing PyYAML; anything it does not understand falls back to PyYAML, imported lazily.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

CONFIG_FILE = "go-sdk.yaml"
MAX_RECEIVE_KEY = "pybundle.max-receive-message-bytes"
DEFAULT_MAX_RECEIVE_BYTES = 4 * 1024 * 1024  # grpc-go's default server receive limit
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}


@dataclass(frozen=True)
class Settings:
    """What Execute needs; ``execution_api_url`` is ``None`` when nothing configures it."""

    execution_api_url: str | None
    base_log_folder: str
    task_stdout_only: bool = False
    task_to_stdout: bool = False


def env_key(key: str) -> str:
    """viper's environment name for a config key (``logging.base_log_folder`` → ``AIRFLOW__LOGGING__BASE_LOG_FOLDER``)."""
    return "AIRFLOW__" + key.upper().replace(".", "__").replace("-", "_")


def airflow_home(environ: Mapping[str, str]) -> Path:
    """``$AIRFLOW_HOME``, defaulting to ``~/airflow`` as the Go SDK's config loader did."""
    return Path(environ.get("AIRFLOW_HOME") or Path.home() / "airflow").expanduser()


def _lookup(environ: Mapping[str, str] | None) -> Callable[[str], str | None]:
    """A getter for config keys: environment first, then ``$AIRFLOW_HOME/go-sdk.yaml``, as viper
    resolves them."""
    env = os.environ if environ is None else environ
    file_values = read_config_file(airflow_home(env) / CONFIG_FILE)

    def get(key: str) -> str | None:
        value = env.get(env_key(key))
        if value is None:
            value = file_values.get(key.lower())
        return value

    return get


def max_receive_message_bytes(environ: Mapping[str, str] | None = None) -> int:
    """The largest gRPC request the plugin accepts (``pybundle.max-receive-message-bytes``).

    Go's gRPC servers, Go bundles included, refuse requests over 4 MiB unless told otherwise; an
    unbounded limit let one 256 MiB request grow the plugin by 1.4 GiB. The host's requests are a
    few hundred bytes. Raises ``ValueError`` (a plugin init error) for anything but a positive
    integer that fits gRPC's ``int``."""
    raw = _lookup(environ)(MAX_RECEIVE_KEY)
    if raw is None or not raw.strip():
        return DEFAULT_MAX_RECEIVE_BYTES
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if not 0 < value < 1 << 31:
        raise ValueError(
            f"{MAX_RECEIVE_KEY} ({env_key(MAX_RECEIVE_KEY)}) must be a number of bytes "
            f"between 1 and {(1 << 31) - 1}, not {raw!r}"
        )
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Environment first, then ``$AIRFLOW_HOME/go-sdk.yaml``, as viper resolves them."""
    get = _lookup(environ)
    url = get("execution-api-url") or None
    # Later Go code used logging.base_log_folder, earlier logging.base_log_path; unset means the
    # working directory, as Go's path.Join("", log_path) did.
    folder = get("logging.base_log_folder") or get("logging.base_log_path") or ""
    return Settings(
        execution_api_url=url,
        base_log_folder=folder,
        task_stdout_only=parse_bool(get("logging.task.stdout_only")),
        task_to_stdout=parse_bool(get("logging.task.to_stdout")),
    )


def parse_bool(value: str | None) -> bool:
    """Go's ``strconv.ParseBool``; anything else (and unset) is false, as viper's ``GetBool`` returns."""
    if value is None:
        return False
    return value.strip() in _TRUE


def read_config_file(path: Path) -> dict[str, str]:
    """Flattened ``{"a.b": "value"}`` (keys lower-cased like viper's) or ``{}`` when absent/unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    try:
        return parse_simple_yaml(text)
    except ValueError:
        return _parse_with_pyyaml(text)


_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-]+) *:(?: +(?P<value>.*?))? *$")


def parse_simple_yaml(text: str) -> dict[str, str]:
    """Block mappings of scalars only; raises ``ValueError`` for anything richer."""
    result: dict[str, str] = {}
    stack: list[tuple[int, str]] = []  # (indent, key) of the open parent mappings
    for raw in text.splitlines():
        line = _strip_comment(raw).rstrip()
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise ValueError("tab indentation")
        match = _KEY_LINE.match(line)
        if match is None:
            raise ValueError(f"unsupported YAML line: {raw!r}")
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if stack and indent <= stack[-1][0]:
            raise ValueError("bad indentation")
        key = ".".join([k for _, k in stack] + [match["key"].lower()])
        value = match["value"]
        if value is None or value == "":
            stack.append((indent, match["key"].lower()))
            continue
        result[key] = _scalar(value)
    return result


def _strip_comment(line: str) -> str:
    quote: str | None = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def _scalar(value: str) -> str:
    if value[0] in "'\"":
        if len(value) < 2 or value[-1] != value[0]:
            raise ValueError(f"unterminated quoted scalar {value!r}")
        inner = value[1:-1]
        if value[0] == "'":
            return inner.replace("''", "'")
        if "\\" in inner:
            raise ValueError("escape sequences need a real YAML parser")
        return inner
    if value[0] in "[{&*!|>%@`":
        raise ValueError(f"unsupported YAML scalar {value!r}")
    return value


def _parse_with_pyyaml(text: str) -> dict[str, str]:
    try:
        import yaml
    except ImportError:
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    flat: dict[str, str] = {}

    def walk(path: list[str], node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk([*path, str(key).lower()], value)
        elif node is not None and path:
            flat[".".join(path)] = str(node).lower() if isinstance(node, bool) else str(node)

    walk([], data)
    return flat
