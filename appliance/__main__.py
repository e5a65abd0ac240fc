"""``python -m appliance`` runs the CLI."""

from __future__ import annotations

import sys

from appliance.cli import main

sys.exit(main())
