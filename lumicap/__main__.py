import sys

from lumicap.cli import main

sys.exit(main())
