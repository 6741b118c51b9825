"""The dashboard's words in English and in Chinese: one table per language, looked up with `t`.

Only what the app itself writes is here: labels, help, messages, captions, chart titles. Run names,
prompts, generated text and the messages of lesson_lib's errors are shown as they are. The
language is the sidebar's switch (`st.session_state["lang"]`, first set from a `?lang=zh` link).
Chinese terms follow the glossary of notebook 01 (损失, 验证损失, 学习率, 检查点, 词元, 温度, ...).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from lesson_lib.plots import TITLES
from lesson_lib.presets import PRESETS

LANGUAGES = {"en": "English", "zh": "中文"}
LANG_KEY = "lang"  # the sidebar switch's key in st.session_state, and the query parameter's name
WORDED_KEY = "i18n-worded"  # in st.session_state: the keys of the widgets whose options are shown in words

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        # main.py: the browser tab, the language switch, the navigation (and each page's title)
        "app.page_title": "lesson_lib dashboard",
        "app.language": "Language · 语言",
        "runs.title": "Runs and loss curves",
        "generate.title": "Generate",
        "train.title": "Train",
        "app.local_only": "This dashboard can start training jobs and write uploaded files, so it listens on this "
                          "machine only; but it was started without an address, and Streamlit then listens on every "
                          "network interface, where anyone on your network could use it. So it shows no page. Stop "
                          "it (Ctrl-C) and start it with `make app` in the course folder, or with `streamlit run "
                          "app/main.py --server.address localhost`. To open it to your network on purpose, give that "
                          "address: `make app ADDRESS=0.0.0.0`, or `--server.address 0.0.0.0`.",
        # common.py
        "common.loading_model": "Loading the model...",
        "common.a_new_run": "a new run",
        "common.training": "Run **{run}** is training. Follow it on the **Train** page.",
        "common.starter_button": "Train the starter model",
        "common.starter_help": "A small character-level GPT on Shakespeare: about a minute on 2 CPU cores",
        "common.no_runs": "There are no training runs yet (looked in `{root}`). Train the starter model to see "
                          "loss curves and generate text; it takes about a minute on 2 CPU cores.",
        "common.damaged_run": "Run **{name}** cannot be used: {error}",
        # a run's state, in the Runs table and the Train page's outcome (lesson_lib.runs.STATUSES)
        "status.new": "new",
        "status.training": "training",
        "status.finished": "finished",
        "status.stopped": "stopped",
        "status.failed": "failed",
        # views/runs.py
        "runs.col.name": "run",
        "runs.col.family": "model",
        "runs.col.params": "parameters",
        "runs.col.tokenizer": "tokenizer",
        "runs.col.steps": "steps",
        "runs.col.tokens": "tokens seen",
        "runs.col.best_val_loss": "best val loss",
        "runs.col.checkpoints": "checkpoints",
        "runs.col.status": "state",
        "runs.col.problem": "problem",
        "runs.problem": "Run **{name}** is damaged: {problem}. The table shows what could be read of it.",
        "runs.damaged": "Run **{name}**: {count} damaged line(s) in metrics.jsonl were skipped (first: {first}). "
                        "The rest of the log is shown.",
        "runs.chosen": "Runs to plot",
        "runs.pick": "Pick one or more runs to see their curves.",
        "runs.smoothing": "Smoothing of the training loss",
        "runs.smoothing_help": "Debiased exponential moving average, as in TensorBoard; 0 shows the raw values",
        "runs.x": "x axis",
        "runs.x.step": "step",
        "runs.x.tokens": "tokens seen",
        "runs.x.time": "wall time",
        "runs.log_y": "log-scale loss",
        "runs.csv": "Download these metrics as CSV",
        # views/generate.py
        "gen.no_checkpoint": "No run has a checkpoint yet, so there is nothing to generate from. A run saves its "
                             "first checkpoint at its first evaluation.",
        "gen.run": "Run",
        "gen.checkpoint": "Checkpoint",
        "gen.checkpoint_help": "best: lowest validation loss; latest: the most recent one",
        "gen.checkpoint.best": "best",
        "gen.checkpoint.latest": "latest",
        "gen.prompt": "Prompt",
        "gen.temperature": "Temperature",
        "gen.temperature_help": "0 is greedy: always the most likely token. Below 1 sharper, above 1 flatter.",
        "gen.top_k": "Top-k (0 = off)",
        "gen.top_k_help": "Draw only from the k most likely tokens",
        "gen.top_p": "Top-p (1 = off)",
        "gen.top_p_help": "Draw only from the most likely tokens whose probabilities add up to p",
        "gen.max_new": "New tokens",
        "gen.max_new_help": "Up to {most} here; the command line allows up to {cap}",
        "gen.seed": "Seed",
        "gen.seed_help": "Same seed and settings, same text",
        "gen.go": "Generate",
        "gen.cannot_load": "Checkpoint {checkpoint} of run **{run}** cannot be loaded: {error}",
        "gen.damaged_config": "Run **{name}**: {error}. Its checkpoints can still generate text (the prompt starts as "
                              "for Shakespeare).",
        "gen.empty_prompt": "Type a prompt: the model needs at least one character to continue from.",
        "gen.unknown_chars": "The prompt has characters this model cannot read: {chars}. Its tokenizer was built "
                             "from the training text, which never contains them, so they have no token. Remove or "
                             "replace them.",
        "gen.meta": "{run} · {checkpoint} · val loss {loss:.4f}",
        "gen.speed": "{count} tokens; first after {first:.3f} s; {rate:.0f} tokens/s",
        "gen.why": "Why these tokens?",
        "gen.why_caption": "Each generated token coloured by the probability the model gave it (darker: more "
                           "likely). Hover for the number.",
        "gen.position": "Position in the output",
        "gen.chart_title": "The model's top next tokens at position {position} (picked: {picked}, p = {p:.1%})",
        "gen.chart_x": "probability (temperature 1)",
        "gen.chart_y": "token",
        # views/train.py
        "train.job_starting": "A training job is starting...",
        "train.run_starting": "Run **{run}** is starting: loading the text and building the tokenizer...",
        "train.train_loss": "train loss {loss:.3f}",
        "train.first_steps": "first steps...",
        "train.val_loss": " · val loss {loss:.3f}",
        "train.progress": "**{run}**: step {step} of {total} · {last}",
        "train.best": "best val loss {loss:.4f}",
        "train.no_eval": "no evaluation yet",
        "train.outcome": "Run **{name}** {status} at step {steps} ({best}).",
        "train.resumable": "{outcome} It can be resumed from its last checkpoint below.",
        "train.link_generate": "Generate text from it",
        "train.link_curves": "See its loss curves",
        "train.did_not_start": "Run **{run}** did not start. The end of its output:",
        "train.no_output": "(no output)",
        "train.cannot_fit": "This configuration cannot train here: {error}",
        "train.memory": "Predicted training memory: {mib:,.0f} MiB.",
        "train.memory_free": "Predicted training memory: {mib:,.0f} MiB of {gib:,.1f} GiB available.",
        "train.bad_upload": "This file cannot be trained on: {error}",
        "train.family": "Model",
        "train.tokenizer": "Tokenizer",
        "train.block": "Context length",
        "train.layers": "Layers",
        "train.heads": "Attention heads",
        "train.width": "Width (a multiple of the heads)",
        "train.steps": "Steps",
        "train.lr": "Learning rate",
        "train.batch": "Batch size",
        "train.vocab": "Vocabulary size",
        "train.mode": "Start from",
        "train.mode.preset": "a preset",
        "train.mode.own": "my own settings",
        "train.preset": "Preset",
        "train.source": "Text",
        "train.source.shakespeare": "Shakespeare (complete works)",
        "train.source.tang": "Tang poems (全唐诗, simplified characters)",
        "train.source.upload": "upload a .txt file",
        "train.upload": "A UTF-8 text file, up to {mb} MB",
        "train.name": "Run name",
        "train.tensorboard": "Also write TensorBoard event files",
        "train.tensorboard_help": "Into the run's tensorboard/ folder; open them with: tensorboard --logdir {root}",
        "train.start": "Start training",
        "train.choose_file": "Choose a file to upload first.",
        "train.no_stopped": "No stopped runs. A run you stop here (or with Ctrl-C) can be continued from its last "
                            "checkpoint.",
        "train.resume_run": "Run",
        "train.continues": "It continues from step {at}.",
        "train.continues_from_scratch": "It continues from step {at} (it has no usable checkpoint: from the start).",
        "train.cannot_resume": "Run **{name}** cannot be resumed: {error}",
        "train.damaged": "Run **{name}** has a damaged file: {error}",
        "train.skips_damaged": "Run **{name}**: {count} damaged checkpoint(s) will be skipped when it resumes (the "
                               "newest: {first}).",
        "train.until": "Train until step",
        "train.resume": "Resume",
        "train.stop": "Stop training",
        "train.stop_help": "Finishes the current step, saves a checkpoint and exits; resume it later below",
        "train.stopping": "Stopping after the current step...",
        "train.tab_new": "New run",
        "train.tab_resume": "Resume a run",
    },
    "zh": {
        "app.page_title": "lesson_lib 仪表盘",
        "app.language": "语言 · Language",
        "runs.title": "运行与损失曲线",
        "generate.title": "生成",
        "train.title": "训练",
        "app.local_only": "这个仪表盘可以启动训练任务、写入上传的文件，所以它只在本机监听；但它启动时没有指定地址，"
                          "Streamlit 因此在所有网络接口上监听，你网络中的任何人都能使用它。所以这里不显示任何页面。"
                          "请停止它（Ctrl-C），然后在课程文件夹中用 `make app` 启动，或者用 `streamlit run "
                          "app/main.py --server.address localhost` 启动。如果确实要向你的网络开放，请明确给出地址："
                          "`make app ADDRESS=0.0.0.0`，或 `--server.address 0.0.0.0`。",
        "common.loading_model": "正在加载模型……",
        "common.a_new_run": "一个新运行",
        "common.training": "运行 **{run}** 正在训练。请到 **训练** 页面查看进度。",
        "common.starter_button": "训练入门模型",
        "common.starter_help": "在莎士比亚文本上训练一个小型字符级 GPT：在 2 个 CPU 核心上约需一分钟",
        "common.no_runs": "还没有训练运行（查找位置：`{root}`）。训练入门模型后即可查看损失曲线并生成文本；"
                          "在 2 个 CPU 核心上约需一分钟。",
        "common.damaged_run": "运行 **{name}** 无法使用：{error}",
        "status.new": "新建",
        "status.training": "训练中",
        "status.finished": "已完成",
        "status.stopped": "已停止",
        "status.failed": "失败",
        "runs.col.name": "运行",
        "runs.col.family": "模型",
        "runs.col.params": "参数量",
        "runs.col.tokenizer": "分词器",
        "runs.col.steps": "步数",
        "runs.col.tokens": "已见词元数",
        "runs.col.best_val_loss": "最佳验证损失",
        "runs.col.checkpoints": "检查点",
        "runs.col.status": "状态",
        "runs.col.problem": "问题",
        "runs.problem": "运行 **{name}** 已损坏：{problem}。表格中显示的是能读出的部分。",
        "runs.damaged": "运行 **{name}**：metrics.jsonl 中有 {count} 行损坏，已跳过（第一处：{first}）。"
                        "日志的其余部分照常显示。",
        "runs.chosen": "要绘制的运行",
        "runs.pick": "选择一个或多个运行，查看它们的曲线。",
        "runs.smoothing": "训练损失的平滑程度",
        "runs.smoothing_help": "去偏的指数移动平均，与 TensorBoard 相同；0 显示原始值",
        "runs.x": "横轴",
        "runs.x.step": "训练步数",
        "runs.x.tokens": "已见词元数",
        "runs.x.time": "实际耗时",
        "runs.log_y": "损失用对数坐标",
        "runs.csv": "下载这些指标（CSV）",
        "gen.no_checkpoint": "还没有任何运行保存检查点，所以无从生成。运行在第一次评估时保存第一个检查点。",
        "gen.run": "运行",
        "gen.checkpoint": "检查点",
        "gen.checkpoint_help": "最佳：验证损失最低的检查点；最新：最近保存的检查点",
        "gen.checkpoint.best": "最佳 (best)",
        "gen.checkpoint.latest": "最新 (latest)",
        "gen.prompt": "提示词",
        "gen.temperature": "温度",
        "gen.temperature_help": "0 即贪心解码：总是选概率最高的词元。小于 1 分布更尖锐，大于 1 更平坦。",
        "gen.top_k": "Top-k（0 = 关闭）",
        "gen.top_k_help": "只从概率最高的 k 个词元中抽取",
        "gen.top_p": "Top-p（1 = 关闭）",
        "gen.top_p_help": "只从概率之和达到 p 的那些最可能的词元中抽取",
        "gen.max_new": "新词元数",
        "gen.max_new_help": "这里最多 {most} 个；命令行最多 {cap} 个",
        "gen.seed": "随机种子",
        "gen.seed_help": "种子和设置相同，生成的文本就相同",
        "gen.go": "生成",
        "gen.cannot_load": "无法加载运行 **{run}** 的检查点 {checkpoint}：{error}",
        "gen.damaged_config": "运行 **{name}**：{error}。它的检查点仍然可以生成文本（提示词按莎士比亚文本的默认值开始）。",
        "gen.empty_prompt": "请输入提示词：模型至少需要一个字符才能往下写。",
        "gen.unknown_chars": "提示词中有这个模型读不了的字符：{chars}。它的分词器是从训练文本建立的，训练文本里"
                             "从未出现这些字符，所以它们没有对应的词元。请删除或替换它们。",
        "gen.meta": "{run} · {checkpoint} · 验证损失 {loss:.4f}",
        "gen.speed": "{count} 个词元；首个词元用时 {first:.3f} 秒；每秒 {rate:.0f} 个词元",
        "gen.why": "为什么是这些词元？",
        "gen.why_caption": "每个生成的词元按模型给它的概率着色（颜色越深，概率越高）。鼠标悬停可看到数值。",
        "gen.position": "输出中的位置",
        "gen.chart_title": "第 {position} 个位置上模型认为最可能的下一个词元（选中：{picked}，p = {p:.1%}）",
        "gen.chart_x": "概率（温度 1）",
        "gen.chart_y": "词元",
        "train.job_starting": "训练任务正在启动……",
        "train.run_starting": "运行 **{run}** 正在启动：读取文本并建立分词器……",
        "train.train_loss": "训练损失 {loss:.3f}",
        "train.first_steps": "最初几步……",
        "train.val_loss": " · 验证损失 {loss:.3f}",
        "train.progress": "**{run}**：第 {step} 步，共 {total} 步 · {last}",
        "train.best": "最佳验证损失 {loss:.4f}",
        "train.no_eval": "尚未评估",
        "train.outcome": "运行 **{name}** 在第 {steps} 步{status}（{best}）。",
        "train.resumable": "{outcome}可以在下方从它的最后一个检查点继续训练。",
        "train.link_generate": "用它生成文本",
        "train.link_curves": "查看它的损失曲线",
        "train.did_not_start": "运行 **{run}** 没有启动。它输出的最后几行：",
        "train.no_output": "（没有输出）",
        "train.cannot_fit": "这个配置无法在这台机器上训练：{error}",
        "train.memory": "预计训练内存：{mib:,.0f} MiB。",
        "train.memory_free": "预计训练内存：{mib:,.0f} MiB，可用 {gib:,.1f} GiB。",
        "train.bad_upload": "这个文件不能用来训练：{error}",
        "train.family": "模型",
        "train.tokenizer": "分词器",
        "train.block": "上下文长度",
        "train.layers": "层数",
        "train.heads": "注意力头数",
        "train.width": "宽度（注意力头数的倍数）",
        "train.steps": "训练步数",
        "train.lr": "学习率",
        "train.batch": "批次大小",
        "train.vocab": "词表大小",
        "train.mode": "从哪里开始",
        "train.mode.preset": "预设",
        "train.mode.own": "自定义设置",
        "train.preset": "预设",
        "train.source": "文本",
        "train.source.shakespeare": "莎士比亚（全集）",
        "train.source.tang": "全唐诗（简体）",
        "train.source.upload": "上传 .txt 文件",
        "train.upload": "UTF-8 文本文件，最大 {mb} MB",
        "train.name": "运行名称",
        "train.tensorboard": "同时写出 TensorBoard 事件文件",
        "train.tensorboard_help": "写入运行的 tensorboard/ 文件夹；用这条命令打开：tensorboard --logdir {root}",
        "train.start": "开始训练",
        "train.choose_file": "请先选择要上传的文件。",
        "train.no_stopped": "没有已停止的运行。在这里（或用 Ctrl-C）停止的运行可以从它的最后一个检查点继续训练。",
        "train.resume_run": "运行",
        "train.continues": "将从第 {at} 步继续。",
        "train.continues_from_scratch": "将从第 {at} 步继续（它没有可用的检查点：从头开始）。",
        "train.cannot_resume": "运行 **{name}** 无法继续训练：{error}",
        "train.damaged": "运行 **{name}** 有一个损坏的文件：{error}",
        "train.skips_damaged": "运行 **{name}**：继续训练时将跳过 {count} 个损坏的检查点（最新的一个：{first}）。",
        "train.until": "训练到第几步",
        "train.resume": "继续训练",
        "train.stop": "停止训练",
        "train.stop_help": "做完当前这一步，保存检查点后退出；之后可以在下方继续训练",
        "train.stopping": "做完当前这一步后停止……",
        "train.tab_new": "新建运行",
        "train.tab_resume": "继续一个运行",
    },
}

# The charts' words (lesson_lib.plots.TITLES): English from plots.py itself, Chinese here.
STRINGS["en"].update({f"chart.{key}": title for key, title in TITLES.items()})
STRINGS["zh"].update({
    "chart.step": "训练步数",
    "chart.tokens": "已见词元数",
    "chart.time": "实际耗时（秒）",
    "chart.loss": "损失（nats/词元）",
    "chart.train_loss": "训练损失（nats/词元）",
    "chart.val_loss": "验证损失（nats/词元）",
    "chart.lr": "学习率",
    "chart.grad_norm": "梯度范数（L2，裁剪前）",
    "chart.tokens_per_s": "吞吐量（词元/秒）",
    "chart.mfu": "MFU（占实测峰值 FLOP/s 的比例）",
    "chart.val_ppl": "验证困惑度",
    "chart.val_bpc": "验证集每字符比特数",
    "chart.legend": "运行",
    "chart.train": "训练",
    "chart.val": "验证",
    "chart.raw": "原始值",
})

# The presets' descriptions (lesson_lib.presets) in Chinese; a preset missing here shows its English one.
PRESET_DESCRIPTIONS_ZH = {
    "starter": "字符级 GPT，莎士比亚文本：在 2 个 CPU 核心上约一分钟，验证损失降到 2.0 以下",
    "shakespeare-char": "更大的字符级 GPT，莎士比亚文本：在 2 个 CPU 核心上约十一分钟",
    "speedrun-cpu": "与入门模型同样大小、为速度而训练：在 2 个 CPU 核心上 50 秒内验证损失降到 1.87",
    "speedrun-cpu-10min": "与 shakespeare-char 同样大小、为速度而训练：在 2 个 CPU 核心上十分钟内验证损失降到 1.60",
    "tang": "字符级 GPT，全唐诗（简体）：在 2 个 CPU 核心上约五分钟",
    "gpu-small": "nanoGPT 的 Shakespeare-char 规模（6 层，宽 384，上下文 256），用于一块 CUDA GPU",
    "ch05-gpt-char": "第 5 章的字符级 GPT，莎士比亚文本（与入门模型同样大小）；第 6 章在它的基础上继续",
    "ch05-lstm-word": "第 5 章的词级 LSTM；--init-vectors 用词向量初始化它的词嵌入",
    "ch05-gpt-word": "第 5 章的词级 GPT：与 ch05-lstm-word 相同的词表和词元预算",
    "ch05-lstm-char": "第 5 章的字符级 LSTM：与 ch05-gpt-char 相同的词元预算，参数量也相近",
}


def lang() -> str:
    """The language this session has chosen: "en" or "zh"."""
    chosen = st.session_state.get(LANG_KEY)
    return chosen if chosen in STRINGS else "en"


def t(key: str, **fields) -> str:
    """The text for `key` in this session's language, with `fields` filled in (str.format)."""
    return STRINGS[lang()][key].format(**fields)


def chart_titles() -> dict[str, str] | None:
    """The `titles` argument of lesson_lib.plots' charts: None (plots.py's English) or this language's."""
    if lang() == "en":
        return None
    return {key: t(f"chart.{key}") for key in TITLES}


def preset_description(name: str) -> str:
    """A preset's description in this session's language (its English one where it has no other)."""
    if lang() == "zh" and name in PRESET_DESCRIPTIONS_ZH:
        return PRESET_DESCRIPTIONS_ZH[name]
    return PRESETS[name]["description"]


def status(name: str) -> str:
    """A run's state (lesson_lib.runs.STATUSES) as a word of this language; unknown ones as they are."""
    key = f"status.{name}"
    return t(key) if key in STRINGS["en"] else str(name)


def shown_as(key: str, words: Mapping[Any, str]) -> Callable[[Any], str]:
    """The format_func of the radio or selectbox `key`, whose options are shown as `words` (this language's).

    The words are looked up now: Streamlit calls a format_func again after the page's run, where the
    session's language is not known. The browser sends a choice back as the words it showed, which the
    other language does not have: so the widget is noted here, and the language switch (`keep_choices`)
    sets its choice again.
    """
    st.session_state.setdefault(WORDED_KEY, set()).add(key)
    words = dict(words)
    return lambda option: words.get(option, str(option))


def keep_choices() -> None:
    """The language switch's on_change: read each worded widget's choice in the words it was shown in
    (its last run's), and set it again, so that it is shown, and kept, in the new language's words."""
    for key in st.session_state.get(WORDED_KEY, ()):
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
