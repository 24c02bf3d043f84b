"""The generated DAG file's ``_sensor`` helper (its own module: the writer and the audit both read it).

A bundle sensor is a ``@task.stub`` too (the bundle pokes and sends RescheduleTask itself); what the
scheduler reads is what core serializes for every sensor: ``_is_sensor`` (ReadyToRescheduleDep joins
the task's deps) and ``reschedule`` (that dep reads it for a task in state None). A stub's class does
not serialize either, so the helper adds them to the operator's serialized fields.
"""

from __future__ import annotations

SENSOR_HELPER = [
    "",
    "def _sensor(stub, *, reschedule):",
    '    """Declare a bundle sensor the way core serializes a sensor (``_is_sensor``, ``reschedule``)."""',
    "    operator = stub.operator",
    "    operator._is_sensor, operator.reschedule = True, reschedule",
    '    fields = type(operator).get_serialized_fields() | {"_is_sensor", "reschedule"}',
    "    operator.get_serialized_fields = lambda: fields",
    "",
    "",
]
