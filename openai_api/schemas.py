"""Request bodies of /v1, as OpenAI's clients send them (fields this server does not use are ignored)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rag.schemas import ScopeIn

# Caps on every text a /v1 request carries, checked when the body is validated (before anything is
# tokenized or queued); a body over them is a 400 naming the field. docs/security.md
# lists them. A whole body is also bounded by MAX_JSON_KB before it is parsed at all.
MAX_STOP_SEQUENCES = 4
MAX_STOP_CHARS = 100  # each stop sequence
MAX_MESSAGES = 500
MAX_MESSAGE_CHARS = 32_768  # one message's text (all its parts together)
MAX_CONTENT_PARTS = 64
MAX_PROMPT_CHARS = 131_072  # all messages together, or one legacy prompt
MAX_EMBEDDING_TEXTS = 256
MAX_EMBEDDING_TEXT_CHARS = 20_000
MAX_EMBEDDING_TOTAL_CHARS = 131_072


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str = Field(max_length=MAX_MESSAGE_CHARS)


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None

    @field_validator("content")
    @classmethod
    def _bounded(cls, value: str | list[ContentPart] | None) -> str | list[ContentPart] | None:
        if isinstance(value, list) and len(value) > MAX_CONTENT_PARTS:
            raise ValueError(f"at most {MAX_CONTENT_PARTS} content parts")
        chars = sum(len(part.text) for part in value) if isinstance(value, list) else len(value or "")
        if chars > MAX_MESSAGE_CHARS:
            raise ValueError(f"at most {MAX_MESSAGE_CHARS} characters in one message")
        return value

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class _GenerationRequest(BaseModel):
    """What chat and legacy completions share: the model, sampling, stop sequences, streaming."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=1, description="Only 1 is supported")
    stop: str | list[str] | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> list[str] | None:
        stops = [value] if isinstance(value, str) else value
        if stops is None:
            return None
        if len(stops) > MAX_STOP_SEQUENCES or any(not stop or len(stop) > MAX_STOP_CHARS for stop in stops):
            raise ValueError(f"up to {MAX_STOP_SEQUENCES} stop sequences of 1 to {MAX_STOP_CHARS} characters")
        return stops

    def stop_sequences(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_GenerationRequest):
    """OpenAI's chat completion body. `rag`, `rag_top_k` and `scope` are this server's extensions."""

    messages: list[ChatMessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(default=None, ge=1, le=2048)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=2048)
    rag: bool | None = Field(default=None, description="Extension: answer from the caller's documents (sources returned)")
    rag_top_k: int | None = Field(default=None, ge=1, le=20, description="Extension: chunks to retrieve")
    scope: ScopeIn | None = Field(default=None, description="Extension: what retrieval searches, as /chat/start's "
                                  "`scope`; anything you cannot read is 404")

    @field_validator("messages")
    @classmethod
    def _ends_with_a_question(cls, messages: list[ChatMessageIn]) -> list[ChatMessageIn]:
        if sum(len(message.text()) for message in messages) > MAX_PROMPT_CHARS:
            raise ValueError(f"at most {MAX_PROMPT_CHARS} characters in all messages together")
        if not any(message.role == "user" and message.text().strip() for message in messages):
            raise ValueError("at least one user message with text is needed")
        return messages

    def new_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_GenerationRequest):
    """OpenAI's legacy completion body: raw text continued, no chat template."""

    prompt: str | list[str] = Field(description="One prompt (a list of exactly one is accepted)")
    max_tokens: int = Field(default=16, ge=1, le=2048, description="OpenAI's default, 16")
    echo: bool = Field(default=False, description="Return the prompt before the completion")

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str:
        prompts = [value] if isinstance(value, str) else value
        if len(prompts) != 1 or not prompts[0]:
            raise ValueError("exactly one non-empty prompt (batches of prompts are not supported)")
        if len(prompts[0]) > MAX_PROMPT_CHARS:
            raise ValueError(f"at most {MAX_PROMPT_CHARS} characters")
        return prompts[0]

    def text(self) -> str:
        return str(self.prompt)


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200)
    input: str | list[str] = Field(description=f"A text or up to {MAX_EMBEDDING_TEXTS} texts of at most "
                                   f"{MAX_EMBEDDING_TEXT_CHARS} characters, {MAX_EMBEDDING_TOTAL_CHARS} in all "
                                   "(token arrays are not accepted)")
    encoding_format: Literal["float", "base64"] = "float"

    @field_validator("input")
    @classmethod
    def _texts(cls, value: str | list[str]) -> list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts or len(texts) > MAX_EMBEDDING_TEXTS:
            raise ValueError(f"between 1 and {MAX_EMBEDDING_TEXTS} texts")
        if any(not text or len(text) > MAX_EMBEDDING_TEXT_CHARS for text in texts):
            raise ValueError(f"each text must have 1 to {MAX_EMBEDDING_TEXT_CHARS} characters")
        if sum(len(text) for text in texts) > MAX_EMBEDDING_TOTAL_CHARS:
            raise ValueError(f"at most {MAX_EMBEDDING_TOTAL_CHARS} characters in all texts together")
        return texts

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
