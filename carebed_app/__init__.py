"""The composition root: the one package that wires the services together.

The `carebed` command, `carebed up` (one process per service, a private Mosquitto, migrations, the first
admin), the PostgreSQL runner of the tests and benchmarks, and backup/restore. It may import every other
package; nothing but the offline tools (benchmarks drive the assembled stack) and the tests imports it.
"""
