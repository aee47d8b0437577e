import sys

from riskmon.cli import main

sys.exit(main())
