"""``python -m consumers.enricher`` (the CLI runs it as ``scorestream enricher``)."""

import sys

from consumers.enricher.service import main

sys.exit(main())
