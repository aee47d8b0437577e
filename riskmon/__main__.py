import sys

from riskmon.cli import main

if __name__ == "__main__":  # the delivery process's fork server imports the main module again
    sys.exit(main())
