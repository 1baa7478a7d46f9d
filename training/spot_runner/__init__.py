"""The model-agnostic job runner: one config of a sweep, from job.json to results in the store.

``python -m spot_runner.job --job URI`` runs either the built-in trainer (``python -m two_tower.train``, a
separate process) or the user's own script, and knows nothing of the model. Its parts, one job per module:

- ``job``: the entry point and the flow of one attempt (status, fetch, run, sync, endings);
- ``jobfile``: job.json, parsed and checked;
- ``status_board``: the store's status.json (states, attempts, progress, history);
- ``storage``: S3 and local stores behind one interface; ``fetch``: the data; ``sync``: checkpoints and
  train.log into the store;
- ``lease``: lease.json in the store, one runner per config across machines;
- ``supervisor``: the child process (output teed into train.log, a stop forwarded as SIGTERM, every
  process of the job killed at its end);
- ``gpu_metrics``: starts the agent's GPU metrics when the child starts (arms the idle alarm);
- ``imds``: the EC2 instance metadata (IMDSv2); ``spot_notice``: polls the spot interruption notice and
  stops the child, in both modes;
- ``user_script``: script mode (fetch, patch, run the user's code and collect its results);
- ``exits``: the exit codes shared by the trainer, the runner and the bootstrap; ``progress_keys``: the
  trainer's progress keys the runner copies; ``quote``: user values cut to a readable length in
  messages; ``clock``, ``runlog``: timestamps and log lines.

No module here imports torch (or ``two_tower``) at import time: ``--fail`` and the bootstrap's early
failures work on a Python without it, and the trainer may import the small modules (``exits``,
``clock``, ``progress_keys``, ``quote``). Script mode asks ``two_tower.runtime.auto_device`` for the
device only when a job runs.
"""
