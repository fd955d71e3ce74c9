"""The line diff between two versions of a prompt, and its rendering escaped."""

from __future__ import annotations

from myaiserv.console.pages import environment
from myaiserv.console.prompts import Diff, DiffLine, line_diff


def test_a_diff_keeps_deletes_and_inserts_lines_in_order() -> None:
    old = "You are helpful.\nAnswer: {question}\nBe brief."
    new = "You are helpful.\nAnswer in {language}: {question}\nBe brief.\nCite sources."
    assert line_diff(old, new) == [
        DiffLine("same", "You are helpful."),
        DiffLine("del", "Answer: {question}"),
        DiffLine("ins", "Answer in {language}: {question}"),
        DiffLine("same", "Be brief."),
        DiffLine("ins", "Cite sources."),
    ]


def test_a_diff_of_equal_texts_changes_nothing_and_keeps_blank_lines() -> None:
    text = "a\n\nb\n"
    assert line_diff(text, text) == [DiffLine("same", t) for t in ("a", "", "b")]
    assert line_diff("", "x") == [DiffLine("ins", "x")]
    assert line_diff("x", "") == [DiffLine("del", "x")]


def test_a_diff_holds_text_as_given_for_the_template_to_escape() -> None:
    lines = line_diff("<b>old</b>", "<script>alert(1)</script>")
    assert lines == [
        DiffLine("del", "<b>old</b>"),
        DiffLine("ins", "<script>alert(1)</script>"),
    ]


def test_the_diff_renders_escaped_inside_ins_and_del() -> None:
    template = environment().from_string(
        '{% for line in diff.lines %}{% if line.op == "ins" %}<ins>{{ line.text }}</ins>'
        '{% elif line.op == "del" %}<del>{{ line.text }}</del>{% endif %}{% endfor %}'
    )
    html = template.render(diff=Diff(1, 2, line_diff("a & b", "<script>x</script>")))
    assert html == "<del>a &amp; b</del><ins>&lt;script&gt;x&lt;/script&gt;</ins>"
