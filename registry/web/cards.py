"""Model cards for display: the Markdown body rendered and sanitised, front matter apart.

Two layers: markdown-it-py with raw HTML disabled (so ``<script>`` in a card stays text and
``javascript:`` links are not linked), then nh3 with an allow-list of tags, attributes and
URL schemes, in case a renderer change ever lets something through.
"""

from __future__ import annotations

import re
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

from client.shared.model_card import REQUIRED_CARD_FIELDS, split_front_matter

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4",
        "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "strong", "sub", "sup",
        "table", "tbody", "td", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "th": {"align"},
    "td": {"align"},
    "code": {"class"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})

_markdown = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def sanitise_html(html: str) -> Markup:
    """Keep only harmless markup: no scripts, no event handlers, no ``javascript:`` URLs."""
    clean = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(clean)  # noqa: S704 - sanitised just above


def card_body(card_text: str) -> str:
    """The Markdown below the YAML front matter (the whole text if there is none)."""
    split = split_front_matter(card_text or "")
    return split[1] if split is not None else (card_text or "")


def render_card(card_text: str, *, top_level: int = 2) -> Markup:
    """The card's Markdown as safe HTML for a page section: its headings start at
    ``top_level`` (a card's ``# Title`` sits under the page's own h1), and wide code blocks
    and tables scroll in regions reachable from the keyboard."""
    html = str(sanitise_html(_markdown.render(card_body(card_text))))
    shift = max(0, top_level - 1)
    if shift:
        html = _HEADING.sub(lambda m: f"<{m[1]}h{min(6, int(m[2]) + shift)}", html)
    html = html.replace("<pre>", '<pre tabindex="0">')
    html = html.replace("<table>", '<div class="table-wrap" tabindex="0"><table>')
    html = html.replace("</table>", "</table></div>")
    return Markup(html)  # noqa: S704 - sanitised above; only fixed attributes were added


_HEADING = re.compile(r"<(/?)h([1-6])(?=[\s>])")


def front_matter_rows(card_data: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """Front-matter fields in a stable order: required fields first, as the form asks them."""
    data = card_data or {}
    first = [(k, data[k]) for k in REQUIRED_CARD_FIELDS if k in data]
    rest = [(k, v) for k, v in sorted(data.items()) if k not in REQUIRED_CARD_FIELDS]
    return first + rest
