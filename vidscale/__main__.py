import sys

from vidscale.cli import main

sys.exit(main())
