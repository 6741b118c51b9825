"""Generate: text from a trained checkpoint, streamed as it is produced, with the model's
probabilities beside it so a learner sees why each token was picked. A run picked whose checkpoint
or tokenizer is damaged says which file and how, and cannot be asked for text."""
import html
import re
import time

import plotly.graph_objects as go
import streamlit as st
from common import model, no_runs_yet, root, start_starter_button, tokenizer_problem
from i18n import shown_as, t

from lesson_lib import checkpoints as ckpt
from lesson_lib.experiment import default_prompt
from lesson_lib.runs import list_runs
from lesson_lib.sampling import MAX_NEW_TOKENS as PACKAGE_CAP, SamplingConfig, stream_tokens
from lesson_lib.tokenizers import UnknownCharactersError

MAX_NEW_TOKENS = min(1000, PACKAGE_CAP)  # the page's slider: a screenful; the CLI goes up to the package's cap
MAX_PROMPT_CHARS = 2000
STREAM_EVERY_S = 0.03  # how often streamed text is sent to the browser
CJK = re.compile("[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]")  # CJK characters and punctuation, full-width forms

st.title(t("generate.title"))
if no_runs_yet("generate-start-starter"):
    st.stop()
ready = [run for run in list_runs(root()) if run.checkpoints()]
if not ready:
    st.info(t("gen.no_checkpoint"))
    start_starter_button("generate-start-starter-2")
    st.stop()


def shown(token_text: str) -> str:
    """A token as a label: whitespace made visible."""
    return token_text.replace("\n", "⏎").replace(" ", "␣").replace("\t", "⇥") or "∅"


def as_markdown(text: str) -> str:
    """Plain text for st.markdown: markdown characters escaped, line breaks kept."""
    for ch in "\\`*_{}[]<>()#+-.!|~":
        text = text.replace(ch, "\\" + ch)
    return text.replace("\n", "  \n")


def as_bold_markdown(text: str) -> str:
    """`as_markdown`, in bold: each line's text between its own ** (a ** never wraps a line break or
    starts or ends on a space, where markdown would show it as it is)."""
    lines = []
    for line in text.split("\n"):
        core = line.strip()
        start = line.index(core) if core else len(line)
        lines.append(line[:start] + (f"**{as_markdown(core)}**" if core else "") + line[start + len(core):])
    return "  \n".join(lines)


def prompt_for(run) -> None:
    """Start the prompt box from the run's default prompt (its corpus's), and follow the run picked
    while the box still holds the previous run's default; a prompt the user has typed is kept."""
    default = default_prompt(run)
    if "gen-prompt" not in st.session_state or st.session_state["gen-prompt"] == st.session_state.get("gen-default"):
        st.session_state["gen-prompt"] = default
    st.session_state["gen-default"] = default


def problems(run, which: str, label: str) -> tuple[str | None, str | None]:
    """What is wrong with the picked run, read as it is picked: a warning about its config.json (its
    checkpoints still generate), and an error when its checkpoint's meta.json or its tokenizer cannot be
    read (the weights are read when Generate is pressed)."""
    warning = error = None
    try:
        run.read_config()
    except (ValueError, OSError) as e:
        warning = t("gen.damaged_config", name=run.name, error=e)
    try:
        ckpt.read_meta(run.checkpoint(which))
    except (ValueError, OSError) as e:
        error = t("gen.cannot_load", run=run.name, checkpoint=label, error=e)
    else:
        problem = tokenizer_problem(run)
        if problem:
            error = t("common.damaged_run", name=run.name, error=problem)
    return warning, error


def token_view(tokens) -> str:
    """Each token's text, HTML-escaped, on a background as dark as its probability. Text with Chinese
    (or other CJK) characters is marked as Chinese, so the browser draws it with a Chinese font."""
    spans = "".join(
        f'<span title="{p:.1%}" style="background: rgba(255, 140, 0, {0.1 + 0.8 * p:.2f}); '
        f'border-radius: 2px">{html.escape(text)}</span>' for text, p, *_ in tokens if text)
    lang = ' lang="zh-Hans"' if CJK.search("".join(token[0] for token in tokens)) else ""
    return f'<div{lang} style="white-space: pre-wrap; font-family: monospace; line-height: 1.6">{spans}</div>'


def next_token_chart(tokens, position: int) -> go.Figure:
    """The model's most likely tokens at `position` (1-based), the one picked in orange."""
    _, p, top, picked, picked_text = tokens[position - 1]
    labels = [shown(text) for _, text, _ in top]
    # two tokens can look alike (bytes of one character in a byte-level BPE both show as U+FFFD): tell
    # them apart by id, or the chart would draw them as one bar
    labels = [f"{label} #{i}" if labels.count(label) > 1 else label for label, (i, _, _) in zip(labels, top)]
    figure = go.Figure(go.Bar(
        x=[q for _, _, q in top], y=labels, orientation="h",
        marker_color=["darkorange" if i == picked else "steelblue" for i, _, _ in top]))
    figure.update_layout(title=t("gen.chart_title", position=position, picked=repr(shown(picked_text)), p=p),
                         xaxis_title=t("gen.chart_x"),
                         # category: tokens such as "1" and "2" are labels, not numbers on an axis
                         yaxis={"autorange": "reversed", "title": t("gen.chart_y"), "type": "category"},
                         height=360, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return figure


settings, output = st.columns([1, 2], gap="large")
with settings:
    names = [run.name for run in ready]
    asked = st.query_params.get("run")  # a link from the Train or Runs page: ?run=NAME
    first = asked if asked in names else "starter" if "starter" in names else names[0]
    run_name = st.selectbox(t("gen.run"), names, index=names.index(first), key="gen-run")
    run = next(r for r in ready if r.name == run_name)
    choices = ["best", "latest", *reversed([p.name for p in run.checkpoints()])]
    words = {c: t(f"gen.checkpoint.{c}") if c in ("best", "latest") else c for c in choices}
    which = st.selectbox(t("gen.checkpoint"), choices, key="gen-checkpoint", help=t("gen.checkpoint_help"),
                         format_func=shown_as("gen-checkpoint", words))
    warning, error = problems(run, which, words[which])
    prompt_for(run)
    prompt = st.text_area(t("gen.prompt"), max_chars=MAX_PROMPT_CHARS, key="gen-prompt")
    temperature = st.slider(t("gen.temperature"), 0.0, 2.0, 0.8, 0.05, key="gen-temperature",
                            help=t("gen.temperature_help"))
    top_k = st.number_input(t("gen.top_k"), 0, 1000, 0, key="gen-topk", help=t("gen.top_k_help"))
    top_p = st.slider(t("gen.top_p"), 0.05, 1.0, 1.0, 0.05, key="gen-topp", help=t("gen.top_p_help"))
    max_new = st.slider(t("gen.max_new"), 1, MAX_NEW_TOKENS, 300, key="gen-max",
                        help=t("gen.max_new_help", most=MAX_NEW_TOKENS, cap=PACKAGE_CAP))
    seed = st.number_input(t("gen.seed"), 0, 2**31 - 1, 1, key="gen-seed", help=t("gen.seed_help"))
    pressed = st.button(t("gen.go"), type="primary", key="gen-go", disabled=error is not None)

with output:
    if warning:
        st.warning(warning)
    if error:
        st.error(error)
    if pressed and not error:
        try:
            folder = run.checkpoint(which)
            lm, tokenizer, meta = model(str(run.path), folder.name, ckpt.weights_version(folder))
        except (ValueError, OSError) as e:  # FileNotFoundError, DamagedFile (a ValueError) and the like
            st.error(t("gen.cannot_load", run=run.name, checkpoint=words[which], error=e))
            st.stop()
        if not prompt:
            st.error(t("gen.empty_prompt"))
            st.stop()
        config = SamplingConfig(max_new_tokens=max_new, temperature=temperature, top_k=top_k or None,
                                top_p=top_p if top_p < 1 else None, seed=seed)
        loss = meta.get("val_loss")  # meta.json is checked for its step and model, not for this
        st.caption(t("gen.meta", run=meta["run"], checkpoint=meta["checkpoint"],
                     loss=loss if isinstance(loss, (int, float)) and not isinstance(loss, bool) else float("nan")))
        text_box = st.container(key="gen-output")
        text_box.markdown(as_bold_markdown(prompt))
        tokens, clock = [], {"start": time.perf_counter()}
        vocab = [tokenizer.decode([i]) for i in range(tokenizer.vocab_size)] if tokenizer.vocab_size <= 5000 else None

        def pieces():
            # the first token goes out at once, then text is sent every 30 ms: one browser update per
            # token would cost more than generating it
            pending, last_sent = "", 0.0
            for generated in stream_tokens(lm, tokenizer, prompt, config):
                if not tokens:
                    clock["first"] = time.perf_counter() - clock["start"]
                tokens.append(generated)
                pending += generated.text
                if pending and time.perf_counter() - last_sent >= STREAM_EVERY_S:
                    yield as_markdown(pending)
                    pending, last_sent = "", time.perf_counter()
            if pending:
                yield as_markdown(pending)

        try:
            text_box.write_stream(pieces())
        except UnknownCharactersError as e:
            st.error(t("gen.unknown_chars", chars=", ".join(repr(c) for c in e.characters)))
            st.stop()
        seconds = time.perf_counter() - clock["start"]
        decode = (lambda i: vocab[i]) if vocab else (lambda i: tokenizer.decode([i]))
        st.session_state["generation"] = {
            "prompt": prompt, "first_token_s": clock.get("first"), "tokens_per_s": len(tokens) / seconds,
            # per token: the text it adds, its probability, the model's top tokens (id, text, p), its id and text
            "tokens": [(g.text, g.prob, [(i, decode(i), p) for i, p in g.top], g.token, decode(g.token))
                       for g in tokens],
        }
    result = st.session_state.get("generation")
    if result and not pressed:
        text_box = st.container(key="gen-output")
        text_box.markdown(as_bold_markdown(result["prompt"]))
        text_box.markdown(as_markdown("".join(token[0] for token in result["tokens"])))
    if result and result["tokens"]:
        st.caption(t("gen.speed", count=len(result["tokens"]), first=result["first_token_s"],
                     rate=result["tokens_per_s"]))
        st.subheader(t("gen.why"))
        st.caption(t("gen.why_caption"))
        st.html(token_view(result["tokens"]))
        position = st.slider(t("gen.position"), 1, len(result["tokens"]), 1, key="gen-position")
        st.plotly_chart(next_token_chart(result["tokens"], position), width="stretch")
