"""Request bodies of /v1, as OpenAI's clients send them (fields this server does not use are ignored)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_STOP_SEQUENCES = 4


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None

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
        if len(stops) > MAX_STOP_SEQUENCES or any(not stop for stop in stops):
            raise ValueError(f"up to {MAX_STOP_SEQUENCES} non-empty stop sequences")
        return stops

    def stop_sequences(self) -> list[str]:
        return list(self.stop or [])  # type: ignore[arg-type]  (the validator made it a list)

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_GenerationRequest):
    """OpenAI's chat completion body. `rag` and `rag_top_k` are this server's extensions."""

    messages: list[ChatMessageIn] = Field(min_length=1, max_length=500)
    max_tokens: int | None = Field(default=None, ge=1, le=2048)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=2048)
    rag: bool | None = Field(default=None, description="Extension: answer from the caller's documents (sources returned)")
    rag_top_k: int | None = Field(default=None, ge=1, le=20, description="Extension: chunks to retrieve")

    @field_validator("messages")
    @classmethod
    def _ends_with_a_question(cls, messages: list[ChatMessageIn]) -> list[ChatMessageIn]:
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
        return prompts[0]

    def text(self) -> str:
        return str(self.prompt)


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200)
    input: str | list[str] = Field(description="A text or up to 256 texts (token arrays are not accepted)")
    encoding_format: Literal["float", "base64"] = "float"

    @field_validator("input")
    @classmethod
    def _texts(cls, value: str | list[str]) -> list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts or len(texts) > 256:
            raise ValueError("between 1 and 256 texts")
        if any(not text or len(text) > 20_000 for text in texts):
            raise ValueError("each text must have 1 to 20000 characters")
        return texts

    def texts(self) -> list[str]:
        return list(self.input)  # type: ignore[arg-type]


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
