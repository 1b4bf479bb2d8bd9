"""How results show in a notebook: a short ``repr``, a compact HTML table, a pandas DataFrame.

Shared by the results of every step (:class:`~gcov_index.discover.search.SearchResult`,
``BuildResult``, ``StoreInfo``, ``ValidationReport``). Every value written into HTML is escaped
(``html.escape``): granule names, URLs and messages come from the archive or from a store
someone sent, not from us. pandas is imported only when a DataFrame is asked for.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

HTML_ROWS = 200  # rows drawn in a notebook; to_dataframe() has them all


def shorten(text: str, n: int = 100) -> str:
    """``text`` cut to ``n`` characters, with an ellipsis."""
    return text if len(text) <= n else text[: n - 1] + "…"


def span(times: Iterable[str]) -> str:
    """``first .. last`` of ISO times (to the second), or ``''``."""
    ts = sorted(str(t)[:19] for t in times if t)
    return f"{ts[0]} .. {ts[-1]}" if ts else ""


def html_table(title: str, summary: Sequence[tuple[str, object]], columns: Sequence[str],
               rows: Sequence[dict], *, limit: int = HTML_ROWS) -> str:
    """A title, a two-column summary (name, value) and one table row per item, every value
    escaped; at most ``limit`` rows drawn, then how many more."""
    esc = _cell
    out = [f"<div class='gcov-index'><strong>{esc(title)}</strong>",
           "<table><tbody>"]
    out += [f"<tr><th style='text-align:left'>{esc(k)}</th>"
            f"<td style='text-align:left'>{esc(v)}</td></tr>" for k, v in summary]
    out.append("</tbody></table>")
    if rows:
        out.append("<table><thead><tr>"
                   + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr></thead><tbody>")
        for r in rows[:limit]:
            out.append("<tr>" + "".join(f"<td style='text-align:left'>{esc(r.get(c))}</td>"
                                        for c in columns) + "</tr>")
        if len(rows) > limit:
            out.append(f"<tr><td colspan='{len(columns)}'>… and {len(rows) - limit} more "
                       "(to_dataframe() has them all)</td></tr>")
        out.append("</tbody></table>")
    out.append("</div>")
    return "\n".join(out)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return html.escape(f"{value:g}")
    return html.escape(str(value), quote=True)


def dataframe(rows: Sequence[dict], columns: Sequence[str], times: Sequence[str] = ()):
    """A pandas DataFrame of ``rows`` (one per item, ``columns`` in order even when there are
    no rows), the ``times`` columns as UTC datetimes."""
    import pandas as pd

    df = pd.DataFrame(list(rows), columns=list(columns))
    for c in times:
        df[c] = pd.to_datetime(df[c], utc=True, format="ISO8601")
    return df
