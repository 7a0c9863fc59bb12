# wanbench: shared by the target-side modules (library/); Ansible ships it with each module.
"""The key=value lines the modules' shell scripts print."""

import json


def parse_lines(text):
    """key=value lines -> {key: [values]}, in the order printed; other lines are ignored."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out.setdefault(key, []).append(value)
    return out


def lock_holder(got):
    """{holder, holder_age} from the holder= and holder_age= lines (the host lock's record); {} without."""
    if "holder" not in got:
        return {}
    try:
        holder = json.loads(got["holder"][0])
    except ValueError:
        holder = {"unreadable": got["holder"][0][:200]}
    return {"holder": holder, "holder_age": int(got.get("holder_age", ["0"])[0])}
