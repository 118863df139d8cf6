"""`python -m saetui.cli` is the `saetui` command."""

from saetui.cli import main

raise SystemExit(main())
