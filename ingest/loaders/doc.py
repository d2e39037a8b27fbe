"""Legacy Word (.doc, Word 97-2003): converted to .docx by LibreOffice and read by the .docx loader,
so a .doc gets the same sections, tables and citations as a .docx.

LibreOffice runs headless inside the parsing sandbox's child (so within its memory limit), with a
time limit of its own below the parse limit, a fresh profile per file (workers do not share a
lock) and in its own process group, killed whole on time-out. Before it runs, the file is checked
with olefile: one that is not an OLE2 container with a Word stream is damaged, and one whose
header has the fEncrypted flag set is password-protected; both fail with a clear message, as
does a server without LibreOffice (`make run` installs it as root with apt).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from ingest.loaders.common import LoaderError, Progress, no_progress
from ingest.loaders.formats import load_docx
from ingest.types import ParsedDocument

CONVERT_TIMEOUT_S = 90  # below the default PARSE_TIMEOUT_S (120), so the child reports it itself
SYSTEM_PACKAGE = "libreoffice-writer-nogui"
WORD_MAGIC = b"\xec\xa5"  # the FIB's wIdent, 0xA5EC, little-endian
F_ENCRYPTED = 0x0100  # in the FIB's flags at offset 0x0A (MS-DOC 2.5.2, FibBase)


def load_doc(path: Path, progress: Progress = no_progress) -> ParsedDocument:
    check_word_file(path)
    with tempfile.TemporaryDirectory(prefix="doc-") as scratch:
        return load_docx(_to_docx(path, Path(scratch)), progress)


def check_word_file(path: Path) -> None:
    """LoaderError unless `path` is a Word 97-2003 file that opens without a password."""
    import olefile

    try:
        if not olefile.isOleFile(str(path)):
            raise LoaderError("The file is damaged or not a Word 97-2003 document (no OLE2 container)")
        with olefile.OleFileIO(str(path)) as container:
            if not container.exists("WordDocument"):
                raise LoaderError("The file is damaged or not a Word document (no WordDocument stream)")
            header = container.openstream("WordDocument").read(12)
    except LoaderError:
        raise
    except Exception as exc:  # noqa: BLE001 - olefile raises many kinds on a broken container
        raise LoaderError(f"The Word document is damaged ({type(exc).__name__}: {str(exc)[:120]})") from None
    if len(header) < 12 or header[:2] != WORD_MAGIC:
        raise LoaderError("The Word document is damaged (its header is not a Word header)")
    if int.from_bytes(header[10:12], "little") & F_ENCRYPTED:
        raise LoaderError("The Word document is password-protected; save it without a password and upload it again")


def _to_docx(path: Path, scratch: Path) -> Path:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        raise LoaderError(f"Reading .doc files needs LibreOffice, which this server lacks (install the Debian "
                          f"package {SYSTEM_PACKAGE}, as `make run` does when run as root)")
    source = scratch / "document.doc"
    shutil.copyfile(path, source)
    command = [soffice, f"-env:UserInstallation={(scratch / 'profile').as_uri()}", "--headless", "--norestore",
               "--nolockcheck", "--convert-to", "docx:MS Word 2007 XML", "--outdir", str(scratch), str(source)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                          env={**os.environ, "HOME": str(scratch)}) as converter:
        try:
            output, _ = converter.communicate(timeout=CONVERT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(converter.pid, signal.SIGKILL)
            converter.wait()
            raise LoaderError(f"Converting the Word document took longer than {CONVERT_TIMEOUT_S} s") from None
    target = scratch / "document.docx"
    if converter.returncode != 0 or not target.exists() or target.stat().st_size == 0:
        said = output.decode(errors="replace").strip().splitlines()[-1:] or ["nothing"]
        raise LoaderError(f"The Word document is damaged: LibreOffice could not read it ({said[0][:160]})")
    return target
