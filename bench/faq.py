"""Real FAQ documents and their own questions with gold answers, for the answer benchmark.

Nobody here wrote them: they are the FAQs that SQLite, Git, zsh and FFmpeg ship in their Debian
documentation packages (sqlite3-doc, git-doc, zsh-doc, ffmpeg-doc; `make bench-answers` installs
them). Each question is the FAQ's own heading, and its gold answer is the text under that heading
up to the next one. Two of the FAQs are printed to PDF by headless Chromium (with its running page
headers and footers), so the benchmark reads HTML and PDF. Beside them, UNANSWERABLE questions in
the same field whose answer is in none of these documents.
"""
from __future__ import annotations

import html
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SQLITE = Path("/usr/share/doc/sqlite3/faq.html")
GIT = Path("/usr/share/doc/git-doc/gitfaq.html")
ZSH = [Path(f"/usr/share/doc/zsh-common/html/FAQ0{number}.html") for number in range(1, 7)]
FFMPEG = [Path("/usr/share/doc/ffmpeg/manual/faq.html"), Path("/usr/share/doc/ffmpeg/manual/mailing-list-faq.html")]
PACKAGES = ("sqlite3-doc", "git-doc", "zsh-doc", "ffmpeg-doc")
PRINTED_TO_PDF = {GIT, ZSH[2]}  # the Git FAQ and zsh's chapter 3 (30 questions) are read as PDF
MIN_GOLD_WORDS = 8  # a heading with less under it (a chapter title) is no question

UNANSWERABLE = [
    "What port does PostgreSQL listen on by default?",
    "How do I enable two-factor authentication on my GitHub account?",
    "Which Python version introduced the walrus operator?",
    "How do I give a network interface a static IP address with NetworkManager?",
    "How much memory may Redis use before it starts evicting keys?",
    "How do I install the Rust compiler with rustup?",
    "How do I change the desktop wallpaper in GNOME?",
    "How do I convert a Word document to PDF with LibreOffice?",
    "Under which licence is the Linux kernel released?",
    "How do I create a virtual machine in VirtualBox?",
    "How do I reset a forgotten MySQL root password?",
    "Which keys split a window vertically in tmux?",
    "How do I make a cron job run every five minutes?",
    "How many bits long is an IPv6 address?",
    "How do I turn on HTTPS in nginx with a Let's Encrypt certificate?",
    "Which garbage collector does Java 17 use by default?",
    "How do I format a USB stick as exFAT on macOS?",
    "How do I rotate one page of a PDF in Adobe Acrobat?",
    "What is the boiling point of water at the summit of Mount Everest?",
    "Which country won the 2018 FIFA World Cup?",
]


@dataclass(frozen=True)
class FaqEntry:
    question: str
    gold: str  # the FAQ's own answer, as plain text
    filename: str  # the uploaded document that holds it


def text_of(fragment: str) -> str:
    """Plain text of an HTML fragment (tags dropped, entities decoded, white space folded)."""
    fragment = re.sub(r"<(script|style)\b.*?</\1>", " ", fragment, flags=re.S | re.I)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _between_headings(page: str, heading: re.Pattern[str]) -> list[tuple[str, str]]:
    """(heading text, text up to the next heading) for each match of `heading`."""
    matches = list(heading.finditer(page))
    ends = [match.start() for match in matches[1:]] + [len(page)]
    return [(text_of(match.group("q")), text_of(page[match.end():end])) for match, end in zip(matches, ends, strict=True)]


def _sqlite(page: str) -> list[tuple[str, str]]:
    return _between_headings(page, re.compile(r"<p><b>\(\d+\)\s*(?P<q>.*?)</b></p>", re.S))


def _git(page: str) -> list[tuple[str, str]]:
    return _between_headings(page, re.compile(r'<dt class="hdlist1">(?P<q>.*?)</dt>', re.S))


def _zsh(page: str) -> list[tuple[str, str]]:
    pairs = _between_headings(page, re.compile(r"<h[2-4][^>]*>(?P<q>\d+\.\d+:.*?)</h[2-4]>", re.S))
    return [(re.sub(r"^\d+\.\d+:\s*", "", question), answer) for question, answer in pairs]


def _texinfo(page: str) -> list[tuple[str, str]]:
    body = page[page.find("</div>", page.find('class="contents"')):] if 'class="contents"' in page else page
    pairs = _between_headings(body, re.compile(r"<h3[^>]*>(?P<q>\d+\.\d+\s.*?)</h3>", re.S))
    return [(re.sub(r"^\d+\.\d+\s+|\s*#\s*TOC$", "", question), answer) for question, answer in pairs]


def _entries(path: Path, filename: str) -> list[FaqEntry]:
    page = path.read_text(encoding="utf-8", errors="replace")
    parse = _sqlite if path == SQLITE else _git if path == GIT else _zsh if path in ZSH else _texinfo
    return [FaqEntry(question, answer, filename) for question, answer in parse(page)
            if len(answer.split()) >= MIN_GOLD_WORDS]


def missing() -> list[Path]:
    return [path for path in [SQLITE, GIT, *ZSH, *FFMPEG] if not path.exists()]


def _print_to_pdf(source: Path, target: Path) -> bool:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        return False
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--print-to-pdf={target}",
                    source.as_uri()], check=False, capture_output=True, timeout=120)
    return target.exists() and target.stat().st_size > 0


def documents(scratch: Path, print_pdf: bool = True) -> tuple[list[Path], list[FaqEntry]]:
    """The files to upload (copies named after their project) and every question with its gold answer
    (`print_pdf` False: all as HTML)."""
    files: list[Path] = []
    entries: list[FaqEntry] = []
    for path in [SQLITE, GIT, *ZSH, *FFMPEG]:
        project = {SQLITE: "sqlite", GIT: "git"}.get(path, "zsh" if path in ZSH else "ffmpeg")
        stem = f"{project}-{path.stem}".lower()
        target = scratch / f"{stem}.pdf"
        if not (print_pdf and path in PRINTED_TO_PDF and _print_to_pdf(path, target)):
            target = scratch / f"{stem}.html"
            shutil.copyfile(path, target)
        files.append(target)
        entries += _entries(path, target.name)
    return files, entries
