"""``sitewatch demo``: the whole platform on one machine, no Docker.

Starts Mosquitto and InfluxDB (Debian's packages) with generated configs in a state
folder, then ingest, the API and one edge agent per simulated site as child processes
(each the same ``sitewatch`` command an operator runs), prints where everything is and
runs until Ctrl-C, which stops every process it started, edge agents first so that they
drain their spools. Each site has a camera too, reading a synthetic site video made in
the state folder at the first start (``sitewatch simulate camera-video``).

``run.py`` runs it; ``sites.py`` says what each simulated site is; ``accounts.py`` and
``registry.py`` make its broker accounts and registry; ``configs.py`` writes the
services' configuration files; ``children.py`` starts and stops the child processes;
``summary.py`` is what it prints once everything is up.
"""

from sitewatch.programs.demo.run import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]
