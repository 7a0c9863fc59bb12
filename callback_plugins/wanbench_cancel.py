# A cancelled bisect (SIGINT to ansible-playbook) still restores the repository: playbooks/bisect.yml.
from __future__ import annotations

import os
import signal

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: wanbench_cancel
type: aggregate
short_description: Turn the first interrupt of a guarded play into a clean stop
description:
  - Ansible stops at once on SIGINT (Ctrl-C) and runs no C(always) section. In a play with
    C(wanbench_cancel_guard=true) in its vars, the first SIGINT only sets C(WANBENCH_CANCELLED=1) in
    the environment of the tasks that follow; the play checks it between runs (the task under way ends
    first) and fails there, so that its C(always) section restores what it changed. A second SIGINT
    stops at once, as Ansible does.
"""

CANCEL_ENV = "WANBENCH_CANCELLED"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "wanbench_cancel"
    CALLBACK_NEEDS_ENABLED = False  # loaded from callback_plugins/ (ansible.cfg); acts only in guarded plays

    def v2_playbook_on_play_start(self, play):
        if not play.get_vars().get("wanbench_cancel_guard"):
            return
        os.environ.pop(CANCEL_ENV, None)

        def interrupted(signum, frame):
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second interrupt stops at once
            os.environ[CANCEL_ENV] = "1"
            self._display.warning("interrupted: the task under way ends, then the play restores the repository"
                                  " and stops (interrupt again to stop at once, leaving it as it is)")

        signal.signal(signal.SIGINT, interrupted)
