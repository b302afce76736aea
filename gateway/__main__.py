"""``python -m gateway`` is the ``phigate`` command."""
from gateway.cli import main

raise SystemExit(main())
