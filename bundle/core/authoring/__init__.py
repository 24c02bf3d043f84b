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
* ``relations``: ``a >> b``, ``[a, b] >> c``: Airflow's dependency operators, for tasks and groups.
* ``outputs``: ``multiple_outputs``, inferred from a task function's return annotation.
* ``jsonvalue``: what counts as a JSON value where a DAG definition holds data.
* ``branching``: branch and short-circuit tasks, and the skip rules they follow at run time.
* ``mapping``: dynamic task mapping as declared (``partial`` / ``expand`` / ``expand_kwargs``).
* ``sensors``: sensors (``@dag.sensor``): a task whose function is a poke.
* ``assets``: ``Asset`` and asset expressions (outlets, inlets, asset schedules).

``bundle.core.registry`` holds the ``Registry`` of all DAGs.
"""
