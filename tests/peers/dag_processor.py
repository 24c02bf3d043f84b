"""Parse a Python DAG file with apache-airflow-core 3.3.2's real ``DagFileProcessorProcess``.

Run as a script (``python -m tests.peers.dag_processor FILE``): it forks the DAG processor's own
parsing child exactly as the DAG processor manager does, waits for its ``DagFileParsingResult``
and prints ``{"import_errors", "warnings", "dags": [serialized dict, ...], "log": [...]}`` as JSON.
Used to prove that a generated DAG file imports cleanly and serializes like the bundle.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from pathlib import Path


def parse(path: Path, timeout: float = 60.0) -> dict:
    import structlog
    from airflow.dag_processing.processor import DagFileProcessorProcess
    from airflow.sdk.api.client import Client
    from airflow.sdk.log import logging_processors

    log_path = Path(tempfile.mkdtemp(prefix="dag-processor-")) / "processor.log"
    with log_path.open("ab") as handle:
        logger = structlog.wrap_logger(
            structlog.BytesLogger(handle),
            processors=logging_processors(json_output=True),
            logger_name="processor",
        ).bind()
        processor = DagFileProcessorProcess.start(
            id=uuid.uuid4(),
            path=str(path),
            bundle_path=path.parent,
            bundle_name="pybundle-dag-file",
            dag_file_rel_path=path.name,
            callbacks=[],
            client=Client(base_url=None, token="", dry_run=True),
            logger=logger,
            logger_filehandle=handle,
        )
        deadline = time.monotonic() + timeout
        while not processor.is_ready:
            if time.monotonic() > deadline:
                processor.kill(9)
                raise TimeoutError(f"the DAG processor did not parse {path} within {timeout} s")
            processor._service_subprocess(0.2)
        result = processor.parsing_result
    records = [line for line in log_path.read_text().splitlines() if line.strip()]
    if result is None:
        return {"error": "no DagFileParsingResult", "log": records}
    return {
        "import_errors": result.import_errors or {},
        "warnings": [str(warning) for warning in (result.warnings or [])],
        "dags": [lazy.data for lazy in result.serialized_dags],
        "log": records,
    }


if __name__ == "__main__":
    print(json.dumps(parse(Path(sys.argv[1]).resolve()), default=str))
