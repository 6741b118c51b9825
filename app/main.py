"""The course dashboard: `streamlit run app/main.py` (or `make app`)."""
import streamlit as st

st.set_page_config(page_title="lesson_lib dashboard", page_icon=":material/school:", layout="wide")

pages = [
    st.Page("views/runs.py", title="Runs and loss curves", icon=":material/monitoring:", default=True),
    st.Page("views/generate.py", title="Generate", icon=":material/edit_note:"),
    st.Page("views/train.py", title="Train", icon=":material/model_training:"),
]
st.navigation(pages).run()
