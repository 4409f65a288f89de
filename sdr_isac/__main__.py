"""``python -m sdr_isac`` runs the ``sdr-isac`` command."""

import sys

from sdr_isac.cli import main

sys.exit(main())
