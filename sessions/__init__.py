"""Chat sessions: the session store, prompt assembly, summarization, the chat service, SSE."""
