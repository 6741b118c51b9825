"""Reference solutions to the exercises at the end of each chapter (checked by lesson_lib.exercises).

One module per chapter: a function per exercise, `SOLUTIONS` mapping exercise ids to them, and
`WRONG`: plausible wrong answers with a piece of the hint each must get. The tests run them all.
Try an exercise in its notebook before reading its solution here.
"""
