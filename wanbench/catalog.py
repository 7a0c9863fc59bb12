"""Variant catalog: validation and resolution.

The catalog lives in ``group_vars/all/catalog.yml`` as five variables, handed
to this module as one mapping::

    {"common": wanbench_common,               # task, size, frame_num, ulysses_size, nproc, prompt
     "platform_settings": wanbench_platform_settings,   # per-platform overrides of common
     "families": wanbench_families,           # name -> {steps, baseline, description}
     "modes": wanbench_modes,                 # profiled | runtime_only -> {flags, env, prompt}
     "variants": wanbench_variants}           # name -> {base | family, mode, steps, env, flags, description}

A variant is either a root (``family:`` + ``mode:`` + ``steps:`` + full env
and flags) or derives from another (``base:``) and lists only what it
changes; ``null`` removes an inherited switch, ``false`` drops a flag.

:func:`check_catalog` validates everything and raises :class:`CatalogError`
with every problem found; :func:`resolve` turns one variant into its
environment and ``generate.py`` arguments; :func:`plan` resolves a selection
with each family's control.  What the catalog may hold is in
:mod:`wanbench.schema`; the per-run command in :mod:`wanbench.command`.
Nothing here touches a host.
"""

from __future__ import annotations

import hashlib
import json

from .schema import (AA, COMMON_SCHEMA, ENV_SCHEMA, FAMILY_KEYS, FLAG_SCHEMA, MAIN_VARIABLE_GROUPS, MANAGED_FLAGS,
                     MODE_FLAGS, MODE_KEYS, MODES, NAME_RE, PLATFORMS, SIZE_RE, VARIANT_KEYS)


class CatalogError(ValueError):
    """One or more catalog or selection errors; ``errors`` lists them all."""

    def __init__(self, errors):
        self.errors = list(errors) if isinstance(errors, (list, tuple)) else [errors]
        super().__init__("; ".join(self.errors))


# --------------------------------------------------------------------------- type checks
def _type_error(where, value, spec):
    kind = spec["type"]
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        return f"{where}: expected {kind}, got {type(value).__name__} {value!r}"
    if "choices" in spec and value not in spec["choices"]:
        return f"{where}: {value!r} is not one of {', '.join(map(str, spec['choices']))}"
    if "min" in spec and value < spec["min"]:
        return f"{where}: {value!r} is below the minimum {spec['min']}"
    if kind == "str" and ("\n" in value or "\0" in value):
        return f"{where}: must be one line"
    return None


def _mapping(where, value, errors):
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append(f"{where}: expected a mapping, got {type(value).__name__}")
        return {}
    return value


def _check_keys(where, mapping, allowed, errors):
    for key in mapping:
        if key not in allowed:
            errors.append(f"{where}: unknown key {key!r} (allowed: {', '.join(allowed)})")


def _check_env(where, env, errors):
    for key, value in env.items():
        spec = ENV_SCHEMA.get(key)
        if spec is None:
            errors.append(f"{where}: unknown switch {key!r} (known: {', '.join(sorted(ENV_SCHEMA))})")
        elif value is not None:
            err = _type_error(f"{where}.{key}", value, spec)
            if err:
                errors.append(err)


def _check_flags(where, flags, errors, allow_mode_flags=False):
    for key, value in flags.items():
        if key in MANAGED_FLAGS:
            errors.append(f"{where}: flag {key!r} is set by {MANAGED_FLAGS[key]}, not here")
            continue
        spec = FLAG_SCHEMA.get(key)
        if spec is None:
            errors.append(f"{where}: unknown generate.py flag {key!r} (known: {', '.join(sorted(FLAG_SCHEMA))})")
            continue
        if key in MODE_FLAGS and not allow_mode_flags:
            errors.append(f"{where}: flag {key!r} belongs to the measurement mode (wanbench_modes), not a variant")
            continue
        if value is not None:
            err = _type_error(f"{where}.{key}", value, spec)
            if err:
                errors.append(err)


# --------------------------------------------------------------------------- catalog
def _parts(catalog):
    if not isinstance(catalog, dict):
        raise CatalogError(f"catalog: expected a mapping, got {type(catalog).__name__}")
    missing = [k for k in ("common", "families", "modes", "variants") if k not in catalog]
    if missing:
        raise CatalogError(
            f"catalog: missing {', '.join(missing)} (is group_vars/all/catalog.yml loaded? "
            "run the top-level playbooks from the repository root)")
    errors = []
    common = _mapping("wanbench_common", catalog["common"], errors)
    families = _mapping("wanbench_families", catalog["families"], errors)
    modes = _mapping("wanbench_modes", catalog["modes"], errors)
    variants = _mapping("wanbench_variants", catalog["variants"], errors)
    platform_settings = _mapping("wanbench_platform_settings", catalog.get("platform_settings"), errors)
    if errors:
        raise CatalogError(errors)
    return common, platform_settings, families, modes, variants


def _check_common(where, common, errors, partial=False):
    _check_keys(where, common, tuple(COMMON_SCHEMA), errors)
    for key, spec in COMMON_SCHEMA.items():
        if key not in common:
            if not partial:
                errors.append(f"{where}: missing {key!r}")
            continue
        err = _type_error(f"{where}.{key}", common[key], spec) if key != "prompt" else (
            None if isinstance(common[key], str) else f"{where}.prompt: expected str")
        if err:
            errors.append(err)
    if isinstance(common.get("size"), str) and not SIZE_RE.match(common["size"]):
        errors.append(f"{where}.size: {common['size']!r} is not W*H")
    frames = common.get("frame_num")
    if isinstance(frames, int) and not isinstance(frames, bool) and frames % 4 != 1:
        errors.append(f"{where}.frame_num: {frames} is not 4n+1")


def _chain(name, variants):
    """Return the derivation chain root..name, or raise on a cycle / missing base."""
    chain, seen = [], set()
    cur = name
    while cur is not None:
        if cur in seen:
            raise CatalogError(f"variant {name!r}: base cycle through {' -> '.join(chain + [cur])}")
        if cur not in variants:
            raise CatalogError(f"variant {chain[-1] if chain else name!r}: unknown base {cur!r}")
        seen.add(cur)
        chain.append(cur)
        cur = (variants[cur] or {}).get("base")
    return list(reversed(chain))


def _merge(variants, chain, modes):
    """Merge a derivation chain into {family, mode, steps, env, flags}."""
    out = {"family": None, "mode": None, "steps": None, "env": {}, "flags": {}, "description": ""}
    for name in chain:
        v = variants[name] or {}
        for key in ("family", "mode", "steps", "description"):
            if v.get(key) is not None:
                out[key] = v[key]
        for key in ("env", "flags"):
            for k, val in (v.get(key) or {}).items():
                if val is None:
                    out[key].pop(k, None)
                else:
                    out[key][k] = val
    return out


def _main_diff(a, b):
    """Main variables that differ between two merged variants."""
    groups = set()
    for key in ("env", "flags"):
        keys = set(a[key]) | set(b[key])
        for k in keys:
            va, vb = a[key].get(k), b[key].get(k)
            if key == "flags" and FLAG_SCHEMA.get(k, {}).get("type") == "bool":
                va, vb = bool(va), bool(vb)
            if va != vb:
                group = MAIN_VARIABLE_GROUPS.get(k, k)
                if group is not None:
                    groups.add(group)
    if a["mode"] != b["mode"]:
        groups.add("mode")
    return sorted(groups)


def check_catalog(catalog):
    """Validate the whole catalog. Returns a list of warnings; raises CatalogError."""
    common, platform_settings, families, modes, variants = _parts(catalog)
    errors, warnings = [], []
    _check_common("wanbench_common", common, errors)
    for plat, settings in platform_settings.items():
        if plat not in PLATFORMS:
            errors.append(f"wanbench_platform_settings: unknown platform {plat!r} (known: {', '.join(PLATFORMS)})")
        _check_common(f"wanbench_platform_settings.{plat}",
                      _mapping(f"wanbench_platform_settings.{plat}", settings, errors), errors, partial=True)
    for mname, mode in modes.items():
        if mname not in MODES:
            errors.append(f"wanbench_modes: unknown mode {mname!r} (known: {', '.join(MODES)})")
        mode = _mapping(f"wanbench_modes.{mname}", mode, errors)
        _check_keys(f"wanbench_modes.{mname}", mode, MODE_KEYS, errors)
        _check_env(f"wanbench_modes.{mname}.env", _mapping(f"wanbench_modes.{mname}.env", mode.get("env"), errors), errors)
        _check_flags(f"wanbench_modes.{mname}.flags",
                     _mapping(f"wanbench_modes.{mname}.flags", mode.get("flags"), errors), errors, allow_mode_flags=True)
        if "prompt" in mode and not isinstance(mode["prompt"], str):
            errors.append(f"wanbench_modes.{mname}.prompt: expected str")
    for fname, fam in families.items():
        where = f"wanbench_families.{fname}"
        fam = _mapping(where, fam, errors)
        _check_keys(where, fam, FAMILY_KEYS, errors)
        if not NAME_RE.match(str(fname)):
            errors.append(f"{where}: name must match {NAME_RE.pattern}")
        err = _type_error(f"{where}.steps", fam.get("steps"), {"type": "int", "min": 1})
        if err:
            errors.append(err)
        base = fam.get("baseline")
        if base not in variants:
            errors.append(f"{where}.baseline: unknown variant {base!r}")
        elif (variants[base] or {}).get("base") is not None:
            errors.append(f"{where}.baseline: {base!r} must be a root variant (no base:)")
    if errors:
        raise CatalogError(errors)

    for name, v in variants.items():
        where = f"wanbench_variants.{name}"
        if not NAME_RE.match(str(name)):
            errors.append(f"{where}: name must match {NAME_RE.pattern}")
        if name in (AA, "all"):
            errors.append(f"{where}: {name!r} is a reserved selection name")
        v = _mapping(where, v, errors)
        _check_keys(where, v, VARIANT_KEYS, errors)
        _check_env(f"{where}.env", _mapping(f"{where}.env", v.get("env"), errors), errors)
        _check_flags(f"{where}.flags", _mapping(f"{where}.flags", v.get("flags"), errors), errors)
        if v.get("base") is None:
            for key in ("family", "mode", "steps"):
                if key not in v:
                    errors.append(f"{where}: a root variant (no base:) needs {key!r}")
        if "family" in v and v["family"] not in families:
            errors.append(f"{where}.family: unknown family {v['family']!r} (known: {', '.join(families)})")
        if "mode" in v and v["mode"] not in modes:
            errors.append(f"{where}.mode: unknown mode {v['mode']!r} (known: {', '.join(modes)})")
        if "steps" in v:
            err = _type_error(f"{where}.steps", v["steps"], {"type": "int", "min": 1})
            if err:
                errors.append(err)
    if errors:
        raise CatalogError(errors)

    for name in variants:
        try:
            chain = _chain(name, variants)
        except CatalogError as exc:
            errors.extend(exc.errors)
            continue
        merged = _merge(variants, chain, modes)
        own_family = (variants[name] or {}).get("family")
        if own_family is not None and len(chain) > 1:
            base_family = _merge(variants, chain[:-1], modes)["family"]
            if base_family != own_family:
                errors.append(f"wanbench_variants.{name}: family {own_family!r} differs from its base's {base_family!r}")
        errors.extend(_semantic_errors(f"wanbench_variants.{name}", merged, families))
        if len(chain) > 1:
            diff = _main_diff(_merge(variants, chain[:-1], modes), merged)
            if len(diff) > 1:
                warnings.append(
                    f"variant {name!r} differs from its base {chain[-2]!r} in {len(diff)} main variables "
                    f"({', '.join(diff)}); change one at a time")
    if errors:
        raise CatalogError(errors)
    return warnings


def _semantic_errors(where, merged, families):
    errors = []
    fam = families.get(merged["family"], {})
    if merged["steps"] != fam.get("steps"):
        errors.append(f"{where}: steps {merged['steps']} differ from family {merged['family']!r}'s "
                      f"{fam.get('steps')} (results compare only within a family)")
    env, flags = merged["env"], merged["flags"]
    group = env.get("WAN_FSDP_BLOCK_GROUP_SIZE", 1)
    wrap = env.get("WAN_FSDP_WRAP_MODE", "block")
    if (group != 1 or wrap != "block") and flags.get("t5_fsdp") and not flags.get("dit_fsdp"):
        errors.append(f"{where}: WAN_FSDP_BLOCK_GROUP_SIZE={group} / WAN_FSDP_WRAP_MODE={wrap} with "
                      "--t5_fsdp but without --dit_fsdp would reach only the T5 encoder; "
                      "block grouping and wrap modes must never reach T5")
    if flags.get("use_rainfusion") and flags.get("cfg_fused_forward"):
        errors.append(f"{where}: --use_rainfusion requires the non-fused CFG path (drop --cfg_fused_forward)")
    return errors


# --------------------------------------------------------------------------- selection
def select(catalog, spec, family=None):
    """Variant names for ``spec`` ("a,b", a list, or "all" with ``family``)."""
    variants = catalog["variants"]
    families = catalog["families"]
    if isinstance(spec, str):
        names = [s.strip() for s in spec.split(",") if s.strip()]
    elif isinstance(spec, (list, tuple)):
        names = [str(s).strip() for s in spec]
    else:
        names = []
    known = ", ".join(sorted(variants)) + f"; {AA} = the baseline against itself"
    if not names:
        raise CatalogError(f"no variant given: pass -e variant=NAME[,NAME...] or -e variant=all (known: {known})")
    if names == ["all"]:
        fam = family or "fsdp"
        if fam not in families:
            raise CatalogError(f"unknown family {fam!r} (known: {', '.join(families)})")
        return [n for n in variants if _merge(variants, _chain(n, variants), catalog["modes"])["family"] == fam]
    unknown = [n for n in names if n not in variants and n != AA]
    if unknown:
        raise CatalogError(f"unknown variant {', '.join(map(repr, unknown))} (known: {known})")
    seen = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return seen


def effective_common(catalog, platform, overrides):
    """The common settings on ``platform`` (its platform settings and ``overrides`` applied), checked."""
    common = dict(catalog["common"])
    common.update((catalog.get("platform_settings") or {}).get(platform) or {})
    common.update({k: v for k, v in (overrides or {}).items() if v not in (None, "")})
    errors = []
    _check_common("common settings", common, errors)
    if errors:
        raise CatalogError(errors)
    return common


def resolve(catalog, name, platform="npu", mode=None, overrides=None):
    """Resolve one variant into its settings, environment and generate.py arguments.

    ``mode`` overrides the variant's measurement mode; ``overrides`` may replace
    common settings for this run (e.g. ``{"prompt": ...}``).
    """
    if platform not in PLATFORMS:
        raise CatalogError(f"unknown platform {platform!r} (known: {', '.join(PLATFORMS)})")
    variants, families, modes = catalog["variants"], catalog["families"], catalog["modes"]
    if name not in variants:
        raise CatalogError(f"unknown variant {name!r} (known: {', '.join(sorted(variants))})")
    chain = _chain(name, variants)
    merged = _merge(variants, chain, modes)
    mode = mode or merged["mode"]
    if mode not in modes:
        raise CatalogError(f"unknown mode {mode!r} (known: {', '.join(modes)})")
    merged["mode"] = mode
    errors = _semantic_errors(f"variant {name!r}", merged, families)
    if errors:
        raise CatalogError(errors)
    mode_def = modes[mode] or {}
    common = effective_common(catalog, platform, {"prompt": mode_def.get("prompt"), **(overrides or {})})
    steps = merged["steps"]

    par = common["ulysses_size"] * merged["flags"].get("ring_size", 1) * \
        merged["flags"].get("cfg_size", 1) * merged["flags"].get("tp_size", 1)
    if par != common["nproc"]:
        raise CatalogError(f"variant {name!r}: cfg_size x ulysses_size x ring_size x tp_size = {par}, "
                           f"but nproc = {common['nproc']}")

    env = {}
    for source in (merged["env"], mode_def.get("env") or {}):
        for k, v in source.items():
            if v is not None:
                env[k] = str(v)
    flags = dict(merged["flags"])
    for k in MODE_FLAGS:
        flags.pop(k, None)
    flags.update(mode_def.get("flags") or {})

    args = ["--task", common["task"], "--size", common["size"],
            "--frame_num", str(common["frame_num"]), "--sample_steps", str(steps),
            "--ulysses_size", str(common["ulysses_size"])]
    for key, value in flags.items():
        if value is None:
            continue
        if FLAG_SCHEMA.get(key, {}).get("value"):  # a flag that takes True/False
            args.extend([f"--{key}", str(bool(value))])
        elif value is True:
            args.append(f"--{key}")
        elif value is not False:
            args.extend([f"--{key}", str(value)])
    settings = {"task": common["task"], "size": common["size"], "frame_num": common["frame_num"],
                "steps": steps, "ulysses_size": common["ulysses_size"], "nproc": common["nproc"],
                "prompt": common["prompt"], "mode": mode, "platform": platform}
    family = merged["family"]
    resolved = {
        "variant": name,
        "family": family,
        "family_baseline": families[family]["baseline"],
        "base": chain[-2] if len(chain) > 1 else None,
        "description": merged["description"],
        "mode": mode,
        "steps": steps,
        "settings": settings,
        "env": env,
        "flags": {k: v for k, v in flags.items()
                  if v is not None and (v is not False or FLAG_SCHEMA.get(k, {}).get("value"))},
        "args": args,
    }
    resolved["fingerprint"] = fingerprint(resolved)
    resolved["common_fingerprint"] = common_fingerprint(resolved)
    return resolved


def fingerprint(resolved):
    """Hash of everything that defines a measurement except run-local paths and ports."""
    payload = {k: resolved[k] for k in ("settings", "env", "args")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def common_fingerprint(resolved):
    """Hash of the common settings (task, size, frames, steps, ulysses, prompt, nproc, mode, platform)."""
    return hashlib.sha256(json.dumps(resolved["settings"], sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _aa(baseline):
    """The A/A arm: the baseline's settings (and fingerprint) under the name ``aa``."""
    return {**baseline, "variant": AA, "base": baseline["variant"], "aa": True,
            "description": f"A/A: {baseline['variant']} against itself (the host's noise)"}


def plan(catalog, spec, platform="npu", mode=None, overrides=None, family=None):
    """Resolve a selection. Returns {"variants": [resolved...], "controls": {family: resolved baseline},
    "warnings": [...]}: each selected family's baseline is resolved with the same mode and settings
    so that it can serve as the control run."""
    warnings = check_catalog(catalog)
    names = select(catalog, spec, family=family)
    fam = family or "fsdp"
    resolved = [_aa(resolve(catalog, catalog["families"][fam]["baseline"], platform, mode, overrides))
                if n == AA else resolve(catalog, n, platform, mode, overrides) for n in names]
    # a selected family baseline runs first
    resolved.sort(key=lambda r: 0 if r["variant"] == r["family_baseline"] else 1)
    controls = {}
    for r in resolved:
        key = f"{r['family']}:{r['mode']}"
        if key not in controls:
            controls[key] = resolve(catalog, r["family_baseline"], platform, r["mode"], overrides)
    relevant = [w for w in warnings if any(f"variant {r['variant']!r} " in w for r in resolved)]
    return {"variants": resolved, "controls": controls, "warnings": relevant}


def selection_text(selection, baseline):
    """The resolved selection as one line: ``a, b on npu (profiled); baseline=rerun``."""
    runs = selection["variants"]
    platforms = ", ".join(dict.fromkeys(r["settings"]["platform"] for r in runs))
    modes = ", ".join(dict.fromkeys(r["mode"] for r in runs))
    return f"{', '.join(r['variant'] for r in runs)} on {platforms} ({modes}); baseline={baseline}"
