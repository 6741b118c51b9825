"""Speaker lines in both of the corpus's conventions, casts, and where a generated name belongs."""
from collections import Counter

import pytest

from lesson_lib.data import Corpus, Work
from lesson_lib.plays import (casts, is_speaker_line, normalise, speaker_lines, turn_kind, unigram_same_play_rate,
                              written_forms)

HAMLET = ("ACT I.\n\nScene I. Elsinore.\n\n[Enter Bernardo.]\n\nBer.\nWho's there?\n\nFran.\nNay, answer me.\n\n"
          "Ber.\nLong live the king!\n")
TEMPEST = ("SCENE 2\n\n[Enter PROSPERO]\n\nGONZALO. \nHe'll be hang'd yet,\n\nFIRST LORD.\nAy.\n\nGONZALO.\nNo.\n\n"
           "EXEUNT.\n")
DREAM = "THESEUS\nWhat say you, Hermia?\n\nHERMIA\nSo is Lysander.\n"


def test_the_form_of_a_speaker_line():
    for line in ("Ham.", "GONZALO.", "GONZALO. ", "First Lord.", "THESEUS", "KING HENRY.", "Lady Capulet."):
        assert is_speaker_line(line), line
    for line in ("ACT I.", "SCENE 2", "[Exit]", "  Ham.", "Who's there?", "He", "Exeunt.", "", "theseus"):
        assert not is_speaker_line(line), line
    assert normalise(" Ham. ") == "HAM" and normalise("GONZALO.") == "GONZALO"


@pytest.mark.parametrize("text, names", [
    (HAMLET, ["Ber.", "Fran.", "Ber."]),
    (TEMPEST, ["GONZALO.", "FIRST LORD.", "GONZALO."]),
    (DREAM, ["THESEUS", "HERMIA"]),
])
def test_speaker_lines_in_each_convention(text, names):
    found = speaker_lines(text)
    assert [s.name for s in found] == names
    assert all(text[s.start:].startswith(s.name) for s in found)  # offsets point at the line


def test_a_name_at_the_very_end_needs_no_speech_when_asked():
    assert speaker_lines("Well said!\n\nBer.") == []
    assert [s.name for s in speaker_lines("Well said!\n\nBer.", need_speech=False)] == ["Ber."]


def test_casts_and_where_a_name_belongs():
    corpus = Corpus("t", "", (Work("hamlet", "Hamlet", "tragedy", HAMLET),
                              Work("tempest", "The Tempest", "comedy", TEMPEST),
                              Work("sonnets", "Sonnets", "poem", "I\n\nFrom fairest creatures we desire increase,\n")))
    cast_of = casts(corpus)
    assert cast_of == {"hamlet": Counter({"BER": 2, "FRAN": 1}), "tempest": Counter({"GONZALO": 2, "FIRST LORD": 1})}
    assert written_forms(TEMPEST) == {"GONZALO": "GONZALO.", "FIRST LORD": "FIRST LORD."}
    assert turn_kind("Fran.", "hamlet", cast_of) == "same play"
    assert turn_kind("GONZALO.", "hamlet", cast_of) == "other play"
    assert turn_kind("Hamlette.", "hamlet", cast_of) == "no character"
    assert unigram_same_play_rate("hamlet", cast_of) == pytest.approx(3 / 6)
    assert unigram_same_play_rate("tempest", cast_of) == pytest.approx(3 / 6)
