"""The course's rule for notebooks, as code: what `tests/test_notebook_rules.py` runs over every notebook.

The README promises that a notebook states no number it did not compute and that every assert could fail
if the lesson were wrong. A reader checks that claim by claim; these four rules catch the kinds of drift
found when notebooks 05-10 were read that way:

1. `self-compare`: an assert comparing an expression with itself or with a copy of itself
   (`b = a.copy()` ... `assert np.array_equal(a, b)`).
2. `fast-bound`: an assert inside `if FAST:` / `if not FAST:`, or an inequality whose threshold is
   chosen by FAST (`x if FAST else y`, or a name assigned from an expression that reads FAST). A cell may
   declare such a bound with a line `# FAST bound: <what FAST's weaker claim is>`; the markdown cell above
   it must then say in words what FAST checks (it must mention FAST).
3. `clock`: an assert on a value measured with a clock: anything computed from `time.perf_counter()`,
   `time.time()`, ..., from a function of the notebook that reads a clock, or from a name, attribute or
   key that says it holds a time or a speed (`elapsed`, `seconds`, `tokens_per_s`, `mfu`, ...).
4. `typed-number`: a number of three or more significant digits typed into a markdown cell. Numbers the
   notebook computes are printed by its code; a number that must be typed (a published figure, a constant
   of the corpus's archive, a date) goes on the allow-list in the test with its reason.

Each finding names the notebook, the cell (its index among all cells, as Jupyter counts them from 0)
and the source line. The checker reads sources only; it cannot see everything a reader sees.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

FAST_BOUND_MARK = "# FAST bound:"
CLOCK_CALLS = {"perf_counter", "perf_counter_ns", "time", "time_ns", "monotonic", "monotonic_ns",
               "process_time", "thread_time", "now", "timeit", "repeat", "default_timer"}
CLOCK_PREFIXES = ("profile", "benchmark", "calibrate", "timed")
CLOCK_MODULES = {"time", "timeit", "datetime"}
# parts of an identifier (split at "_") that say it holds a time or a speed measured with a clock
TIME_WORDS = {"seconds", "secs", "sec", "elapsed", "wall", "duration", "durations", "time", "times",
              "timing", "timings", "ms", "us", "speedup", "speedups", "throughput", "mfu", "gflops",
              "tflops", "latency", "clock"}
# parts that say so only beside another part ("step_s", "tokens_per_s"), never alone ("s" is a loop name)
TIME_SUFFIXES = {"s", "per", "speed"}
COMPARE_CALLS = {"array_equal", "allclose", "isclose", "equal", "assert_allclose", "assert_array_equal",
                 "assert_close", "assert_equal", "array_equiv", "assert_array_almost_equal"}
COPY_METHODS = {"copy", "clone", "detach", "deepcopy", "to_numpy", "numpy", "tolist", "contiguous"}
COPY_FUNCTIONS = {"copy", "deepcopy", "array", "asarray", "tensor", "as_tensor", "list", "tuple", "dict",
                  "float", "int", "sorted"}
TOLERANCE_KEYWORDS = {"rtol", "atol", "rel_tol", "abs_tol", "tol", "delta"}
# fields of a measurement's record that hold what was computed, not how long it took
PAYLOAD_FIELDS = {"loss", "losses", "flops", "steps", "shape", "config", "tokens", "n_params", "name"}
INDEXERS = {"loc", "iloc", "at", "iat"}  # pandas' ways into a table: `t.loc["a"]` reads t's entry "a"
INEQUALITIES = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


@dataclass(frozen=True)
class Finding:
    notebook: str
    cell: int
    rule: str
    line: str
    why: str

    def __str__(self) -> str:
        return f"{self.notebook}, cell {self.cell}, {self.rule}: {self.line.strip()[:120]}  ({self.why})"


# ------------------------------------------------------------------ reading cells
def parse_code(source: str) -> ast.Module | None:
    """The cell's Python, IPython's `%magic` and `!shell` lines blanked so line numbers stay."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def call_module(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.value.id
    return ""


def is_time_identifier(name: str) -> bool:
    parts = [part for part in re.split(r"[^a-z0-9]+", name.lower()) if part]
    if any(part in TIME_WORDS for part in parts):
        return True
    return len(parts) > 1 and parts[-1] in TIME_SUFFIXES


def constant_keys(node: ast.AST) -> list | None:
    """The keys of `x["a"]` or `x.loc["a", "b"]` when every key is a constant, else None."""
    elements = node.elts if isinstance(node, ast.Tuple) else [node]
    if all(isinstance(e, ast.Constant) for e in elements):
        return [e.value for e in elements]
    return None


def container_name(node: ast.AST) -> str | None:
    """`x`, `x.loc`, `x.iloc`: the name x; anything else None."""
    while isinstance(node, ast.Attribute) and node.attr in INDEXERS:
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def line_of(source: str, node: ast.AST) -> str:
    lines = source.split("\n")
    return lines[node.lineno - 1] if 0 < getattr(node, "lineno", 0) <= len(lines) else ""


# ------------------------------------------------------------------ the notebook's dataflow, cell by cell
class Flow:
    """What the notebook's assignments so far say about each name: which are copies of what,
    which were chosen by FAST, which hold clock readings, which functions read a clock."""

    def __init__(self):
        self.copies: dict[str, ast.AST] = {}
        self.fast_names: set[str] = set()
        self.clock_names: set[str] = set()
        self.clock_functions: set[str] = set()
        self.bound: set[str] = set()
        self.returns: dict[str, dict[str, str]] = {}  # function -> {column: what it is}
        self.measurements: set[str] = set()  # bound to what a clock call returned, or a part of it

    def is_measurement(self, node: ast.AST) -> bool:
        """`profile_training(...)`, `profile.table.set_index(...)`, `timings["eager"]`: a measurement's parts."""
        while True:
            if isinstance(node, ast.Call):
                if self.is_clock_call(node):
                    return True
                if not isinstance(node.func, ast.Attribute):
                    return False
                node = node.func.value
            elif isinstance(node, (ast.Attribute, ast.Subscript)):
                node = node.value
            elif isinstance(node, ast.Name):
                return node.id in self.measurements
            else:
                return False

    # -- clock
    def reads_clock(self, node: ast.AST) -> bool:
        """Whether the expression calls a clock, a function of the notebook that reads one, or reads a
        name, attribute or key that holds a time. `table["precision"]` does not read `table`'s time column."""
        if isinstance(node, ast.Call):
            if self.is_clock_call(node):
                return True
            parts = [*node.args, *(k.value for k in node.keywords)]
            if isinstance(node.func, ast.Attribute):  # a method: what it is called on
                parts.append(node.func.value)
            return any(self.reads_clock(part) for part in parts)
        elif isinstance(node, ast.Name):
            if node.id in self.bound:  # the notebook bound it: what its value was made from decides
                return node.id in self.clock_names
            return is_time_identifier(node.id)
        elif isinstance(node, ast.Attribute):
            if is_time_identifier(node.attr):
                return True
            if node.attr not in INDEXERS and (
                    node.attr in PAYLOAD_FIELDS or not self.is_measurement(node.value)):
                return False  # a field of a record that is not a time (`timing.losses`)
        elif isinstance(node, ast.Subscript):
            keys = constant_keys(node.slice)
            if keys is not None:
                if any(is_time_identifier(str(key)) for key in keys):
                    return True
                name = container_name(node.value)
                if name is not None and not is_time_identifier(name) and name not in self.measurements \
                        and all(isinstance(key, str) for key in keys):
                    return False  # a named column or entry of a table: not the table's other columns
        return any(self.reads_clock(child) for child in ast.iter_child_nodes(node))

    def is_clock_call(self, call: ast.Call) -> bool:
        name, module = call_name(call), call_module(call)
        if name in self.clock_functions and module == "":
            return True
        if name.startswith(CLOCK_PREFIXES) or (name not in {"time", "now"} and is_time_identifier(name)):
            return True  # `profile_training(...)`, `time_steps(...)`: the package's measurements
        if name not in CLOCK_CALLS:
            return False
        if module in CLOCK_MODULES:
            return True
        # `from time import perf_counter`: a bare call; a bare `time()` or `now()` is too common a name
        return module == "" and name not in {"time", "repeat", "now"}

    def learn(self, tree: ast.Module) -> None:
        """Follow the cell's statements in order: what each assignment makes of the names it binds."""
        for _ in range(3):  # functions of the notebook that read a clock, also through each other
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                        isinstance(sub, ast.Call) and self.is_clock_call(sub) for sub in ast.walk(node)):
                    self.clock_functions.add(node.name)
        for node in ast.walk(tree):  # functions that return a table: what each column is
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                local = Flow()
                local.visit_block(node.body)
                for statement in ast.walk(node):
                    if isinstance(statement, ast.Return) and statement.value is not None:
                        columns = table_columns(statement.value)
                        if columns:
                            self.returns[node.name] = {k: local.resolve(v) for k, v in columns.items()}
        self.visit_block(tree.body)

    def visit_block(self, statements) -> None:
        for statement in statements:
            if isinstance(statement, ast.Assign):
                self.bind(statement.targets, statement.value)
                for target in statement.targets:
                    if isinstance(target, ast.Subscript):
                        self.bind([target], statement.value)
            elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
                self.bind([statement.target], statement.value)
            elif isinstance(statement, ast.AugAssign):
                if isinstance(statement.target, ast.Name) and self.reads_clock(statement.value):
                    self.clock_names.add(statement.target.id)
            elif isinstance(statement, (ast.For, ast.AsyncFor)):
                target, iterated = statement.target, statement.iter
                if isinstance(iterated, ast.Call) and call_name(iterated) in {"items", "keys"} \
                        and isinstance(target, ast.Tuple) and len(target.elts) == 2:
                    self.bind([target.elts[0]], ast.Constant(None))  # a dict's keys are names, not readings
                    self.bind([target.elts[1]], iterated)
                else:
                    self.bind([target], iterated)
            elif isinstance(statement, (ast.With, ast.AsyncWith)):
                for item in statement.items:
                    if item.optional_vars is not None:
                        self.bind([item.optional_vars], item.context_expr)
            for field in ("body", "orelse", "finalbody"):
                if not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    self.visit_block(getattr(statement, field, []) or [])
            for handler in getattr(statement, "handlers", []) or []:
                self.visit_block(handler.body)

    def bind(self, targets, value: ast.AST) -> None:
        if len(targets) == 1 and isinstance(targets[0], (ast.Tuple, ast.List)) \
                and isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(targets[0].elts) \
                and not any(isinstance(e, ast.Starred) for e in targets[0].elts + value.elts):
            for target, element in zip(targets[0].elts, value.elts):
                self.bind([target], element)  # `a, b = x, y`: each name from its own value
            return
        names = [n.id for target in targets if isinstance(target, (ast.Name, ast.Tuple, ast.List, ast.Starred))
                 for n in ast.walk(target) if isinstance(n, ast.Name)]
        self.bound.update(names)
        if self.is_measurement(value):
            self.measurements.update(names)
        else:
            self.measurements.difference_update(names)
        for names_set, holds in ((self.fast_names, "FAST" in names_in(value)),
                                 (self.clock_names, self.reads_clock(value))):
            if holds:
                names_set.update(names)
            else:
                names_set.difference_update(names)
        if len(targets) == 1 and isinstance(targets[0], (ast.Name, ast.Subscript)):
            key = ast.unparse(targets[0])
            source = copied_from(value)
            if source is not None:
                self.copies[key] = source
            else:
                self.copies.pop(key, None)
            if isinstance(targets[0], ast.Name):  # `t = {"a": x}` or `pd.DataFrame({"a": x})`: t["a"] is x
                for column, expression in table_columns(value).items():
                    self.copies[f"{key}[{column!r}]"] = expression
                if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in self.returns:
                    for column, resolved in self.returns[value.func.id].items():
                        self.copies[f"{key}[{column!r}]"] = ast.parse(resolved, mode="eval").body

    def resolve(self, node: ast.AST, depth: int = 0) -> str:
        """The expression as a string, with every name that is a copy replaced by what it copies."""
        if depth > 10:  # a chain of copies this long is a cycle: stop replacing
            return ast.unparse(node)

        class Replace(ast.NodeTransformer):
            def visit_Name(inner, name):  # noqa: N805
                if name.id in self.copies:
                    return ast.parse(self.resolve(self.copies[name.id], depth + 1), mode="eval").body
                return name

            def visit_Subscript(inner, subscript):  # noqa: N805
                key = ast.unparse(subscript)
                if key in self.copies:
                    return ast.parse(self.resolve(self.copies[key], depth + 1), mode="eval").body
                inner.generic_visit(subscript)
                return subscript

            def visit_Call(inner, call):  # noqa: N805
                inner.generic_visit(call)
                source = copied_from(call)
                return source if source is not None else call

        tree = Replace().visit(ast.parse(ast.unparse(node), mode="eval"))
        return ast.unparse(tree.body)


def table_columns(value: ast.AST) -> dict[str, ast.AST]:
    """`{"a": x}`, `pd.DataFrame({"a": x}, ...)`: {"a": x}; anything else {}."""
    table = value.args[0] if isinstance(value, ast.Call) and value.args else value
    if not isinstance(table, ast.Dict):
        return {}
    return {k.value: v for k, v in zip(table.keys, table.values) if isinstance(k, ast.Constant)}


def copied_from(value: ast.AST) -> ast.AST | None:
    """`x.copy()`, `copy.deepcopy(x)`, `np.array(x)`, `x.clone().detach()`, a bare `x`: the x; else None."""
    if isinstance(value, ast.Name):
        return value
    if isinstance(value, ast.Call) and not value.keywords:
        name = call_name(value)
        if isinstance(value.func, ast.Attribute) and name in COPY_METHODS and not value.args:
            inner = copied_from(value.func.value)
            return inner if inner is not None else value.func.value
        if name in COPY_FUNCTIONS and len(value.args) == 1 and (
                isinstance(value.func, ast.Name) or isinstance(value.func.value, ast.Name)):
            inner = copied_from(value.args[0])
            return inner if inner is not None else value.args[0]
    return None


# ------------------------------------------------------------------ the rules
def self_compare(flow: Flow, test: ast.AST) -> str | None:
    for node in ast.walk(test):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for a, b in zip(operands, operands[1:]):
                if flow.resolve(a) == flow.resolve(b):
                    return f"both sides are {flow.resolve(a)[:60]}"
        elif isinstance(node, ast.Call) and call_name(node) in COMPARE_CALLS and len(node.args) >= 2:
            if flow.resolve(node.args[0]) == flow.resolve(node.args[1]):
                return f"{call_name(node)} of {flow.resolve(node.args[0])[:60]} with itself"
    return None


def fast_threshold(flow: Flow, test: ast.AST) -> str | None:
    def chosen_by_fast(node: ast.AST) -> bool:
        return bool(names_in(node) & (flow.fast_names | {"FAST"}))

    for node in ast.walk(test):
        if isinstance(node, ast.Compare) and any(isinstance(op, INEQUALITIES) for op in node.ops):
            for operand in [node.left, *node.comparators]:
                if chosen_by_fast(operand):
                    chosen = sorted(names_in(operand) & (flow.fast_names | {"FAST"}))
                    return f"the bound reads {', '.join(chosen)}, chosen by FAST"
        elif isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg in TOLERANCE_KEYWORDS and chosen_by_fast(keyword.value):
                    return f"{keyword.arg} is chosen by FAST"
    return None


EXACT_OPS = (ast.Eq, ast.NotEq, ast.Is, ast.IsNot, ast.In, ast.NotIn)
EXACT_CALLS = {"array_equal", "equal", "array_equiv", "assert_array_equal", "assert_equal"}


def clock_outside_equality(flow: Flow, test: ast.AST) -> bool:
    """Whether the assert judges a clock reading's size. Exact equality (`==`, `in`, `array_equal`)
    between two records of one measurement is left alone: a busy machine cannot make it fail."""
    if isinstance(test, ast.Compare) and all(isinstance(op, EXACT_OPS) for op in test.ops):
        return False
    if isinstance(test, ast.Call) and call_name(test) in EXACT_CALLS:
        return False
    if isinstance(test, (ast.BoolOp, ast.UnaryOp)):
        children = test.values if isinstance(test, ast.BoolOp) else [test.operand]
        return any(clock_outside_equality(flow, child) for child in children)
    if isinstance(test, (ast.GeneratorExp, ast.ListComp)) or (
            isinstance(test, ast.Call) and call_name(test) in {"all", "any"} and test.args):
        inner = test.args[0] if isinstance(test, ast.Call) else test
        if isinstance(inner, (ast.GeneratorExp, ast.ListComp)):
            return clock_outside_equality(flow, inner.elt)
    return flow.reads_clock(test)


def asserts_with_context(tree: ast.Module):
    """Every assert of the cell, with whether an `if` on FAST encloses it."""
    def visit(node: ast.AST, under_fast: bool):
        if isinstance(node, ast.Assert):
            yield node, under_fast
        for child in ast.iter_child_nodes(node):
            inside = under_fast or (isinstance(node, ast.If) and "FAST" in names_in(node.test)
                                    and child is not node.test)
            yield from visit(child, inside)
    yield from visit(tree, False)


def check_code(notebook: str, cells: list[tuple[int, str, str]]) -> list[Finding]:
    """`cells`: (index, cell_type, source) in order. Returns the findings of rules 1-3."""
    flow = Flow()
    findings: list[Finding] = []
    last_markdown = ""
    for index, kind, source in cells:
        if kind == "markdown":
            last_markdown = source
            continue
        if kind != "code":
            continue
        tree = parse_code(source)
        if tree is None:
            continue
        flow.learn(tree)
        declared = FAST_BOUND_MARK in source and "FAST" in last_markdown
        for node, under_fast in asserts_with_context(tree):
            line = line_of(source, node)
            why = self_compare(flow, node.test)
            if why:
                findings.append(Finding(notebook, index, "self-compare", line, why))
            if not declared:
                if under_fast:
                    findings.append(Finding(notebook, index, "fast-bound", line, "assert inside an `if` on FAST"))
                else:
                    why = fast_threshold(flow, node.test)
                    if why:
                        findings.append(Finding(notebook, index, "fast-bound", line, why))
            if clock_outside_equality(flow, node.test):
                clocked = sorted(n for n in names_in(node.test) if n in flow.clock_names or is_time_identifier(n))
                findings.append(Finding(notebook, index, "clock", line,
                                        f"reads a clock: {', '.join(clocked) or 'a time attribute or key'}"))
    return findings


# ------------------------------------------------------------------ rule 4: numbers typed into markdown
NUMBER = re.compile(r"(?<![\w.,\-/])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?:[eE][-+]?\d+)?(?![\w%]*\w|\.\d|,\d)")
STRIP = [
    re.compile(r"```.*?```", re.S),  # fenced code: shown code, not a claim
    re.compile(r"https?://\S+"),  # addresses
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"<[^>]+>"),  # HTML tags and their attributes
    re.compile(r"\$[^$]*\$"),  # LaTeX
]


def significant_digits(integer: str, fraction: str | None) -> int:
    digits = integer.replace(",", "").lstrip("0")
    if fraction:
        fraction = fraction[1:]
        if digits:
            return len(digits) + len(fraction)
        return len(fraction.lstrip("0"))
    return len(digits.rstrip("0"))


def typed_numbers(text: str) -> list[str]:
    for pattern in STRIP:
        text = pattern.sub(" ", text)
    found = []
    for match in NUMBER.finditer(text):
        integer, fraction = match.group(1), match.group(2)
        if significant_digits(integer, fraction) >= 3:
            found.append(match.group(0))
    return found


def check_markdown(notebook: str, cells: list[tuple[int, str, str]], allowed: dict[str, str]) -> list[Finding]:
    findings = []
    for index, kind, source in cells:
        if kind != "markdown":
            continue
        for number in typed_numbers(source):
            if number not in allowed:
                line = next((l for l in source.split("\n") if number in l), "")
                findings.append(Finding(notebook, index, "typed-number", line,
                                        f"{number} typed: print it from the computation, or allow-list it with its reason"))
    return findings


def read_cells(path: Path) -> list[tuple[int, str, str]]:
    notebook = nbformat.read(path, as_version=4)
    return [(index, cell.cell_type, cell.source) for index, cell in enumerate(notebook.cells)]


def check_notebook(path: Path, allowed: dict[str, str]) -> list[Finding]:
    cells = read_cells(path)
    return check_code(path.name, cells) + check_markdown(path.name, cells, allowed)
