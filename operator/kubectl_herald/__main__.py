"""``python -m kubectl_herald``: the same as the ``kubectl-herald`` console script (the krew shim runs this)."""

from kubectl_herald.cli import main

raise SystemExit(main())
