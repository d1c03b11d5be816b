import sys

from flux_launch.broker.main import main

sys.exit(main())
