#!/usr/bin/python
# -*- coding: utf-8 -*-
# wanbench: wait for a detached run, polling its run directory (documentation of the action plugin).
from __future__ import annotations

DOCUMENTATION = r"""
module: wanbench_wait
short_description: Wait a while for a detached wanbench run and report its progress
description:
  - Waits for a detached run until it writes its C(exit_code) file, in one task, printing one
    progress line per round. Runs of any length are waited out with constant stack and memory.
  - Each round is one plain shell command on the target (on the host, or inside a docker
    container through C(docker exec)); no module and no Python run there. It looks at the run
    directory every O(interval) seconds (every 0.25 s in a run's first 5 s) and returns as soon as
    the run has written its exit code or died, or when the round's window ends. The window follows
    the run's age, kept between O(min_window) and O(window) seconds, so that progress shows early
    and long runs print few lines.
  - The action plugin (action_plugins/wanbench_wait.py) judges each round on the controller -
    progress from the workload log C(run.log) (the last tqdm C(k/N) and phase markers) - and goes
    on until the run ends. Every round is read-only, so a lost SSH connection is waited out
    (O(reconnect_timeout)) and the wait goes on.
  - Fails when the run ended without writing an exit code, never started, or exceeded O(timeout)
    (then its process group is stopped unless O(kill_on_timeout) is false); the result names the
    C(status) (died, not-started, timeout, unreadable), the C(cause) and the C(log_tail).
options:
  run_dir:
    description: Run directory (holds C(.pid), C(run.log), C(exit_code)).
    type: path
    required: true
  container:
    description: Docker container that holds O(run_dir); empty means the host itself.
    type: str
    default: ""
  docker:
    description: Docker CLI on the host.
    type: str
    default: docker
  window:
    description: Longest round before a progress line, in seconds.
    type: int
    default: 30
  min_window:
    description: Shortest round before a progress line, in seconds.
    type: int
    default: 5
  interval:
    description: Seconds between two looks at the run directory (at most 0.25 s in a run's first 5 s).
    type: float
    default: 1.0
  timeout:
    description: Seconds since the run started after which the wait fails (the run keeps running).
    type: int
    default: 3600
  start_grace:
    description: Seconds after the run script was written within which the run must have started.
    type: int
    default: 120
  kill_on_timeout:
    description: At the timeout, stop the run's process group (TERM, KILL after 10 s) so that the next run
      finds the host free; false leaves it running.
    type: bool
    default: true
  platform:
    description: The platform; its record's mid-run sample (the CPU of other processes on C(reference)) is taken
      once, in the first round that finds the run alive and at least 3 s old, into C(<run_dir>/health/during/).
    type: str
    default: ""
  label:
    description: Name shown in the progress lines; empty means the run directory's name.
    type: str
    default: ""
  reconnect_timeout:
    description: Seconds to wait for a lost SSH connection to come back.
    type: float
    default: 300
  reconnect_sleep:
    description: Seconds between two reconnection attempts.
    type: float
    default: 2
author: wanbench
"""

EXAMPLES = r"""
- name: Wait for the run, a progress line at most every 30 s
  wanbench_wait:
    run_dir: /root/wanbench/runs/20261126T120000Z-ffn_only-a1b2c3
    container: mindie-wan2.1-xysheng
    window: 30
  register: wait_poll
"""

RETURN = r"""
done:
  description: Whether the run has finished (its exit_code file exists).
  type: bool
  returned: success
exit_code:
  description: Exit status of the workload, once done.
  type: int
  returned: success
phase:
  description: loading, warm-up, generating, saving, finished or starting.
  type: str
  returned: success
step:
  description: Last tqdm step seen in run.log.
  type: int
  returned: success
total:
  description: Total steps of the last tqdm bar seen.
  type: int
  returned: success
elapsed:
  description: Seconds since the run started.
  type: int
  returned: success
noticed_after:
  description: Seconds between the run writing its exit_code and this look noticing it.
  type: float
  returned: when done
status:
  description: C(ok) or C(failed) (non-zero exit code) when done; C(died), C(timeout), C(not-started) or C(unreadable) on failure.
  type: str
  returned: when done or failed
cause:
  description: Why the run did not end cleanly, e.g. C(exit code 1).
  type: str
  returned: when the run failed
log_tail:
  description: The last non-empty lines of run.log.
  type: list
  elements: str
  returned: when the run failed
run_dir:
  description: The run directory watched.
  type: str
  returned: always
progress:
  description: One line for people, e.g. C(generating, step 7/20, elapsed 42 s).
  type: str
  returned: always
rounds:
  description: Rounds (commands on the target) the wait took.
  type: int
  returned: always
reconnects:
  description: SSH connection losses waited out.
  type: int
  returned: always
"""

# The work is done by the action plugin (action_plugins/wanbench_wait.py): one plain shell command on
# the target per round, no Python there. This file documents the task's arguments (ansible-doc).
