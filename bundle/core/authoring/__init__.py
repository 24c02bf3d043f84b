"""The authoring API, one concept per module: what a bundle author writes.

* ``ids``: the ids Airflow accepts for DAGs and tasks.
* ``task``: ``Task``, a registered function, and ``>>`` / ``<<`` dependencies.
* ``dag``: ``Dag``, its tasks, ``with dag:`` and the checks made when a DAG is complete.
* ``group``: ``TaskGroup``, ``with dag.task_group(...)``: prefixed task ids, group default_args and
  Airflow's group dependencies.
* ``binding``: bound arguments: ``task.output`` / ``output["key"]`` references to upstream XComs,
  what calling a task inside ``with dag:`` records, and how the runtime resolves them with ``GetXCom``.
* ``params``: ``Param``, a DAG's params, merged with ``dag_run.conf`` at run time.
* ``param_schema``: the small JSON-schema validator for params (imported only by DAGs with params).

``bundle.core.registry`` holds the ``Registry`` of all DAGs and re-exports these names.
"""
