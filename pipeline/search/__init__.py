"""Search by meaning: document text in chunks, their vectors in pgvector, hybrid queries.

``chunking`` cuts page texts along reading order; ``vectors`` finds pgvector (or says why it is
missing) and keeps the HNSW indexes; ``index`` is the ``embeddings`` step (chunks, vectors, one
transaction per document); ``query`` ranks documents by vector and full-text search, fused.
"""

from pipeline.search.chunking import TextChunk, cut_pages
from pipeline.search.index import embed_document
from pipeline.search.query import Hit, Match, SearchMode, SearchResults, search
from pipeline.search.vectors import VectorSupport, VectorUnavailableError, vector_support

__all__ = [
    "Hit",
    "Match",
    "SearchMode",
    "SearchResults",
    "TextChunk",
    "VectorSupport",
    "VectorUnavailableError",
    "cut_pages",
    "embed_document",
    "search",
    "vector_support",
]
