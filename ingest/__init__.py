"""Reading files: sniffing, loaders per format in a sandbox, OCR, tables, chunking, and the ingestion pipeline and its jobs - bytes in, chunks out."""
