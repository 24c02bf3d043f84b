"""DAG parsing: answer one ``DagFileParseRequest`` with one ``DagFileParsingResult``.

Parsing may read (variables, connections) and log, never write: the client gets
``DAG_PARSING_ACCESS`` only, so a write attempted while parsing fails locally with a clear error
instead of reaching Airflow. A bundle whose registration fails is reported as an import error of
the parsed file, the way Airflow reports a Python DAG file that does not import.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from ..core.masking import masker
from ..core.messages import DAG_PARSING_ACCESS, validate_request
from ..core.provider import BundleProvider, registry_of
from ..core.runtime_log import runtime_log
from .channel import CommChannel
from .frames import ProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any

REPLY_TIMEOUT_SECONDS = 30.0


def parse_dags(provider: BundleProvider, channel: CommChannel, request: dict[str, Any]) -> int:
    from ..introspection.serialization import serialize_registry

    fileloc = str(request.get("file") or "")
    bundle_path = request.get("bundle_path")
    relative = os.path.relpath(fileloc, str(bundle_path)) if bundle_path and fileloc else None
    if request.get("callback_requests"):
        runtime_log().warning(
            "Ignoring %d DAG callback request(s): bundles do not run DAG callbacks",
            len(request["callback_requests"]),
        )
    serialized: list[dict[str, Any]] = []
    import_errors: dict[str, str] = {}
    try:
        registry = registry_of(provider)
        now = datetime.now(timezone.utc)
        serialized = [
            {"data": data, "last_loaded": now}
            for data in serialize_registry(registry, fileloc=fileloc, relative_fileloc=relative)
        ]
    except Exception as exc:
        runtime_log().error("Parsing the bundle's DAGs failed", exc_info=exc)
        # Import errors are stored and shown by Airflow as they are, not redacted like log records.
        import traceback  # only a failed parse pays for it

        import_errors[relative or fileloc] = masker.redact("".join(traceback.format_exception(exc)))
    result = {
        "type": "DagFileParsingResult",
        "fileloc": fileloc,
        "serialized_dags": serialized,
        "import_errors": import_errors,
        "warnings": [],
    }
    validate_request(result, DAG_PARSING_ACCESS)
    try:
        channel.request(result, timeout=REPLY_TIMEOUT_SECONDS)
    except (ProtocolError, TimeoutError) as exc:
        runtime_log().error("Could not deliver the parsing result: %s", exc)
        return 1
    return 0
