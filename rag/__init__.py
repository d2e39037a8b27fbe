"""Documents: loaders per format, chunking, the embedder, the vector store, ingestion and retrieval."""
