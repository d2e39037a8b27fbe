"""Is each sentence of an answer backed by its sources? A check, per sentence, with no new model.

A small model sometimes says what its sources do not. Each sentence of an answer is compared with
every sentence of the sources it was given, two ways: meaning (the cosine similarity of their
embeddings, from the same embedder that indexes the documents) and words (the share of the
sentence's content words found in the source chunk, after light stemming). A sentence's support
is the best over the sources of

    SUPPORT = MEANING_WEIGHT * cosine(best source sentence) + (1 - MEANING_WEIGHT) * word share

and a sentence below SUPPORTED_AT is marked unsupported, as is one naming a number (a year, an
amount) that its best source does not contain. Sentences with fewer than
MIN_CONTENT_WORDS content words ("I hope this helps.") carry no claim and are not judged.
The constants were set on hand-made answers (tests/answers/test_grounding.py): a sentence restating a
source scores about 0.8-1.0, one about something the sources never mention 0.2-0.4. It is a
similarity check, not a reader: a sentence that changes one word of a source ("on Mondays" for
"every Thursday") still scores high; numbers are the one detail it checks exactly.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from common.text import STOPWORDS, sentences_of

MEANING_WEIGHT = 0.6
SUPPORTED_AT = 0.5
MIN_CONTENT_WORDS = 3
_FENCED = re.compile(r"```[^\n]*\n(.*?)(?:```|$)", re.DOTALL)  # a code block's lines (an unclosed one too)
_CITATION = re.compile(r"\[\d+\]")  # [1]: which source, not a fact
_FACT = re.compile(r"`([^`\n]+)`|(?<![\w/.-])(\S*\d\S*|(?:~|\.{1,2})?/[\w.~-]\S*|--?[A-Za-z][\w-]*"
                   r"|[A-Za-z][\w-]*(?:[._][\w-]+)+)")
_ABBREVIATION = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]?")  # e.g, i.e, U.S


class Embeds(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray: ...


class Cited(Protocol):
    """What the check needs of a source: its full text and where it is from."""

    @property
    def document_id(self) -> str: ...

    @property
    def page(self) -> int | None: ...

    @property
    def text(self) -> str: ...


@dataclass(frozen=True)
class SentenceSupport:
    text: str
    start: int  # character offsets in the answer
    end: int
    supported: bool | None  # None: too short to carry a claim, not judged
    score: float | None
    source: int | None  # 1-based, the answer's source that supports it best
    document_id: str | None
    page: int | None


@dataclass(frozen=True)
class Grounding:
    sentences: list[SentenceSupport]

    @property
    def judged(self) -> list[SentenceSupport]:
        return [sentence for sentence in self.sentences if sentence.supported is not None]

    def as_dict(self) -> dict[str, Any]:
        judged = self.judged
        supported = sum(1 for sentence in judged if sentence.supported)
        return {"threshold": SUPPORTED_AT, "supported_share": round(supported / len(judged), 3) if judged else None,
                "unsupported": len(judged) - supported, "sentences": [asdict(sentence) for sentence in self.sentences]}


def content_words(text: str) -> set[str]:
    """Lower-cased words of 3+ letters (or any number), without stopwords, crudely stemmed."""
    words = re.findall(r"\w+", text.lower())
    return {_stem(word) for word in words if (len(word) >= 3 or word.isdigit()) and word not in STOPWORDS}


def exact_facts(text: str) -> list[str]:
    """What a text writes that must be copied character for character: each line of a ``` code
    block (white space folded), and elsewhere tokens with a digit (numbers, dates, versions), paths,
    command-line options, dotted or underscored names, `code` spans (citations like [1] and
    trailing punctuation left out; "e.g." is no name)."""
    found = [" ".join(line.split()) for block in _FENCED.findall(text) for line in block.splitlines()
             if line.strip()]
    for match in _FACT.finditer(_CITATION.sub(" ", _FENCED.sub(" ", text))):
        token = (match.group(1) or match.group(2)).strip().strip("()[]{}\"',;:").rstrip(".!?")
        if token and not _ABBREVIATION.fullmatch(token):
            found.append(token)
    return found


def invented_facts(text: str, given: str) -> list[str]:
    """The exact facts of `text` that `given` (the sources, the question) does not hold as a whole
    token ("1" inside "10.4.11" does not count; white space folded)."""
    given = " ".join(given.split())
    return [fact for fact in exact_facts(text) if not re.search(rf"(?<![\w.]){re.escape(fact)}(?![\w]|\.\w)", given)]


def best_sentence(wanted: set[str], sentences: Sequence[str]) -> tuple[int, int]:
    """(index, content words shared) of the sentence sharing the most content words with `wanted`
    (the first on a tie; 0 and 0 when none shares any)."""
    best = (0, 0)
    for index, sentence in enumerate(sentences):
        shared = len(wanted & content_words(sentence))
        if shared > best[1]:
            best = (index, shared)
    return best


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"\d+(?:[.,]\d+)*", text))


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


class GroundingChecker:
    def __init__(self, embedder: Callable[[], Embeds]) -> None:
        self._embedder = embedder

    def check(self, answer: str, sources: Sequence[Cited]) -> Grounding:
        """Each sentence of `answer` with the source that supports it best and how well."""
        sentences = sentences_of(answer)
        claims = [index for index, (text, _, _) in enumerate(sentences) if len(content_words(text)) >= MIN_CONTENT_WORDS]
        if not sentences:
            return Grounding([])
        source_sentences = [(number, text) for number, source in enumerate(sources)
                            for text, _, _ in sentences_of(source.text)]
        best: dict[int, tuple[float, int]] = {}
        if claims and source_sentences:
            best = self._best_sources(sentences, claims, sources, source_sentences)
        results = []
        for index, (text, start, end) in enumerate(sentences):
            if index not in claims:
                results.append(SentenceSupport(text, start, end, None, None, None, None, None))
                continue
            score, number = best.get(index, (0.0, -1))
            source = sources[number] if number >= 0 else None
            numbers_found = source is not None and _numbers(text) <= _numbers(source.text)
            results.append(SentenceSupport(text, start, end, score >= SUPPORTED_AT and numbers_found, round(score, 3),
                                           number + 1 if source else None, source.document_id if source else None,
                                           source.page if source else None))
        return Grounding(results)

    def _best_sources(self, sentences: list[tuple[str, int, int]], claims: list[int], sources: Sequence[Cited],
                      source_sentences: list[tuple[int, str]]) -> dict[int, tuple[float, int]]:
        """claim index -> (best support, index of that source)."""
        vectors = self._embedder().embed([sentences[index][0] for index in claims] + [text for _, text in source_sentences])
        claim_vectors, source_vectors = vectors[:len(claims)], vectors[len(claims):]
        cosine = claim_vectors @ source_vectors.T  # normalized embeddings
        owners = np.array([number for number, _ in source_sentences])
        source_words = [content_words(source.text) for source in sources]
        best = {}
        for row, index in enumerate(claims):
            words = content_words(sentences[index][0])
            scores = [MEANING_WEIGHT * float(cosine[row][owners == number].max(initial=0.0))
                      + (1 - MEANING_WEIGHT) * len(words & source_words[number]) / len(words)
                      for number in range(len(sources))]
            number = int(np.argmax(scores))
            best[index] = (scores[number], number)
        return best
