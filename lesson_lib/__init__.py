"""lesson_lib: the shared, GPU-ready PyTorch components of the course.

One small module per topic: `device`, `data`, `tokenizers`, `models`, `training`, `checkpoints`,
`runs`, `sampling`, `plots`, `presets`, `experiment`, `cli`; chapter 6's applications:
`generation_quality` (distinct-n, repetition, the model's log-probability of its text), `classify`
(genre passages split by work, a classification head on a GPT, fine-tuning, scores), `plays`
(speaker lines and casts of the plays), `seq2seq` (number words to Chinese numerals, an encoder-decoder
with attention).
"""
__version__ = "0.1.0"
