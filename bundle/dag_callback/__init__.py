"""DAG-callback mode: a generated DAG file, inside the DAG processor, has the bundle run one of its
DAGs' ``on_success_callback`` / ``on_failure_callback`` (``PYBUNDLE_DAG_CALLBACK``; see ``mode``)."""
