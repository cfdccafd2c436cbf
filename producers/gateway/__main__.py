"""``python -m producers.gateway`` (the CLI runs it as ``scorestream gateway``)."""

import sys

from producers.gateway.app import main

sys.exit(main())
