"""`python -m saetui` is the `saetui` command."""

from saetui.cli import main

raise SystemExit(main())
