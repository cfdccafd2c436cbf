"""``python -m consumers.notifier`` (the CLI runs it as ``scorestream notifier``)."""

import sys

from consumers.notifier.service import main

sys.exit(main())
