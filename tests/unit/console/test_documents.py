"""The Documents page's highlight sanitiser: only ``<mark>`` survives as markup."""

from __future__ import annotations

import pytest

from myaiserv.console.pages import highlighted


@pytest.mark.parametrize(
    ("fragment", "html"),
    [
        # As Elasticsearch's html encoder sends it: escaped text, mark tags.
        (
            "a <mark>word</mark> &lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2F;script&gt;",
            "a <mark>word</mark> &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;",
        ),
        # Markup that reached us unescaped is escaped all the same.
        ("<script>x</script><mark>y</mark>", "&lt;script&gt;x&lt;/script&gt;<mark>y</mark>"),
        ('<img src=x onerror="a()">', "&lt;img src=x onerror=&#34;a()&#34;&gt;"),
        # A mark tag with attributes is not a mark tag.
        ('<mark onclick="a()">x</mark>', "&lt;mark onclick=&#34;a()&#34;&gt;x</mark>"),
        # A document that literally says "<mark>" shows it as text.
        ("&lt;mark&gt; <mark>hit</mark>", "&lt;mark&gt; <mark>hit</mark>"),
        ("plain &amp; simple", "plain &amp; simple"),
    ],
)
def test_only_mark_tags_stay_markup(fragment: str, html: str) -> None:
    assert str(highlighted(fragment)) == html
