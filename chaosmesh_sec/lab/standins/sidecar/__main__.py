"""``python -m chaosmesh_sec.lab.standins.sidecar``: run the sidecar stand-in."""

import sys

from chaosmesh_sec.lab.standins.sidecar.app import main

sys.exit(main())
