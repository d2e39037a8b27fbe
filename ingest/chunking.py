"""Split sections into chunks measured in the embedding model's own tokens, with overlap.

All sections are tokenized in one batch (with character offsets); chunk ends are then chosen among the
token boundaries, preferring a paragraph break, then a line break, then a sentence end, in the
last half of the window. One pass, so chunking costs a fraction of embedding (bench/ingest.py);
a recursive splitter that re-counts tokens for every candidate piece measured ~10x slower.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from ingest.types import Section
from rag.types import Chunk

# What the text between two tokens must contain for the break to be of that quality (best first).
_BREAKS = [re.compile(r"\n\s*\n"), re.compile(r"\n"), re.compile(r"(?<=[.!?;:])\s")]


class Chunker:
    """Every chunk fits the embedder's window: all-MiniLM-L6-v2 silently drops what is past 256 tokens."""

    def __init__(self, tokenize: Callable[[list[str]], list[list[tuple[int, int]]]], chunk_tokens: int, overlap_tokens: int,
                 max_tokens: int) -> None:
        if chunk_tokens > max_tokens:
            raise ValueError(f"CHUNK_TOKENS={chunk_tokens} exceeds the embedding model's {max_tokens} tokens")
        if not 0 <= overlap_tokens < chunk_tokens // 2:
            raise ValueError("CHUNK_OVERLAP_TOKENS must be at least 0 and below half of CHUNK_TOKENS")
        self._tokenize = tokenize
        self._size = chunk_tokens
        self._overlap = overlap_tokens

    def chunk(self, sections: Iterable[Section]) -> list[Chunk]:
        """Chunks numbered from 0 across the document, each keeping its section's citation address."""
        sections = list(sections)
        headers = sorted({section.header for section in sections if section.header})
        tokenized = self._tokenize([section.text for section in sections] + headers)
        header_tokens = dict(zip(headers, (len(offsets) for offsets in tokenized[len(sections):]), strict=True))
        chunks: list[Chunk] = []
        for section, offsets in zip(sections, tokenized, strict=False):
            if section.header:
                pieces = self._split_rows(section.text, offsets, section.header, header_tokens[section.header])
            else:
                pieces = self._split(section.text, offsets)
            for text, tokens in pieces:
                chunks.append(Chunk(text=text, index=len(chunks), tokens=tokens,
                                    page=section.page, section=section.section, row=section.row))
        return chunks

    def _split(self, text: str, offsets: list[tuple[int, int]]) -> list[tuple[str, int]]:
        if not offsets:
            return []
        if len(offsets) <= self._size:
            return [(text.strip(), len(offsets))]
        pieces, start = [], 0
        while start < len(offsets):
            end = min(start + self._size, len(offsets))
            if end < len(offsets):
                end = self._best_break(text, offsets, start, end)
            piece = text[offsets[start][0]:offsets[end - 1][1]].strip()
            if piece:
                pieces.append((piece, end - start))
            if end == len(offsets):
                break
            start = self._word_start(text, offsets, max(end - self._overlap, start + 1))
        return pieces

    def _split_rows(self, text: str, offsets: list[tuple[int, int]], header: str,
                    header_tokens: int) -> list[tuple[str, int]]:
        """A table: whole rows (one per line) under the header line, packed up to the chunk size and
        split only between rows. Only a single row longer than a chunk is cut, each piece still
        under the header; a header longer than half a chunk is not repeated."""
        if header_tokens > self._size // 2:
            return self._split(f"{header}\n{text}", self._tokenize([f"{header}\n{text}"])[0])
        budget = self._size - header_tokens
        pieces: list[tuple[str, int]] = []
        rows: list[str] = []
        used = 0

        def close() -> None:
            nonlocal used
            if rows:
                pieces.append((header + "\n" + "\n".join(rows), header_tokens + used))
                rows.clear()
                used = 0

        for row, row_offsets in _rows(text, offsets):
            if len(row_offsets) > budget:
                close()
                pieces += [(header + "\n" + piece, header_tokens + tokens) for piece, tokens in self._split(row, row_offsets)]
                continue
            if used + len(row_offsets) > budget:
                close()
            rows.append(row)
            used += len(row_offsets)
        close()
        return pieces

    def _best_break(self, text: str, offsets: list[tuple[int, int]], start: int, end: int) -> int:
        """The token index to end before: the best-quality break in the window's second half."""
        earliest = start + self._size // 2
        for pattern in _BREAKS:
            for index in range(end, earliest, -1):
                if pattern.search(text, offsets[index - 1][1], offsets[index][0]):
                    return index
        index = end
        while index > earliest and _continues_word(offsets, index):
            index -= 1
        return index if index > earliest else end  # one giant "word" (a URL): cut it

    @staticmethod
    def _word_start(text: str, offsets: list[tuple[int, int]], index: int) -> int:
        """Move `index` forward to a token that starts a word (not the middle of `unbelievable`)."""
        while index < len(offsets) and _continues_word(offsets, index):
            index += 1
        return index


def _rows(text: str, offsets: list[tuple[int, int]]) -> Iterable[tuple[str, list[tuple[int, int]]]]:
    """Each line of `text` with the offsets of its tokens, counted from the line's start."""
    position, token = 0, 0
    for line in text.split("\n"):
        end = position + len(line)
        first = token
        while token < len(offsets) and offsets[token][0] < end:
            token += 1
        if line.strip():
            yield line, [(start - position, stop - position) for start, stop in offsets[first:token]]
        position = end + 1


def _continues_word(offsets: list[tuple[int, int]], index: int) -> bool:
    return offsets[index][0] == offsets[index - 1][1]
