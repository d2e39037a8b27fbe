"""Real files of every supported type, made with the tools people make them with."""
from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

from docx import Document as DocxDocument
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

DEBIAN_REFERENCE_PDF = Path("/usr/share/debian-reference/debian-reference.en.pdf")
DEBIAN_REFERENCE_HTML = Path("/usr/share/debian-reference/ch03.en.html")

# One fact per format, each findable by a question in other words.
FACTS = {
    "pdf": "The lighthouse keeper on Skerry Point polishes the brass lens every Thursday at dawn.",
    "docx": "Quarterly revenue of the Aberdeen bakery rose to 48,000 pounds after the sourdough launch.",
    "html": "The migratory cranes of Lake Hornborga arrive in the first week of April each year.",
    "md": "To reset the Zephyr-9 router, hold the recessed button for exactly seventeen seconds.",
    "csv": "Marisol Quintero",
    "txt": "Der Bergführer Jürgen Möller verlangt für die Gletschertour über den Großvenediger 240 Euro.",
}
FILLER = ("Weather reports mention wind, rain and the occasional clear evening over the harbour. "
          "Nothing in this paragraph matters for the questions asked about the document. ") * 3
TOPICS = ["ferry timetables", "fish prices at the market", "repairs to the north pier", "the sailing club's regatta",
          "tide tables for spring", "gull colonies on the cliffs", "the harbour master's budget", "fog warnings",
          "diesel deliveries", "the winter storm of last year", "mooring fees", "the new crane on the quay"]


def filler_page(number: int) -> str:
    """Different prose on every page, like a real document (identical pages would be unlike any)."""
    first, second = TOPICS[number % len(TOPICS)], TOPICS[(number * 7 + 3) % len(TOPICS)]
    return (f"Section {number} of the harbour notes covers {first}. The committee discussed {second} at length "
            f"and agreed to revisit {first} in meeting number {number * 3}. ") + FILLER


def make_pdf(path: Path, fact_page: int = 2, pages: int = 3) -> Path:
    """A PDF made with reportlab; the fact sits on `fact_page` (1-based)."""
    pdf = canvas.Canvas(str(path), pagesize=A4)
    for number in range(1, pages + 1):
        text = pdf.beginText(50, 780)
        text.textLine(f"Harbour notes, page {number}")
        for line in _wrap(FACTS["pdf"] if number == fact_page else filler_page(number), 90):
            text.textLine(line)
        pdf.drawText(text)
        pdf.showPage()
    pdf.save()
    return path


def make_docx(path: Path) -> Path:
    document = DocxDocument()
    document.add_heading("Annual report", level=1)
    document.add_paragraph(FILLER)
    document.add_heading("Bakery results", level=2)
    document.add_paragraph(FACTS["docx"])
    document.save(str(path))
    return path


def make_html(path: Path) -> Path:
    """Standalone HTML made by pandoc from Markdown when pandoc is there, else written by hand."""
    source = f"# Birds of Sweden\n\n{FILLER}\n\n## Cranes\n\n{FACTS['html']}\n"
    if shutil.which("pandoc"):
        subprocess.run(["pandoc", "-s", "--metadata", "title=Birds", "-f", "markdown", "-o", str(path)],
                       input=source.encode(), check=True)
    else:
        path.write_text(f"<!doctype html><html><body><h1>Birds of Sweden</h1><p>{FILLER}</p>"
                        f"<h2>Cranes</h2><p>{FACTS['html']}</p></body></html>")
    return path


def make_md(path: Path) -> Path:
    path.write_text(f"# Zephyr-9 manual\n\n{FILLER}\n\n## Factory reset\n\n{FACTS['md']}\n\n- Unplug first.\n")
    return path


def make_csv(path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "city", "role"])
        writer.writerow(["Ada Brook", "Leeds", "engineer"])
        writer.writerow([FACTS["csv"], "Valparaíso", "chief cartographer"])
        writer.writerow(["Tom Reed", "Cork", "pilot"])
    return path


def make_txt(path: Path) -> Path:
    """Latin-1, not UTF-8: the loader must detect the encoding."""
    path.write_bytes(f"Alpenführer\n\n{FILLER}\n\n{FACTS['txt']}\n".encode("latin-1"))
    return path


def make_all(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return {
        "pdf": make_pdf(directory / "harbour.pdf"),
        "docx": make_docx(directory / "report.docx"),
        "html": make_html(directory / "birds.html"),
        "md": make_md(directory / "zephyr.md"),
        "csv": make_csv(directory / "staff.csv"),
        "txt": make_txt(directory / "alpen.txt"),
    }


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line] if line else lines
