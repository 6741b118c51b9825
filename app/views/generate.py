"""Generate: text from a trained checkpoint, streamed as it is produced, with the model's
probabilities beside it so a learner sees why each token was picked."""
import html
import time

import plotly.graph_objects as go
import streamlit as st
from common import model, no_runs_yet, root, start_starter_button

from lesson_lib import checkpoints as ckpt
from lesson_lib.runs import list_runs
from lesson_lib.sampling import MAX_NEW_TOKENS as PACKAGE_CAP, SamplingConfig, stream_tokens
from lesson_lib.tokenizers import UnknownCharactersError

MAX_NEW_TOKENS = min(1000, PACKAGE_CAP)  # the page's slider: a screenful; the CLI goes up to the package's cap
MAX_PROMPT_CHARS = 2000
STREAM_EVERY_S = 0.03  # how often streamed text is sent to the browser

st.title("Generate")
if no_runs_yet("generate-start-starter"):
    st.stop()
ready = [run for run in list_runs(root()) if run.checkpoints()]
if not ready:
    st.info("No run has a checkpoint yet, so there is nothing to generate from. A run saves its first "
            "checkpoint at its first evaluation.")
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


settings, output = st.columns([1, 2], gap="large")
with settings:
    names = [run.name for run in ready]
    asked = st.query_params.get("run")  # a link from the Train or Runs page: ?run=NAME
    first = asked if asked in names else "starter" if "starter" in names else names[0]
    run_name = st.selectbox("Run", names, index=names.index(first), key="gen-run")
    run = next(r for r in ready if r.name == run_name)
    choices = ["best", "latest", *reversed([p.name for p in run.checkpoints()])]
    which = st.selectbox("Checkpoint", choices, key="gen-checkpoint",
                         help="best: lowest validation loss; latest: the most recent one")
    prompt = st.text_area("Prompt", "ROMEO:", max_chars=MAX_PROMPT_CHARS, key="gen-prompt")
    temperature = st.slider("Temperature", 0.0, 2.0, 0.8, 0.05, key="gen-temperature",
                            help="0 is greedy: always the most likely token. Below 1 sharper, above 1 flatter.")
    top_k = st.number_input("Top-k (0 = off)", 0, 1000, 0, key="gen-topk",
                            help="Draw only from the k most likely tokens")
    top_p = st.slider("Top-p (1 = off)", 0.05, 1.0, 1.0, 0.05, key="gen-topp",
                      help="Draw only from the most likely tokens whose probabilities add up to p")
    max_new = st.slider("New tokens", 1, MAX_NEW_TOKENS, 300, key="gen-max",
                        help=f"Up to {MAX_NEW_TOKENS} here; the command line allows up to {PACKAGE_CAP}")
    seed = st.number_input("Seed", 0, 2**31 - 1, 1, key="gen-seed", help="Same seed and settings, same text")
    pressed = st.button("Generate", type="primary", key="gen-go")

with output:
    if pressed:
        try:
            folder = run.checkpoint(which)
            lm, tokenizer, meta = model(str(run.path), folder.name, ckpt.weights_version(folder))
        except (FileNotFoundError, ValueError) as e:
            st.error(f"This checkpoint cannot be loaded: {e}")
            st.stop()
        if not prompt:
            st.error("Type a prompt: the model needs at least one character to continue from.")
            st.stop()
        config = SamplingConfig(max_new_tokens=max_new, temperature=temperature, top_k=top_k or None,
                                top_p=top_p if top_p < 1 else None, seed=seed)
        st.caption(f"{meta['run']} · {meta['checkpoint']} · val loss {meta.get('val_loss') or float('nan'):.4f}")
        text_box = st.container(key="gen-output")
        text_box.markdown(f"**{as_markdown(prompt)}**")
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
            st.error(f"The prompt has characters this model cannot read: "
                     f"{', '.join(repr(c) for c in e.characters)}. Its tokenizer was built from the training "
                     "text, which never contains them, so they have no token. Remove or replace them.")
            st.stop()
        seconds = time.perf_counter() - clock["start"]
        decode = (lambda i: vocab[i]) if vocab else (lambda i: tokenizer.decode([i]))
        st.session_state["generation"] = {
            "prompt": prompt, "first_token_s": clock.get("first"), "tokens_per_s": len(tokens) / seconds,
            "tokens": [(g.text, g.prob, [(decode(i), p) for i, p in g.top], decode(g.token)) for g in tokens],
        }
    result = st.session_state.get("generation")
    if result and not pressed:
        text_box = st.container(key="gen-output")
        text_box.markdown(f"**{as_markdown(result['prompt'])}**")
        text_box.markdown(as_markdown("".join(t[0] for t in result["tokens"])))
    if result and result["tokens"]:
        st.caption(f"{len(result['tokens'])} tokens; first after {result['first_token_s']:.3f} s; "
                   f"{result['tokens_per_s']:.0f} tokens/s")
        st.subheader("Why these tokens?")
        st.caption("Each generated token coloured by the probability the model gave it (darker: more likely). "
                   "Hover for the number.")
        spans = "".join(
            f'<span title="{p:.1%}" style="background: rgba(255, 140, 0, {0.1 + 0.8 * p:.2f}); '
            f'border-radius: 2px">{html.escape(text)}</span>' for text, p, _, _ in result["tokens"] if text)
        st.html(f'<div style="white-space: pre-wrap; font-family: monospace; line-height: 1.6">{spans}</div>')
        position = st.slider("Position in the output", 1, len(result["tokens"]), 1, key="gen-position")
        text, p, top, chosen = result["tokens"][position - 1]
        labels = [shown(t) for t, _ in top]
        figure = go.Figure(go.Bar(
            x=[q for _, q in top], y=labels, orientation="h",
            marker_color=["darkorange" if t == chosen else "steelblue" for t, _ in top]))
        figure.update_layout(title=f"The model's top next tokens at position {position} (picked: {shown(chosen)!r}, "
                                   f"p = {p:.1%})", xaxis_title="probability (temperature 1)",
                             yaxis={"autorange": "reversed", "title": "token"}, height=360,
                             margin={"l": 10, "r": 10, "t": 50, "b": 10})
        st.plotly_chart(figure, width="stretch")
