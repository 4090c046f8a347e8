"""``python -m polymodal.data.datasets.avdigits build|verify``: the artifact builder's command line."""

from polymodal.data.datasets.avdigits.build import main

raise SystemExit(main())
