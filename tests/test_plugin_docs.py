"""Every filter and module renders in ansible-doc, with its own name, examples and return values.

The filters are listed from the plugin files' FilterModule maps and the modules from library/, so
a new plugin without documentation fails here. A filter plugin file holds several filters: each
one's documentation is filter_plugins/<filter name>.yml (a DOCUMENTATION in the .py file would be
shown for every filter of the file).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(REPO),
       "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}


def filters():
    """{filter name: function} of every filter plugin file."""
    found = {}
    for path in sorted((REPO / "filter_plugins").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"docs_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found.update(module.FilterModule().filters())
    return found


def ansible_doc(kind, names):
    done = subprocess.run([str(BIN / "ansible-doc"), "-t", kind, "--json", *names], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def check(kind, name, entry):
    assert entry, f"ansible-doc -t {kind} {name} renders nothing"
    doc = entry["doc"]
    assert doc.get(kind if kind == "module" else "name") == name, f"{name} shows the documentation of {doc.get('name')}"
    assert doc.get("short_description") and doc.get("description"), name
    assert (entry.get("examples") or "").strip(), f"{name}: no EXAMPLES"
    assert entry.get("return"), f"{name}: no RETURN"
    return doc


def test_every_filter_renders_with_its_options():
    found = filters()
    rendered, stderr = ansible_doc("filter", sorted(found))
    missing = sorted(set(found) - set(rendered))
    assert not missing, f"no documentation for {missing}: {stderr}"
    for name, function in found.items():
        doc = check("filter", name, rendered[name])
        params = list(inspect.signature(function).parameters.values())[1:]
        named = {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        options = set(doc.get("options") or {}) - {"_input"}
        assert named <= options, f"{name}: arguments not documented: {sorted(named - options)}"
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            assert options <= named, f"{name}: documents arguments it does not take: {sorted(options - named)}"


def test_every_module_renders():
    names = sorted(p.stem for p in (REPO / "library").glob("*.py"))
    rendered, stderr = ansible_doc("module", names)
    assert sorted(rendered) == names, stderr
    for name in names:
        check("module", name, rendered[name])
