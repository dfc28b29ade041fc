"""The `arena-dashboard` console script: `streamlit run apps/dashboard.py`, with the same arguments.

    arena-dashboard                                  # the default store
    arena-dashboard --server.port 8502 -- --db PATH  # streamlit's options, then the dashboard's after --
"""

from __future__ import annotations

import sys
from pathlib import Path

DASHBOARD = Path(__file__).with_name("dashboard.py")


def dashboard() -> None:
    from streamlit.web import cli

    # A page for reading results: no "Deploy" or cache-clearing developer menu (a later --client.toolbarMode wins).
    sys.argv = ["streamlit", "run", str(DASHBOARD), "--client.toolbarMode", "viewer", *sys.argv[1:]]
    sys.exit(cli.main())
