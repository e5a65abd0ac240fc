from __future__ import annotations

from bench.http.run import main

raise SystemExit(main())
