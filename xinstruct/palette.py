"""One colour per review status and per decision action, for every chart of the app.

A status has the same colour in every chart (green is always "accepted", vermillion always "rejected"), and the
action that leads to a status has that status's colour (accept = accepted, edit = edited, reject = rejected). No colour
stands for two different things. The colours are Okabe-Ito based, so they stay apart for colour-blind readers.

Charts are built here (Altair specs with an explicit colour scale) so that pages never fall back to Vega-Lite's
default category colours, which are assigned by order of appearance and so differ from chart to chart.
"""

from __future__ import annotations

import pandas as pd

from . import vocab as V

STATUS_COLORS: dict[str, str] = {
    V.PENDING: "#9E9E9E",  # grey: nobody has decided yet
    V.IN_REVIEW: "#56B4E9",  # sky blue
    V.ACCEPTED: "#009E73",  # bluish green
    V.EDITED: "#E69F00",  # orange
    V.REJECTED: "#D55E00",  # vermillion
    V.CONFLICT: "#CC79A7",  # reddish purple
    V.UNDECIDED: "#C8C8C8",  # light grey: pending, in review or in conflict (the score histogram's group)
}

ACTION_COLORS: dict[str, str] = {
    **{action: STATUS_COLORS[status] for action, status in V.STATUS_OF.items()},  # accept = accepted, ...
    V.SKIP: "#4D4D4D",  # dark grey
    V.UNDO: "#000000",  # black
    V.BULK_ACCEPT: "#00593F",  # dark green: accepted by a curator in bulk
    V.SEND_TO_REVIEW: "#0072B2",  # blue: back to review
    V.ADJUDICATE: "#7B3294",  # purple: a curator's final word on a conflict
    V.RELABEL_LANG: "#8C6D31",  # brown: moved to another language
}

# Which palette a chart's colour field uses.
FIELDS: dict[str, dict[str, str]] = {
    "status": STATUS_COLORS, "review_status": STATUS_COLORS, "decision": STATUS_COLORS, "action": ACTION_COLORS,
}


def color_of(key: str, palette: dict[str, str]) -> str:
    """The colour of a status or action; a key outside the palette is an error (add it above, with its own colour)."""
    try:
        return palette[key]
    except KeyError:
        raise KeyError(f"no colour for {key!r} in the palette; add it to xinstruct/palette.py") from None


def scale(values, palette: dict[str, str]):
    """An Altair colour scale for the values present, in palette order, each with its palette colour."""
    import altair as alt

    present = set(values)
    domain = [k for k in palette if k in present] + sorted(str(v) for v in present if v not in palette)
    return alt.Scale(domain=domain, range=[color_of(k, palette) for k in domain])


def _color(df: pd.DataFrame, field: str, title: str | None = None):
    import altair as alt

    return alt.Color(f"{field}:N", scale=scale(df[field].dropna().unique(), FIELDS[field]), title=title or field.replace("_", " "),
                     sort=[k for k in FIELDS[field] if k in set(df[field])])


def stacked_bars(df: pd.DataFrame, *, x: str, y: str, color: str, x_type: str = "O"):
    """A stacked bar chart of `y` over `x`, split by the status or action column `color` (palette colours)."""
    import altair as alt

    order = {k: i for i, k in enumerate(FIELDS[color])}
    data = df.assign(_order=df[color].map(lambda v: order.get(v, len(order))))
    return (alt.Chart(data).mark_bar()
            .encode(x=alt.X(f"{x}:{x_type}", title=x.replace("_", " ")), y=alt.Y(f"{y}:Q", stack=True),
                    color=_color(df, color), order=alt.Order("_order:Q"),
                    tooltip=[x, color, y]))


def scatter(df: pd.DataFrame, *, x: str, y: str, color: str, tooltip: list[str] | None = None):
    """Points coloured by the status column `color` (palette colours)."""
    import altair as alt

    return (alt.Chart(df).mark_circle(size=40, opacity=0.8)
            .encode(x=alt.X(f"{x}:Q", title=None), y=alt.Y(f"{y}:Q", title=None), color=_color(df, color),
                    tooltip=tooltip or [color]))
