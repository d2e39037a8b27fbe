"""The OpenAI-compatible API (/v1): models, chat completions (plain or over the caller's documents), embeddings."""
