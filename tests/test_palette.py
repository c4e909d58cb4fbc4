"""One colour per status across every chart: the palette gives each status and action one colour (the colour of the
status an action leads to, never another status's), and every chart the Overview and Rounds pages draw uses it."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, session_token
from test_curate import CURATOR, build
from xinstruct import curate, palette, review
from xinstruct.auth import User

ADMIN = User("ada", "admin")
ALL_ACTIONS = (*review.ACTIONS, "relabel_lang")


def test_every_status_and_action_has_a_colour():
    assert set(curate.STATUSES) | {"undecided"} == set(palette.STATUS_COLORS)
    assert set(ALL_ACTIONS) == set(palette.ACTION_COLORS)


def test_no_colour_means_two_things():
    statuses = list(palette.STATUS_COLORS.values())
    assert len(set(statuses)) == len(statuses), "two statuses share a colour"
    actions = list(palette.ACTION_COLORS.values())
    assert len(set(actions)) == len(actions), "two actions share a colour"
    for action, colour in palette.ACTION_COLORS.items():
        status = next((s for s, c in palette.STATUS_COLORS.items() if c == colour), None)
        # an action may only borrow the colour of the status it leads to (accept -> accepted)
        assert status is None or review.STATUS_OF.get(action) == status, (action, status)
    for action, status in review.STATUS_OF.items():
        assert palette.ACTION_COLORS[action] == palette.STATUS_COLORS[status]


def test_scale_keeps_palette_colours_whatever_the_order_of_the_data():
    a = palette.scale(["rejected", "pending"], palette.STATUS_COLORS)
    b = palette.scale(["pending", "rejected", "accepted"], palette.STATUS_COLORS)
    assert dict(zip(a.domain, a.range)) == {"pending": "#9E9E9E", "rejected": "#D55E00"}
    assert dict(zip(b.domain, b.range))["rejected"] == dict(zip(a.domain, a.range))["rejected"]
    with pytest.raises(KeyError, match="no colour for 'approved'"):
        palette.scale(["approved"], palette.STATUS_COLORS)


def _charts(node) -> list:
    """Every Vega-Lite chart element in the page tree (columns and expanders included)."""
    out = []
    for child in getattr(node, "children", {}).values():
        if getattr(child, "type", None) == "vega_lite_chart":
            out.append(child.proto)
        out += _charts(child)
    return out


def _color_values(chart, field: str) -> set:
    values = set()
    for dataset in chart.datasets:
        table = pa.ipc.open_stream(io.BytesIO(dataset.data.data)).read_all()
        if field in table.column_names:
            values |= set(table.column(field).to_pylist())
    return values


@pytest.fixture
def filled(file_store, monkeypatch, tmp_path):
    monkeypatch.setenv("XINSTRUCT_DB", str(file_store.path))
    monkeypatch.chdir(tmp_path)
    ids = build(file_store)  # accepted, edited, rejected, conflict, pending candidates and their decisions
    rng = np.random.default_rng(0)
    file_store.write(lambda tx: tx.executemany(
        "INSERT INTO embeddings (candidate_id, model, instruction_hash, vector) VALUES (?, ?, ?, ?)",
        [[cid, "all-MiniLM-L6-v2", "h", rng.normal(size=16).astype(np.float32).tolist()] for cid in ids.values()]))
    return file_store


@pytest.mark.parametrize("page, user, at_least", [("overview", CURATOR, 4), ("rounds", ADMIN, 0)])
def test_every_chart_colours_each_status_with_the_palette(filled, page, user, at_least):
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=60)
    at.session_state["xi_session"] = session_token(user)
    at.run()
    assert not at.exception, at.exception
    charts = _charts(at.main)
    coloured = [c for c in charts if json.loads(c.spec).get("encoding", {}).get("color")]
    assert len(coloured) >= at_least
    fields = set()
    for chart in coloured:
        color = json.loads(chart.spec)["encoding"]["color"]
        field = color["field"]
        fields.add(field)
        assert field in palette.FIELDS, f"a chart is coloured by {field!r}, which has no palette"
        assert "scale" in color, f"the {field} chart uses the default colours, not the palette"
        mapping = dict(zip(color["scale"]["domain"], color["scale"]["range"]))
        assert mapping == {k: palette.FIELDS[field][k] for k in mapping}, f"{field}: {mapping}"
        shown = _color_values(chart, field)
        assert shown and shown <= set(mapping), f"{field}: values {shown} outside the scale {mapping}"
    if page == "overview":
        assert fields == {"status", "decision", "action", "review_status"}
