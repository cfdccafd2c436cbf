import sys

from scorestream.cli import main

sys.exit(main())
