# wanbench: shared by the target-side modules (library/); Ansible ships it with each module.
"""The key=value lines the modules' shell scripts print."""

import json

#: bash lines printing the host lock's record ($hold: its path) as holder= and holder_age= (read by
#: lock_holder); nothing when it is missing or goes between the two reads (a release racing this one).
PRINT_HOLDER = r"""
if t=$(stat -c %Y "$hold" 2>/dev/null) && h=$(head -c 4096 "$hold" 2>/dev/null); then
  echo "holder=${h//$'\n'/}"
  echo "holder_age=$(( $(date +%s) - t ))"
fi
"""


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
        holder = None
    if not isinstance(holder, dict) or not holder:  # cut, empty, or not a record
        holder = {"unreadable": got["holder"][0][:200]}
    return {"holder": holder, "holder_age": int(got.get("holder_age", ["0"])[0])}
