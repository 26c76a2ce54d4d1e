"""Whether two latency runs are comparable, from their environment fingerprints (recorded by
deployconv.runtime.fingerprint, re-exported here for validate's callers).

`comparable(a, b)` lists the fields whose difference makes two latency runs incomparable; an empty list means
a gate may compare them. Load average and the current clock are noise indicators, not identity: they are
recorded but never make runs incomparable. `ignore` drops fields a caller expects to differ (the gate: the
graph and engine hashes, which are the thing it measures).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from deployconv.runtime.fingerprint import SCHEMA, Fingerprint, collect, cpu_model, nvidia_driver

__all__ = ["IDENTITY_FIELDS", "SCHEMA", "Fingerprint", "collect", "comparable", "cpu_model", "nvidia_driver"]


# Fields that must be equal for two latency runs to be comparable. Fields where None means "not readable
# here" (governor, max clock, driver) only count when both sides know them.
_MUST_MATCH = ("cpu_model", "cpu_logical_cores", "cpu_affinity", "machine", "system", "device", "runtime",
               "runtime_version", "providers", "threads", "graph_sha256", "external_data_sha256", "engine_sha256",
               "batch", "inputs")
_MATCH_IF_KNOWN = ("cpu_governor", "cpu_max_freq_mhz", "driver")
IDENTITY_FIELDS = ("schema", *_MUST_MATCH, *_MATCH_IF_KNOWN)


def comparable(a: Fingerprint | dict[str, Any], b: Fingerprint | dict[str, Any],
               ignore: Collection[str] = ()) -> list[str]:
    """The differences that make latency from `a` and `b` incomparable, one line each ("field: a vs b");
    an empty list means comparable. Accepts Fingerprints or their JSON dicts. Fields in `ignore` are not
    compared (names from IDENTITY_FIELDS)."""
    da = a.to_dict() if isinstance(a, Fingerprint) else dict(a)
    db = b.to_dict() if isinstance(b, Fingerprint) else dict(b)

    def norm(v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v

    diffs = []
    if "schema" not in ignore and da.get("schema") != db.get("schema"):
        diffs.append(f"schema: {da.get('schema')!r} vs {db.get('schema')!r}")
    for name in _MUST_MATCH:
        va, vb = norm(da.get(name)), norm(db.get(name))
        if name not in ignore and va != vb:
            diffs.append(f"{name}: {va!r} vs {vb!r}")
    for name in _MATCH_IF_KNOWN:
        if name in ignore:
            continue
        va, vb = da.get(name), db.get(name)
        if va is not None and vb is not None and va != vb:
            diffs.append(f"{name}: {va!r} vs {vb!r}")
    return diffs

