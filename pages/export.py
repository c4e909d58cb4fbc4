"""Export for curators: choose what (status, languages, score, optionally the Explore page's filter) and how (format,
template), write the export beside the database and download it as a zip. Thin page: xinstruct.export."""

import streamlit as st

from xinstruct import auth, render
from xinstruct import export as ex
from xinstruct.errors import StoreError, XInstructError
from xinstruct.langs import LANGS

user = auth.require("curator")
store = auth.get_store()
ss = st.session_state
MAX_DOWNLOAD = 500 * 2**20  # larger exports: take the folder from disk or use `xinstruct export`

st.title("Export")
c1, c2, c3 = st.columns(3)
status = c1.selectbox("Review status", list(ex.STATUS_SETS), key="xi_exp_status",
                      help="accepted = accepted as is + edited: the pairs that go into training data.")
langs = c2.multiselect("Languages", list(LANGS), format_func=render.lang_name, key="xi_exp_langs",
                       placeholder="All languages")
use_score = c3.checkbox("Minimum score", key="xi_exp_use_score")
min_score = c3.slider("Score at least", 0.0, 1.0, 0.5, 0.01, key="xi_exp_score", disabled=not use_score)
explore_filter = ss.get("xi_curate_filter")
use_explore = st.checkbox("Also apply the Explore page's filter", key="xi_exp_use_explore",
                          disabled=explore_filter is None,
                          help="Open Explore first to set one." if explore_filter is None
                          else render.md_escape(explore_filter))
c4, c5, c6 = st.columns(3)
fmt = c4.radio("Format", list(ex.FORMATS), key="xi_exp_format", horizontal=True,
               help="jsonl: data.jsonl · parquet: data.parquet · hf: Parquet shards for datasets.load_dataset(folder)")
template = c5.radio("Template", list(ex.TEMPLATES), key="xi_exp_template", horizontal=True,
                    help="alpaca: instruction/input/output · messages: user and assistant turns")
hint = c6.checkbox("Append “Answer in <Language>.”", True, key="xi_exp_hint")

try:
    cfg = ex.ExportConfig(out=ex.default_out(store, user.name, fmt), status=status, langs=tuple(langs),
                          min_score=float(min_score) if use_score else None, format=fmt, template=template,
                          filter=explore_filter if use_explore else None, answer_hint=hint)
    rows = ex.preview(store, cfg)
except StoreError:
    raise  # app.py: the message and Retry every page shows on store errors
except XInstructError as exc:
    st.error(render.md_escape(exc))
    st.stop()
st.markdown(f"**{rows}** pairs selected.")

if st.button("Export", type="primary", key="xi_exp_go", disabled=rows == 0):
    try:
        with st.spinner("Writing the export…"):
            result = ex.export(store, cfg, user=user)
            archive = ex.zip_folder(result.out)
    except XInstructError as exc:
        st.error(render.md_escape(exc))
    else:
        ss.xi_export = {"summary": str(result), "out": str(result.out), "zip": str(archive),
                        "card": result.card.read_text(encoding="utf-8")}

done = ss.get("xi_export")
if done:
    from pathlib import Path

    archive = Path(done["zip"])
    st.success(render.md_escape(done["summary"]))
    render.caption("Folder on the server: ", done["out"])
    if archive.exists() and archive.stat().st_size <= MAX_DOWNLOAD:
        st.download_button("Download (zip)", data=archive.read_bytes(), file_name=archive.name,
                           mime="application/zip", key="xi_exp_download")
    elif archive.exists():
        st.info(render.md_escape(f"The zip is {archive.stat().st_size / 2**20:.0f} MiB: take it from {archive} on the "
                                 "server."))
    with st.expander("Dataset card (README.md)"):
        card = done["card"]
        st.html(render.markdown_html(card.split("---", 2)[2] if card.startswith("---") else card))
