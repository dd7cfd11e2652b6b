import pytest

from handler.text import MESSENGER_TEXT_LIMIT, last_whole_sentence, split_message


def words_of(chunks: list[str]) -> list[str]:
    return " ".join(chunks).split()


def test_short_text_is_one_bubble():
    assert split_message("Hello there.") == ["Hello there."]


def test_splits_at_the_last_paragraph_break_that_fits():
    first = "a" * 1500
    second = "b" * 1000
    assert split_message(f"{first}\n\n{second}") == [first, second]


def test_without_paragraphs_splits_after_a_sentence():
    sentence = "This is a sentence of moderate length. "
    text = sentence * 80  # about 3100 characters, no paragraph breaks
    chunks = split_message(text)
    assert all(len(c) <= MESSENGER_TEXT_LIMIT for c in chunks)
    assert all(c.endswith(".") for c in chunks)
    assert words_of(chunks) == text.split()


def test_without_sentences_splits_between_words():
    text = "word " * 900
    chunks = split_message(text)
    assert len(chunks) == 3
    assert all(len(c) <= MESSENGER_TEXT_LIMIT for c in chunks)
    assert words_of(chunks) == text.split()


def test_one_unbroken_run_is_cut_at_the_limit():
    assert split_message("x" * 4500) == ["x" * 2000, "x" * 2000, "x" * 500]


def test_a_5000_character_answer_keeps_every_character_in_order():
    paragraph = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 9).strip()
    text = "\n\n".join([paragraph] * 10)
    assert len(text) > 5000
    chunks = split_message(text)
    assert len(chunks) == 4  # three 512-character paragraphs fit a bubble, four do not
    assert all(len(c) <= MESSENGER_TEXT_LIMIT for c in chunks)
    assert "\n\n".join(chunks) == text


def test_sentence_ends_in_other_scripts_count():
    text = ("\u8fd9\u662f\u4e00\u4e2a\u53e5\u5b50\u3002 " * 300).strip()
    chunks = split_message(text, limit=100)
    assert all(c.endswith("\u3002") for c in chunks)


def test_limit_must_be_positive():
    with pytest.raises(ValueError):
        split_message("abc", 0)


def test_blank_text_is_no_bubble():
    assert split_message("   \n ") == []


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("First sentence. Second one is cut mi", "First sentence."),
        ("A question? An answer! And a torn", "A question? An answer!"),
        ("All whole. ", "All whole."),
        ("A first line\nand a second, cut", "A first line"),
        ("no sentence end at all here", "no sentence end at all"),
        ("word", "word"),
    ],
)
def test_a_cut_answer_ends_on_its_last_whole_sentence(text: str, kept: str):
    assert last_whole_sentence(text) == kept
