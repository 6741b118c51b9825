"""The course dashboard: `streamlit run app/main.py` (or `make app`). In English or Chinese: the
sidebar's switch, or a link with `?lang=zh`. It listens on this machine only unless it is given an address
on purpose (`make app ADDRESS=0.0.0.0`): see app/.streamlit/config.toml."""
import streamlit as st
from i18n import LANG_KEY, LANGUAGES, keep_choices, lang, t

if LANG_KEY not in st.session_state:  # the session's first run: a link may ask for a language
    asked = st.query_params.get(LANG_KEY)
    st.session_state[LANG_KEY] = asked if asked in LANGUAGES else "en"

st.set_page_config(page_title=t("app.page_title"), page_icon=":material/school:", layout="wide")
st.sidebar.radio(t("app.language"), list(LANGUAGES), format_func=LANGUAGES.get, horizontal=True, key=LANG_KEY,
                 on_change=keep_choices)
# the address keeps the choice, so a copied link opens in the same language
if lang() != "en":
    st.query_params[LANG_KEY] = lang()
elif LANG_KEY in st.query_params:
    del st.query_params[LANG_KEY]

# Streamlit's default (no --server.address flag, no config.toml setting it, no STREAMLIT_SERVER_ADDRESS) is to
# listen on every network interface. app/.streamlit/config.toml says localhost wherever Streamlit is started
# (it is read beside this script), but a Streamlit that reads no config there, or a removed file, would open
# the dashboard to the network: then it serves no page, and says how to start it.
if not st.get_option("server.address"):
    st.error(t("app.local_only"))
    st.stop()

pages = [
    st.Page("views/runs.py", title=t("runs.title"), icon=":material/monitoring:", default=True),
    st.Page("views/generate.py", title=t("generate.title"), icon=":material/edit_note:"),
    st.Page("views/train.py", title=t("train.title"), icon=":material/model_training:"),
]
st.navigation(pages).run()
