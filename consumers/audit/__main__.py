"""``python -m consumers.audit`` (the CLI runs it as ``scorestream audit``)."""

import sys

from consumers.audit.service import main

sys.exit(main())
