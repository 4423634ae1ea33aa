"""Running the pipelines of `pipelines/`: the only part of lethe that imports kfp, and only when
`lethe pipeline ...` or `lethe demo` runs (the schedule Job runs it from the image).

- `catalog`: the pipelines by name, their parameters (imports `pipelines`, so kfp, when asked);
- `compiler`: compile to YAML, submit one run to a KFP API;
- `scheduler`: the recurring run (six-field cron, one pipeline version per compiled YAML);
- `local`: one run on this machine with kfp.local, watched (lease heartbeat, failure note, redaction);
- `warm_tasks`: kfp.local's task processes forked from a warm interpreter (not started cold);
- `local_hooks`: what `local` needs from kfp.local that kfp.local has no API for, kept in one place;
- `summary`: what a run did, from the registry and the ledger (no kfp; the demo prints it too).

This package's `__init__` imports nothing: `lethe.kfp.summary` is imported without kfp.
"""
