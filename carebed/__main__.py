"""`python -m carebed`, kept for habit and old unit files: hands over to the composition root's command.

The import runs only when this module is executed, so importing the kernel never loads a service; this file
is the one entry point tests/test_architecture.py allows to name carebed_app.
"""

from __future__ import annotations

if __name__ == "__main__":
    from carebed_app.cli import main

    main()
