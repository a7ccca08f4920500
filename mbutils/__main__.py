"""``python -m mbutils``: the ``mbutils`` command (:func:`mbutils.cli.main`)."""
from .cli import main

raise SystemExit(main())
