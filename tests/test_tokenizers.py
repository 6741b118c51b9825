"""Tokenizers: exact ids on hand-checked strings, round trips, saving and loading, clear errors."""
import json

import numpy as np
import pytest
import torch

from lesson_lib.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    StreamDecoder,
    Tokenizer,
    UnknownCharactersError,
    WordTokenizer,
    load_tokenizer,
    tokenizer_from_dict,
    train_tokenizer,
)

WORD_TEXT = "the cat sat on the mat. The cat ran!"
VARIED_TEXT = (
    "  Leading spaces, then a blank line\n\n\tA tab; 'quotes' and \"double quotes\".\r\n"
    "Unicode: héllo wörld — ‘curly’ 日本語 🙂 a\u0301 combining, \x00 control.\n   trailing   "
)
BPE_TRAIN = ("To be, or not to be, that is the question:\n"
             "Whether 'tis nobler in the mind to suffer\n") * 20


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train(BPE_TRAIN, vocab_size=300)


def test_char_exact_ids_and_round_trip():
    tok = CharTokenizer.train("hello world")
    assert tok.chars == [" ", "d", "e", "h", "l", "o", "r", "w"]
    assert tok.encode("hello world") == [3, 2, 4, 4, 5, 0, 7, 5, 6, 4, 1]
    assert all(type(i) is int for i in tok.encode("hello"))
    assert tok.decode(tok.encode("low world")) == "low world"
    varied = CharTokenizer.train(VARIED_TEXT)
    assert varied.decode(varied.encode(VARIED_TEXT)) == VARIED_TEXT
    assert varied.vocab_size == len(set(VARIED_TEXT))


def test_char_unknown_characters_are_listed():
    tok = CharTokenizer.train("hello world")
    assert tok.unknown_characters("Hello, world!") == ["!", ",", "H"]
    with pytest.raises(UnknownCharactersError) as info:
        tok.encode("Hello, world!")
    assert info.value.characters == ["!", ",", "H"]
    message = str(info.value)
    assert "'H'" in message and "','" in message and "'!'" in message
    assert "trained on a character set" in message and "remove" in message


def test_word_exact_ids_unk_and_pad():
    tok = WordTokenizer.train(WORD_TEXT)
    # counts: the 3, cat 2, the rest 1 each, ties alphabetical ('!' < '.' < 'mat' < ...)
    assert tok.words == ["<pad>", "<unk>", "the", "cat", "!", ".", "mat", "on", "ran", "sat"]
    assert WordTokenizer.PAD_ID == 0 and WordTokenizer.UNK_ID == 1
    assert tok.encode("The dog sat.") == [2, WordTokenizer.UNK_ID, 9, 5]
    assert tok.decode([WordTokenizer.PAD_ID]) == "<pad>"
    assert WordTokenizer.tokenize("'Tis o'er, THE end!") == ["'tis", "o'er", ",", "the", "end", "!"]


def test_word_capped_vocab_and_lossy_round_trip():
    capped = WordTokenizer.train(WORD_TEXT, max_vocab=5)
    assert capped.vocab_size == 5
    assert capped.words == ["<pad>", "<unk>", "the", "cat", "!"]
    assert capped.encode("the mat!") == [2, 1, 4]
    tok = WordTokenizer.train("Hello, world! Don't stop (now) here.")
    assert tok.decode(tok.encode("Hello,   WORLD!\nDon't stop (now) here.")) == \
        "hello, world! don't stop (now) here."
    with pytest.raises(ValueError, match="max_vocab"):
        WordTokenizer.train(WORD_TEXT, max_vocab=2)


def test_bpe_round_trips_any_text(bpe):
    for text in [VARIED_TEXT, "", " ", "\n\n", "never seen: ÆØÅ ∑ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", BPE_TRAIN]:
        ids = bpe.encode(text)
        assert all(type(i) is int for i in ids)
        assert bpe.decode(ids) == text
    assert bpe.vocab_size == 300
    assert len(bpe.encode(BPE_TRAIN)) < len(BPE_TRAIN.encode()) / 3  # merges actually compress


def test_bpe_long_text_is_encoded_in_chunks_with_the_same_ids(bpe):
    long_text = BPE_TRAIN * 100  # > 2 * 64k characters, so encode cuts it into chunks
    assert len(long_text) > 2 * BPETokenizer._CHUNK_CHARS
    ids = bpe.encode(long_text)
    assert ids == bpe._tok.encode(long_text).ids
    assert bpe.decode(ids) == long_text


def test_bpe_training_is_deterministic(bpe):
    again = BPETokenizer.train(BPE_TRAIN, vocab_size=300)
    assert again.to_dict() == bpe.to_dict()
    assert again.encode(VARIED_TEXT) == bpe.encode(VARIED_TEXT)


def test_bpe_vocab_too_small():
    with pytest.raises(ValueError, match="at least 256"):
        BPETokenizer.train(BPE_TRAIN, vocab_size=100)


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_save_load_gives_the_same_tokenizer(kind, tmp_path):
    tok = train_tokenizer(kind, BPE_TRAIN, vocab_size=300 if kind == "bpe" else None)
    assert tok.kind == kind and isinstance(tok, Tokenizer)
    path = tmp_path / "run" / "tokenizer.json"
    tok.save(path)
    assert json.loads(path.read_text())["kind"] == kind
    assert [p.name for p in path.parent.iterdir()] == ["tokenizer.json"]  # no temp file left behind
    loaded = load_tokenizer(path)
    assert type(loaded) is type(tok) and loaded.vocab_size == tok.vocab_size
    assert loaded.encode(BPE_TRAIN) == tok.encode(BPE_TRAIN)
    assert tokenizer_from_dict(tok.to_dict()).to_dict() == tok.to_dict()


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_decode_rejects_ids_outside_the_vocab(kind):
    tok = train_tokenizer(kind, BPE_TRAIN, vocab_size=300 if kind == "bpe" else None)
    bad = tok.vocab_size
    with pytest.raises(ValueError, match=f"token id {bad} "):
        tok.decode([0, bad])
    with pytest.raises(ValueError, match="token id -1 "):
        tok.decode([-1])
    # ids from numpy or torch are accepted as well as plain ints
    ids = tok.encode("to be")
    assert tok.decode(np.array(ids)) == tok.decode(torch.tensor(ids)) == tok.decode(ids)


def test_unknown_kind_and_bad_files(tmp_path):
    with pytest.raises(ValueError, match="unknown tokenizer kind 'wordpiece'.*bpe, char, word"):
        train_tokenizer("wordpiece", "text")
    with pytest.raises(FileNotFoundError, match="no tokenizer file"):
        load_tokenizer(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="not a tokenizer JSON file"):
        load_tokenizer(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"kind": "char"}))
    with pytest.raises(ValueError, match="lacks its 'chars' field"):
        load_tokenizer(wrong)
    with pytest.raises(ValueError, match="'kind' is 'morse'"):
        tokenizer_from_dict({"kind": "morse"})
    with pytest.raises(ValueError, match="empty text"):
        CharTokenizer.train("")


# --- streaming decode: text piece by piece, equal to the whole decode -----------------------------------

STREAM_TEXT = ("To be, or not to be (that is the question): [whether] 'tis nobler; {so} it seems!\n"
               "生存还是毁灭，这是一个问题。🙂👍🏽 café naïve ☃\n") * 10


def streamed(tokenizer, context, ids):
    """The pieces a StreamDecoder returns for `ids` after `context`, the held-back rest last."""
    stream = StreamDecoder(tokenizer, context)
    return [stream.push(i) for i in ids] + [stream.flush()]


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_stream_decoder_pieces_equal_the_whole_decode(kind):
    tok = train_tokenizer(kind, STREAM_TEXT, vocab_size=300 if kind == "bpe" else None)
    g = torch.Generator().manual_seed(0)
    context = tok.encode("To be, or not")
    encoded = tok.encode(STREAM_TEXT[:200])  # real text: multi-byte characters split over BPE tokens
    noise = torch.randint(0, tok.vocab_size, (2000,), generator=g).tolist()  # any id in any order
    for ids in (encoded, noise, noise[:1]):
        pieces = streamed(tok, context, ids)
        assert "".join(pieces) == tok.decode(context + ids)[len(tok.decode(context)):]
    # real text: an unfinished character waits for its last byte, so no piece shows U+FFFD
    assert "\ufffd" not in "".join(streamed(tok, context, encoded))
    assert "".join(streamed(tok, [], encoded)) == tok.decode(encoded)  # no context at all


def test_stream_decoder_shows_a_split_character_once_it_is_complete():
    tok = BPETokenizer.train("plain ascii text only " * 20, vocab_size=260)
    ids = tok.encode("a☃🙂b")  # the snowman is 3 byte tokens, the emoji 4: none seen in training
    assert len(ids) == 9
    assert streamed(tok, tok.encode("x"), ids) == ["a", "", "", "☃", "", "", "", "🙂", "b", ""]
    # bytes that never become a character are shown (as U+FFFD) once the next token settles them
    lone = tok.encode("\x80")  # U+0080 is 2 bytes, C2 80: the C2 alone is no character
    assert streamed(tok, [], [lone[0], tok.encode("b")[0]]) == ["", "\ufffdb", ""]


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_stream_decoder_decodes_each_id_a_bounded_number_of_times(kind, monkeypatch):
    tok = train_tokenizer(kind, STREAM_TEXT, vocab_size=300 if kind == "bpe" else None)
    ids = (tok.encode(STREAM_TEXT) * 3)[:3000]
    decoded = []
    real_decode = tok.decode
    monkeypatch.setattr(tok, "decode", lambda batch: decoded.append(len(batch)) or real_decode(batch))
    streamed(tok, ids[:10], ids[10:])
    assert sum(decoded) < 8 * len(ids)  # linear: re-decoding everything each time would be ~4.5 million


# --- BPE on long lines (issue 27, item 9) -----------------------------------------------------------------

def _bpe_as_trained_before(text: str, vocab_size: int) -> BPETokenizer:
    """The reference: HuggingFace's trainer on the whole text as one sequence, with the plain byte-level
    pre-tokenizer (what `BPETokenizer.train` did before it cut text and long words into pieces)."""
    from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([text], trainer=trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    return BPETokenizer(tok)


# every kind of character next to every kind of whitespace: ASCII and Unicode spaces, characters Python calls
# whitespace and the tokenizer does not (\x1c-\x1f), contractions, digits, marks, CJK text and its punctuation
TRICKY = ("To be, or not to be: that's the question;\twhether 'tis nobler\r\nin the mind\x0b\x0cto suffer \n"
          "  indented\n\n\n   x\x1c y\x1d\n\x1e \x1f\u3000z\u3000\u3000w\xa0v\u2028u\u2029t\x85s \u202f\u205f\n"
          "123 4567 ½ ２ café a\u0301 _under_score_ -dash- ... !!! 🙂 👍🏽 \n"
          "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。 \n")


@pytest.mark.parametrize("fixed_length", [True, False], ids=["FixedLength", "Split"])
def test_bpe_training_bounds_the_words_it_counts_pairs_in(fixed_length, monkeypatch):
    """The trainer's time grows with the square of a word's length (a 20 MB word never finished), so words
    longer than `_MAX_WORD_BYTES` are cut into pieces of at most that many bytes before pairs are counted.
    The bound shows in the vocabulary: no token can be longer than the longest piece. tokenizers < 0.21 has
    no FixedLength pre-tokenizer: a regex Split does the cutting there."""
    if not fixed_length:
        from tokenizers import pre_tokenizers

        monkeypatch.delattr(pre_tokenizers, "FixedLength", raising=False)
    bound = BPETokenizer._MAX_WORD_BYTES
    text = "a" * (5 * bound) + " " + "xyz" * (2 * bound) + " and some ordinary words\n"
    tok = BPETokenizer.train(text, vocab_size=300)
    longest = max(len(token) for token in tok._tok.get_vocab())  # byte-level: one character per byte
    assert longest <= bound  # the old trainer learnt "a" * 4096 from the 5120 a's
    assert tok._tok.token_to_id("a" * 64) is not None  # long runs still merge, up to the bound
    assert tok.decode(tok.encode(text)) == text


def test_bpe_training_cut_into_pieces_learns_the_same_merges(monkeypatch):
    """Text is fed to the trainer in pieces cut only where a pre-token starts, so the counts, and so the
    merges, are those of the whole text: checked with pieces of a few characters, on one long line and many."""
    monkeypatch.setattr(BPETokenizer, "_TRAIN_PIECE_CHARS", 5)
    one_line = BPE_TRAIN.replace("\n", " ") * 3
    for text in (TRICKY * 5 + BPE_TRAIN, one_line, STREAM_TEXT):
        assert BPETokenizer.train(text, vocab_size=400).to_dict() == _bpe_as_trained_before(text, 400).to_dict()


@pytest.mark.parametrize("chunk", [1, 3, 50])
def test_bpe_encode_cuts_only_where_a_pre_token_starts(bpe, chunk, monkeypatch):
    """Long text is encoded in chunks cut after a non-space character before a space or a line break (one
    line of text has no line breaks): the ids are those of the whole text, whatever the characters around."""
    monkeypatch.setattr(BPETokenizer, "_CHUNK_CHARS", chunk)
    for text in (TRICKY * 3, BPE_TRAIN.replace("\n", " "), "x" * 40 + " " * 9 + "y" * 40):
        assert bpe.encode(text) == bpe._tok.encode(text).ids
        assert bpe.decode(bpe.encode(text)) == text


def test_bpe_training_is_quiet_on_small_texts_and_shows_progress_on_big_ones(monkeypatch, capsys):
    BPETokenizer.train(BPE_TRAIN, vocab_size=300)
    assert capsys.readouterr() == ("", "")
    monkeypatch.setattr(BPETokenizer, "_PROGRESS_CHARS", 100)  # as if BPE_TRAIN took seconds
    BPETokenizer.train(BPE_TRAIN, vocab_size=300)
    out, err = capsys.readouterr()
    assert out == "" and "BPE" in err and "merges" in err


# --- a damaged tokenizer.json (issue 27, item 13) ---------------------------------------------------------

def _bpe_json(change) -> dict:
    """A real bpe tokenizer description with `change` applied to its HuggingFace JSON."""
    inner = json.loads(BPETokenizer.train(BPE_TRAIN, vocab_size=260)._tok.to_str())
    change(inner)
    return {"kind": "bpe", "tokenizer_json": json.dumps(inner)}


DAMAGED = {
    "a list": ([{"kind": "char", "chars": ["a"]}], "it holds a list, not a JSON object"),
    "a number": (42, "it holds a number, not a JSON object"),
    "null": (None, "it holds null, not a JSON object"),
    "no kind": ({"chars": ["a", "b"]}, "'kind' is missing"),
    "unknown kind": ({"kind": "morse", "chars": ["a"]}, "'kind' is 'morse'"),
    "kind not a string": ({"kind": ["char"], "chars": ["a"]}, "'kind' is ['char']"),
    "no chars": ({"kind": "char"}, "lacks its 'chars' field"),
    "chars a string": ({"kind": "char", "chars": "abc"}, "'chars' must be a list of single characters"),
    "chars not characters": ({"kind": "char", "chars": [1, 2]}, "'chars' must be a list of single characters"),
    "chars null": ({"kind": "char", "chars": None}, "'chars' must be a list of single characters"),
    "chars repeated": ({"kind": "char", "chars": ["a", "a"]}, "must be distinct"),
    "words a number": ({"kind": "word", "words": 5}, "'words' must be a list of strings"),
    "words nested": ({"kind": "word", "words": ["<pad>", "<unk>", ["a"]]}, "'words' must be a list of strings"),
    "words without pad": ({"kind": "word", "words": ["a", "b"]}, "must start with '<pad>', '<unk>'"),
    "no tokenizer_json": ({"kind": "bpe"}, "lacks its 'tokenizer_json' field"),
    "tokenizer_json not a string": ({"kind": "bpe", "tokenizer_json": {"model": {}}},
                                    "'tokenizer_json' must be a string"),
    "tokenizer_json not JSON": ({"kind": "bpe", "tokenizer_json": "{not json"}, "malformed"),
    "merges of the wrong shape": (_bpe_json(lambda d: d["model"].__setitem__("merges", [[1, 2, 3]])), "malformed"),
    "merges not a list": (_bpe_json(lambda d: d["model"].__setitem__("merges", 5)), "malformed"),
    "merge of unknown tokens": (_bpe_json(lambda d: d["model"]["merges"].append(["zz", "qq"])), "malformed"),
    "no vocab": (_bpe_json(lambda d: d["model"].pop("vocab")), "malformed"),
    "not a BPE model": (_bpe_json(lambda d: d.__setitem__("model", {"type": "WordLevel", "vocab": {"a": 0},
                                                                      "unk_token": "a"})), "WordLevel model, not BPE"),
}


@pytest.mark.parametrize("name", DAMAGED)
def test_a_damaged_tokenizer_file_is_named_with_what_is_wrong_and_what_to_do(name, tmp_path):
    content, what = DAMAGED[name]
    path = tmp_path / "runs" / "x" / "tokenizer.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError) as info:
        load_tokenizer(path)
    message = str(info.value)
    assert message.startswith(f"{path} is damaged: ") and what in message
    assert "restore the file" in message and "\n" not in message


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe{}", b"", b"{\"kind\": \"char\", \"chars\": [\"a\"]",
                                     b"[" * 100_000])
def test_a_tokenizer_file_that_is_not_json_is_named(content, tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a tokenizer JSON file") as info:
        load_tokenizer(path)
    assert str(info.value).startswith(f"{path} is damaged") and "restore the file" in str(info.value)


def test_a_missing_or_folder_tokenizer_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no tokenizer file at {tmp_path / 'missing.json'}"):
        load_tokenizer(tmp_path / "missing.json")
    with pytest.raises(ValueError, match=f"{tmp_path} is a folder"):
        load_tokenizer(tmp_path)
    with pytest.raises(ValueError, match="/dev/null is not a regular file"):
        load_tokenizer("/dev/null")
