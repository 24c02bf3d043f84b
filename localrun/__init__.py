"""``bundle-run``: run a bundle's DAG on one machine under Airflow's released task supervisor.

A development tool, separate from the runtime (``bundle/``) in the same way the packer
(``packer/``) is: it is never imported by a bundle program. The parent process (the CLI) owns the
embedded Execution API and its SQLite state, the scheduling decisions and everything printed; a
worker child process (``localrun.worker``) imports apache-airflow-task-sdk and runs the supervisor,
one task try at a time, relaying every Execution API request back to the parent.
"""
