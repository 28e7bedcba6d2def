"""all-hashtag.com generator answers, parsed: the ranked tags in `div#copy-hashtags`."""
from __future__ import annotations

import re

from bs4 import BeautifulSoup

from hashtag_workbench.core.ddg import SiteChanged

# A tag runs from '#' to the next space or '#'; site tags are letters, digits and '_'.
_TAG_RE = re.compile(r"#([^\s#,]+)")
MAX_TAG_LEN = 100


def parse_generator(html: str | bytes) -> list[str]:
    """The ranked tags (without '#', de-duplicated, in site order) from a generator answer.

    Raises SiteChanged when the answer has no `#copy-hashtags` element or it holds no tags.
    """
    soup = BeautifulSoup(html or "", "html.parser")
    box = soup.find(id="copy-hashtags") or soup.find(class_="copy-hashtags")
    if box is None:
        raise SiteChanged("the all-hashtag.com answer has no div#copy-hashtags (the site's markup changed, "
                           "or it has no tags for this word)")
    tags: list[str] = []
    for tag in _TAG_RE.findall(box.get_text(" ")):
        tag = tag.strip().strip(".;:!?'\"").lower()
        if tag and len(tag) <= MAX_TAG_LEN and tag not in tags:
            tags.append(tag)
    if not tags:
        raise SiteChanged("the all-hashtag.com answer's div#copy-hashtags holds no #tags")
    return tags
