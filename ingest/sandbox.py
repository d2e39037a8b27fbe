"""Parse a file in a separate process with a time limit and a memory cap.

A hostile or broken file (endless loop, decompression bomb, zip bomb, parser crash) can only
take down its own short-lived child process; the server answers with a clear error instead.
Children are forked from a forkserver that has imported the parsers once, so each parse
starts in milliseconds with a clean state.
"""
from __future__ import annotations

import multiprocessing
import os
import resource
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from ingest.types import ParsedDocument

_PRELOAD = ["ingest.parse_entry"]
_context_lock = threading.Lock()
_context: multiprocessing.context.ForkServerContext | None = None


class ParseFailed(Exception):
    """The file could not be parsed; `message` says why in words a user understands."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ParseLimits:
    timeout_s: float
    memory_mb: int


def parse_in_sandbox(path: Path, doc_type: str, limits: ParseLimits,
                     on_progress: Callable[[int, int], None] | None = None) -> ParsedDocument:
    """Run the loader for `doc_type` on `path` in a child process within `limits`; `on_progress` hears
    (pages done, pages in all) from long parses (OCR)."""
    receiver, sender = _mp_context().Pipe(duplex=False)
    child = _mp_context().Process(
        target=_child_main, args=(sender, str(path), doc_type, limits.memory_mb), daemon=True
    )
    child.start()
    sender.close()
    deadline = time.monotonic() + limits.timeout_s
    try:
        while True:
            if not receiver.poll(max(deadline - time.monotonic(), 0)):
                raise ParseFailed(f"Parsing took longer than the {limits.timeout_s:g} s limit and was stopped")
            status, payload = receiver.recv()
            if status != "progress":
                break
            if on_progress is not None:
                on_progress(*payload)
    except EOFError:
        child.join(5)
        raise ParseFailed(_crash_message(child.exitcode)) from None
    finally:
        if child.is_alive():
            child.kill()
        child.join(5)
        receiver.close()
    if status == "ok":
        return payload
    raise ParseFailed(payload)


def warm_up() -> None:
    """Start the forkserver (importing the parsers, loading spaCy) before the first upload needs it;
    returns once it is ready."""
    process = _mp_context().Process(target=_noop, daemon=True)
    process.start()
    process.join()


def _noop() -> None:
    return None


def _mp_context() -> multiprocessing.context.ForkServerContext:
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            _context = context
        return _context


def _child_main(sender: Connection, path: str, doc_type: str, memory_mb: int) -> None:
    from ingest.parse_entry import parse  # already imported by the forkserver

    _cap_memory(memory_mb)
    try:
        sender.send(("ok", parse(Path(path), doc_type, lambda done, total: sender.send(("progress", (done, total))))))
    except MemoryError:
        sender.send(("error", f"Parsing needed more than the {memory_mb} MB memory limit (a decompression bomb?)"))
    except Exception as exc:  # noqa: BLE001 - every parser failure becomes the document's error
        sender.send(("error", _user_message(exc)))
        traceback.print_exc()
    finally:
        sender.close()


def _cap_memory(memory_mb: int) -> None:
    """Limit the child's address space to what it has now plus `memory_mb`."""
    with open("/proc/self/statm") as handle:
        current = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = current + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _user_message(exc: Exception) -> str:
    from ingest.loaders import LoaderError

    if isinstance(exc, LoaderError):
        return str(exc)
    return f"The file could not be parsed ({type(exc).__name__}: {str(exc)[:200]})"


def _crash_message(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"The parser was killed by signal {-exitcode} (likely out of memory)"
    return f"The parser stopped unexpectedly (exit code {exitcode})"
