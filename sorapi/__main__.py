import sys

from sorapi.cli import main

sys.exit(main())
