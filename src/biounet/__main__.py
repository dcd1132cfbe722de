import sys

from biounet.cli.main import main

sys.exit(main())
