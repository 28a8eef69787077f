"""`openai-embeddings`: an OpenAI-compatible /embeddings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from monitor.config.types import EmbeddingExpect
from monitor.domain.evidence import Evidence, RequestSpec, Verdict
from monitor.targets.base import PROBE_TEXT, bad_response, vector_problem
from monitor.targets.openai import OpenAICompatibleTarget


class OpenAIEmbeddingsTarget(OpenAICompatibleTarget):
    kind: Literal["openai-embeddings"]
    expect: EmbeddingExpect = Field(default_factory=EmbeddingExpect)

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/embeddings"

    def build_request(self, token: str | None) -> RequestSpec:
        return self.post(self.endpoint, {"model": self.model, "input": PROBE_TEXT}, token)

    def judge_body(self, ev: Evidence) -> Verdict | None:
        data = ev.json
        items = data.get("data") if isinstance(data, dict) else None
        if not (isinstance(items, list) and items and isinstance(items[0], dict)):
            return bad_response("the answer has no data[0].embedding")
        problem = vector_problem(items[0].get("embedding"), self.expect.embedding_dim)
        return bad_response(problem) if problem else None
