"""EML (RFC 822 mail): the headers people search by, the body (plain text, or HTML read as HTML),
and text attachments, each attachment a section named after its file."""
from __future__ import annotations

from email import policy
from email.message import Message
from email.parser import BytesParser
from pathlib import Path

from ingest.loaders.common import Progress, decode_text, no_progress, section_name
from ingest.loaders.formats import html_sections
from ingest.types import ParsedDocument, Section

HEADERS = ("From", "To", "Cc", "Date", "Subject")
TEXT_ATTACHMENTS = (".txt", ".md", ".csv", ".html", ".htm", ".log", ".json", ".xml")


def load_eml(path: Path, progress: Progress = no_progress) -> ParsedDocument:
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    subject = section_name(str(message["Subject"] or "")) or "Message"
    attachments = list(message.iter_attachments())
    headers = [f"{name}: {message[name]}" for name in HEADERS if message[name]]
    if attachments:
        headers.append("Attachments: " + ", ".join(part.get_filename() or "(unnamed)" for part in attachments))
    body = message.get_body(preferencelist=("plain", "html"))
    sections = [Section(text="\n".join(headers) + "\n\n" + _text(body), section=subject)]
    for part in attachments:
        name = part.get_filename() or "(unnamed)"
        if part.get_content_maintype() == "text" or name.lower().endswith(TEXT_ATTACHMENTS):
            text = _text(part)
            if text.strip():
                sections.append(Section(text=text, section=f"Attachment: {name}"))
    return ParsedDocument(sections)


def _text(part: Message | None) -> str:
    """A part's text; HTML parts as the text a reader sees."""
    if part is None:
        return ""
    payload = part.get_payload(decode=True)
    text = _decoded(payload, part.get_content_charset()) if isinstance(payload, bytes) else str(part.get_payload())
    if part.get_content_subtype() == "html":
        return "\n\n".join(section.text for section in html_sections(text))
    return text.strip()


def _decoded(payload: bytes, charset: str | None) -> str:
    """The part's bytes in its declared charset, or in the detected one when that is missing or wrong."""
    if charset:
        try:
            return payload.decode(charset)
        except (LookupError, UnicodeDecodeError):
            pass
    return decode_text(payload)
