"""``python -m neuralfactor.cli``: the console script, for launchers such as torchrun -m."""

from neuralfactor.cli import main

raise SystemExit(main())
