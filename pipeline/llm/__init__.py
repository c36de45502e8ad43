"""LLM post-processing: schemas, prompts, chunking, the OpenAI-compatible client, map-reduce."""

from pipeline.llm.client import Completion, LlmClient, Usage
from pipeline.llm.products import Product, generate
from pipeline.llm.schemas import PRODUCTS

__all__ = ["PRODUCTS", "Completion", "LlmClient", "Product", "Usage", "generate"]
