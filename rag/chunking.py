"""Split sections into chunks measured in the embedding model's own tokens, with overlap."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from langchain_text_splitters import RecursiveCharacterTextSplitter

from rag.types import Chunk, Section

SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""]


class Chunker:
    """Every chunk fits the embedder's window: all-MiniLM-L6-v2 silently drops what is past 256 tokens."""

    def __init__(self, count_tokens: Callable[[str], int], chunk_tokens: int, overlap_tokens: int,
                 max_tokens: int) -> None:
        if chunk_tokens > max_tokens:
            raise ValueError(f"CHUNK_TOKENS={chunk_tokens} exceeds the embedding model's {max_tokens} tokens")
        if not 0 <= overlap_tokens < chunk_tokens:
            raise ValueError("CHUNK_OVERLAP_TOKENS must be at least 0 and below CHUNK_TOKENS")
        self._count = count_tokens
        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_tokens,
            chunk_overlap=overlap_tokens,
            length_function=count_tokens,
            separators=SEPARATORS,
            keep_separator="end",
            strip_whitespace=True,
        )

    def chunk(self, sections: Iterable[Section]) -> list[Chunk]:
        """Chunks numbered from 0 across the document, each keeping its section's citation address."""
        chunks: list[Chunk] = []
        for section in sections:
            for text in self._splitter.split_text(section.text):
                if text.strip():
                    chunks.append(Chunk(text=text, index=len(chunks), tokens=self._count(text),
                                        page=section.page, section=section.section, row=section.row))
        return chunks
