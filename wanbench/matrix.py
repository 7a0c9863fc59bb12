"""Named matrices of the nightly run, and their split between the hosts of a group.

A matrix (``wanbench_matrices`` in group_vars/all/site.yml) names what one
night measures::

    wanbench_matrices:
      nightly:
        variants: [ffn_only, gate1]   # or  families: [fsdp, framework]
        repeats: 3                    # interleaved blocks (schedule.py); -e repeats=N wins

:func:`resolve` checks a matrix against the catalog; :func:`split` gives each
host of the inventory group a share of the candidates.  Every host runs its
own fresh controls (``baseline=rerun``), so comparisons stay within a host; a
host with no candidate runs the family baselines alone (its baseline history
goes on).  The split is round-robin over the candidates in matrix order and
the hosts in inventory order: the same matrix and group give every variant
the same host night after night (its history stays on one host).  A host that
drops out loses its share for that night; nothing moves to another host.
"""

from __future__ import annotations

from . import catalog as _catalog

KEYS = ("variants", "families", "repeats", "description")
WHERE = "wanbench_matrices (group_vars/all/site.yml)"


class MatrixError(ValueError):
    """A matrix or its use is wrong; the one-line message names the matrix and the problem."""


def resolve(matrices, name, catalog, platform="npu"):
    """{name, variants (names, matrix order), baselines ({name: its family's baseline}), repeats} of matrix
    ``name``, checked against the catalog; MatrixError names what is wrong."""
    if not isinstance(matrices, dict) or not matrices:
        raise MatrixError(f"no matrix defined: add one under {WHERE}")
    name = str(name or "").strip()
    known = ", ".join(sorted(map(str, matrices)))
    if not name:
        raise MatrixError(f"no matrix given: pass -e matrix=NAME (known: {known})")
    if name not in matrices:
        raise MatrixError(f"matrix {name!r}: not in {WHERE} (known: {known})")
    where = f"matrix {name!r}"
    m = matrices[name]
    if not isinstance(m, dict):
        raise MatrixError(f"{where}: expected a mapping with variants or families, and repeats")
    unknown = sorted(set(map(str, m)) - set(KEYS))
    if unknown:
        raise MatrixError(f"{where}: unknown key {', '.join(unknown)} (expected {', '.join(KEYS)})")
    if ("variants" in m) == ("families" in m):
        raise MatrixError(f"{where}: give either variants or families (not both, not neither)")
    repeats = m.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise MatrixError(f"{where}: repeats {repeats!r}: expected a whole number >= 1")
    key = "variants" if "variants" in m else "families"
    items = m[key]
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i for i in items):
        raise MatrixError(f"{where}: {key} must be a non-empty list of names")
    if len(set(items)) != len(items):
        raise MatrixError(f"{where}: {key} lists a name twice")
    try:
        if key == "variants":
            names = _catalog.select(catalog, items)
        else:
            names = [n for fam in items for n in _catalog.select(catalog, "all", family=fam)]
        resolved = _catalog.plan(catalog, names, platform=platform)["variants"]
    except _catalog.CatalogError as exc:
        raise MatrixError(f"{where}: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise MatrixError(f"{where}: the catalog is incomplete ({exc})") from None
    baselines = {r["variant"]: r["family_baseline"] for r in resolved}
    return {"name": name, "variants": names, "baselines": baselines, "repeats": repeats}


def split(resolved, hosts):
    """Each host's share: {host: {"variants": [names], "variant": "a,b", "repeats": n, "candidates": [names]}}.

    Candidates (every variant that is not its family's baseline) go round-robin
    to the hosts; each host's selection is its candidates (the schedule adds
    their family's control run) or, with no candidate, the matrix's family
    baselines.
    """
    hosts = [str(h) for h in hosts or []]
    if not hosts:
        raise MatrixError(f"matrix {resolved['name']!r}: no host to run it on (inventory group wanbench is empty)")
    if len(set(hosts)) != len(hosts):
        raise MatrixError(f"matrix {resolved['name']!r}: a host is listed twice: {', '.join(hosts)}")
    baselines, candidates = [], []
    for n in resolved["variants"]:
        base = resolved["baselines"][n]
        if base not in baselines:
            baselines.append(base)
        if n != base:
            candidates.append(n)
    shares = {h: [] for h in hosts}
    for i, n in enumerate(candidates):
        shares[hosts[i % len(hosts)]].append(n)
    out = {}
    for h in hosts:
        chosen = shares[h] or baselines
        out[h] = {"variants": chosen, "variant": ",".join(chosen), "repeats": resolved["repeats"],
                  "candidates": shares[h]}
    return out


def plan(matrices, name, catalog, hosts, platform="npu", variant=""):
    """:func:`resolve` then :func:`split`: {name, repeats, variants, hosts: {host: share}}.

    ``variant``: the play's ``variant`` input, which must be empty (a matrix
    chooses the variants).
    """
    if str(variant or "").strip():
        raise MatrixError(f"variant={variant!r} given with matrix={name!r}: a matrix chooses the variants;"
                          " drop -e variant (or run bench.yml for one selection)")
    resolved = resolve(matrices, name, catalog, platform)
    return {**resolved, "hosts": split(resolved, hosts)}
