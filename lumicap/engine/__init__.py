"""Training engine: the loop, checkpoints, schedules, EMA, distributed set-up, evaluation runner.

Kept import-free so that importing one part does not pull in the others."""
