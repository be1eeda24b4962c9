"""Plain-text rendering of garble verdicts for the terminal: reasons listed, texts side by side."""

from __future__ import annotations

import shutil
import textwrap


def marked(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each non-empty span wrapped in ``[[ ]]`` (overlaps merged).

    >>> marked("large land ship", [(6, 10)])
    'large [[land]] ship'
    """
    merged: list[list[int]] = []
    for s, e in sorted(sp for sp in spans if sp[1] > sp[0]):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out, pos = [], 0
    for s, e in merged:
        out += [text[pos:s], "[[", text[s:e], "]]"]
        pos = e
    out.append(text[pos:])
    return "".join(out)


def side_by_side(left: str, right: str, titles: tuple[str, str] = ("original", "rewrite"), width: int | None = None) -> str:
    """Two texts in two wrapped columns.

    >>> print(side_by_side("a b", "c", width=23))
    original   | rewrite
    ---------- | ---------
    a b        | c
    """
    width = width or min(160, shutil.get_terminal_size((120, 20)).columns)
    col = max(10, (width - 3) // 2)
    a = textwrap.wrap(left, col) or [""]
    b = textwrap.wrap(right, col) or [""]
    lines = [f"{titles[0]:<{col}} | {titles[1]}".rstrip(), f"{'-' * col} | {'-' * (col - 1)}"]
    for k in range(max(len(a), len(b))):
        lines.append(f"{a[k] if k < len(a) else '':<{col}} | {b[k] if k < len(b) else ''}".rstrip())
    return "\n".join(lines)


def reasons_lines(reasons: list[dict], indent: str = "  ") -> list[str]:
    """One line per reason: type, span(s), explanation."""
    out = []
    for r in reasons:
        where = f"{r['start']}-{r['end']}" if r["end"] > r["start"] else f"at {r['start']} (nothing there)"
        if r.get("orig_start") is not None:
            where += f", original {r['orig_start']}-{r['orig_end']}"
        out.append(f"{indent}{r['type']} [{where}] (severity {r['severity']:.2f}): {r['explanation']}")
    return out


def find_spans(text: str, pieces: list[str | None]) -> list[tuple[int, int]]:
    """Where each piece first occurs in ``text`` (pieces not found are skipped)."""
    out = []
    for piece in pieces:
        if piece:
            k = text.find(piece.strip())
            if k >= 0:
                out.append((k, k + len(piece.strip())))
    return out
