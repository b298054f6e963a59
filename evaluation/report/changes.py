"""The report's "What changed" section: the diff of this version against @production.

Kept apart from the rest of the report (its own template block, ``_changes.html.j2``) so the
section can change without touching the others. ``changes`` is
``experiments.diff.VersionDiff.to_dict()``, or None when there was no production version.
"""

from __future__ import annotations

from typing import Any

SHOWN_IDS = 20


def changes_view(changes: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the template and the Markdown show: summary rows, id lists, config and metrics."""
    if changes is None:
        return None
    before, after = changes["chunk_count"]
    documents = changes.get("documents")
    rows = [("against", str(changes["before"])), ("chunks", f"{before} → {after}")]
    ids: list[tuple[str, list[str], int]] = []
    if documents is None:
        rows.append(("documents", f"unknown: {changes.get('note', '')}"))
    else:
        for kind in ("added", "removed", "changed"):
            found = documents[kind]
            rows.append((f"documents {kind}", str(len(found))))
            if found:
                ids.append((kind, found[:SHOWN_IDS], max(len(found) - SHOWN_IDS, 0)))
        rows.append(("documents unchanged", str(documents["unchanged"])))
    config = [(key, repr(old), repr(new)) for key, (old, new) in changes["config"].items()]
    metrics = [
        (name, f"{old:.4f}", f"{new:.4f}", f"{delta:+.4f}")
        for name, (old, new, delta) in changes["metrics"].items()
    ]
    return {"rows": rows, "ids": ids, "config": config, "metrics": metrics}


def changes_markdown(changes: dict[str, Any] | None, cell: Any) -> list[str]:
    """The section as Markdown lines (``cell`` escapes untrusted text such as document ids)."""
    view = changes_view(changes)
    if view is None:
        return []
    lines = ["## What changed against production", ""]
    lines += [f"- {label}: {cell(value)}" for label, value in view["rows"]]
    for kind, shown, more in view["ids"]:
        extra = f" and {more} more" if more else ""
        lines.append(f"- {kind}: {cell(', '.join(shown))}{extra}")
    if view["config"]:
        lines.append("- config: " + "; ".join(f"{k} {o} → {n}" for k, o, n in view["config"]))
    return [*lines, ""]
