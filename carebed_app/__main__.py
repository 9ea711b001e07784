"""`python -m carebed_app`: the `carebed` command, as `carebed up` starts each service's process."""

from __future__ import annotations

from carebed_app.cli import main

if __name__ == "__main__":
    main()
