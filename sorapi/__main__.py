import sys

from sorapi.cli.main import main

sys.exit(main())
