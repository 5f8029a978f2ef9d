"""`python -m insightql.runtime.cli`: the `iq` command (how the launcher starts each party)."""
from insightql.runtime.cli import main

raise SystemExit(main())
