"""lesson_lib: the shared, GPU-ready PyTorch components of the course.

One small module per topic: `device`, `data`, `tokenizers`, `models`, `training`, `checkpoints`,
`runs`, `sampling`, `plots`, `presets`, `experiment`, `cli`.
"""
__version__ = "0.1.0"
