"""playbooks/schedule.yml on the test host's container: it has no systemd, so the cron path.

The entry is written and removed as a file under /etc/cron.d (no cron daemon needed to check
it); the night's command in it is the scheduled entry `wanbench nightly` under flock, logging
to a file.
"""

import re
import shlex

import pytest

from .testhost_lib import CONTAINER, REPO, docker, sh

CHECKOUT = "/opt/wanbench"  # a checkout on the target (the play checks it is one)
CRON = "/etc/cron.d/wanbench-nightly"
BASE = {"schedule_hosts": "testhost-container", "schedule_checkout": CHECKOUT, "schedule_python": "/usr/bin/python3"}
INVENTORY = "../tests/fixtures/schedule"  # relative to inventory/, as the playbook fixture takes it


@pytest.fixture(scope="module")
def target(testhost):
    """The container with a copy of this checkout's playbooks and package at CHECKOUT, no entry yet."""
    docker("exec", CONTAINER, "rm", "-rf", CHECKOUT, CRON)
    docker("exec", CONTAINER, "mkdir", "-p", CHECKOUT)
    sh("bash", "-c", f"tar -C {shlex.quote(str(REPO))} -ch ansible.cfg playbooks wanbench"
                     f" | docker exec -i {CONTAINER} tar -x -C {CHECKOUT}")
    yield CONTAINER
    docker("exec", CONTAINER, "rm", "-rf", CHECKOUT, CRON, check=False)


def cron_file():
    res = docker("exec", CONTAINER, "cat", CRON, check=False)
    return res.stdout if res.returncode == 0 else None


def changed(result, task):
    return [e["event_data"]["res"].get("changed") for e in result.events
            if e.get("event") in ("runner_on_ok", "runner_item_on_ok") and e["event_data"].get("task") == task
            and "results" not in e["event_data"].get("res", {})]


def test_schedule_installs_and_removes_the_cron_entry(target, playbook):
    res = playbook(extravars=BASE, playbook="playbooks/schedule.yml", inventory=INVENTORY)
    assert res.rc == 0, res.stdout[-3000:]
    assert changed(res, "Install the cron entry") == [True]
    text = cron_file()
    entry, = [line for line in text.splitlines() if line and not line.startswith("#") and "=" not in line.split()[0]]
    assert entry == (f"0 2 * * * root cd {CHECKOUT} && PYTHONPATH={CHECKOUT} /usr/bin/flock -n"
                     " /var/lock/wanbench-nightly.lock /usr/bin/python3 -m wanbench.cli nightly --checkout"
                     f" {CHECKOUT} --matrix nightly --inventory inventory/production --quiet"
                     " >>/var/log/wanbench-nightly.log 2>&1")
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in text
    # the tools the entry calls are there (cron would run it with that PATH)
    docker("exec", CONTAINER, "test", "-x", "/usr/bin/flock")

    again = playbook(extravars={**BASE, "schedule_time": "02:00"}, playbook="playbooks/schedule.yml", inventory=INVENTORY)
    assert again.rc == 0 and changed(again, "Install the cron entry") == [False]  # idempotent

    moved = playbook(extravars={**BASE, "schedule_time": "23:45", "schedule_matrix": "framework"},
                     playbook="playbooks/schedule.yml", inventory=INVENTORY)
    assert moved.rc == 0 and re.search(r"^45 23 \* \* \* root .* --matrix framework ", cron_file(), re.M)

    gone = playbook(extravars={**BASE, "state": "absent"}, playbook="playbooks/schedule.yml", inventory=INVENTORY)
    assert gone.rc == 0, gone.stdout[-3000:]
    assert cron_file() is None
    twice = playbook(extravars={**BASE, "state": "absent"}, playbook="playbooks/schedule.yml", inventory=INVENTORY)
    assert twice.rc == 0 and changed(twice, "Remove the cron entry and the units") == [False, False, False]


@pytest.mark.parametrize("extra,message", [
    ({"schedule_time": "25:00"}, "schedule_time=25:00: expected HH:MM (00:00 to 23:59)"),
    ({"state": "gone"}, "state=gone: expected present or absent"),
    ({"schedule_checkout": "/nonexistent"},
     "testhost-container: /nonexistent is not a wanbench checkout (no playbooks/nightly.yml); pass -e schedule_checkout=DIR"),
])
def test_schedule_refuses_bad_inputs_in_one_line_and_writes_nothing(target, playbook, extra, message):
    res = playbook(extravars={**BASE, **extra}, playbook="playbooks/schedule.yml", inventory=INVENTORY)
    assert res.rc == 2 and res.failures() == [message], res.failures()
    assert cron_file() is None
