"""What the language model's parts raise: a full queue, no model, a failed load, a remote server's refusal."""
from __future__ import annotations

from common.errors import DomainError, ServiceUnavailable


class EngineOverloaded(ServiceUnavailable):
    """The device ran out of memory even with smaller settings."""


class ModelLoadFailed(DomainError):
    """The model named in a swap could not be loaded or did not generate."""


class RemoteUnavailable(ServiceUnavailable):
    """The remote model server cannot be reached, or stays busy after the retries."""


class RemoteFailed(DomainError):
    """The remote model server refused the request or answered something malformed."""


class QueueFull(ServiceUnavailable):
    """More requests than the scheduler admits are waiting or running."""


class ShareExceeded(ServiceUnavailable):
    """One caller already has as many requests waiting or running as one caller may (429)."""


class ModelNotReady(ServiceUnavailable):
    """No model is loaded (yet)."""


class GenerationTimeout(ServiceUnavailable):
    """The request did not finish within its time limit."""


class EngineRestarted(ServiceUnavailable):
    """The model engine was reloaded while this request ran (it had stopped making progress, kept
    failing, or an admin reloaded it): the request failed and may be sent again."""
