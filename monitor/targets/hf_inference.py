"""`hf-inference`: a model served by Hugging Face's own provider behind router.huggingface.co."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from monitor.config.types import EmbeddingExpect
from monitor.domain.evidence import Evidence, Outcome, RequestSpec, Verdict
from monitor.targets.base import PROBE_TEXT, BaseUrl, ModelTarget, bad_response, vector_problem
from monitor.targets.hf import judge_hf_answer

# The smallest request each task accepts.
TASK_PAYLOADS: dict[str, Any] = {
    "feature-extraction": {"inputs": PROBE_TEXT},
    "sentence-similarity": {
        "inputs": {"source_sentence": PROBE_TEXT, "sentences": ["availability check"]}
    },
    "text-classification": {"inputs": PROBE_TEXT},
    "token-classification": {"inputs": PROBE_TEXT},
    "zero-shot-classification": {
        "inputs": PROBE_TEXT,
        "parameters": {"candidate_labels": ["up", "down"]},
    },
    "question-answering": {
        "inputs": {"question": "What is probed?", "context": "inferwatch probes models."}
    },
    "fill-mask": {"inputs": "The model is [MASK]."},
    "summarization": {"inputs": PROBE_TEXT, "parameters": {"max_length": 8}},
    "translation": {"inputs": PROBE_TEXT},
    "text-generation": {"inputs": PROBE_TEXT, "parameters": {"max_new_tokens": 1}},
    "text2text-generation": {"inputs": PROBE_TEXT, "parameters": {"max_new_tokens": 1}},
}
Task = Literal[
    "feature-extraction",
    "sentence-similarity",
    "text-classification",
    "token-classification",
    "zero-shot-classification",
    "question-answering",
    "fill-mask",
    "summarization",
    "translation",
    "text-generation",
    "text2text-generation",
]
# Since April 2025 these two live under /pipeline/{task}; the rest at the model's root.
PIPELINE_TASKS = ("feature-extraction", "sentence-similarity")


class HfInferenceTarget(ModelTarget):
    kind: Literal["hf-inference"]
    base_url: BaseUrl = "https://router.huggingface.co"
    task: Task = "feature-extraction"
    expect: EmbeddingExpect = Field(default_factory=EmbeddingExpect)

    def config_errors(self) -> list[tuple[str, str]]:
        errors = super().config_errors()
        if self.expect.embedding_dim is not None and self.task != "feature-extraction":
            errors.append(
                (
                    "expect.embedding_dim",
                    f"applies only to task feature-extraction, not {self.task}",
                )
            )
        return errors

    @property
    def endpoint(self) -> str:
        root = f"{self.base_url}/hf-inference/models/{self.model}"
        return f"{root}/pipeline/{self.task}" if self.task in PIPELINE_TASKS else root

    def build_request(self, token: str | None) -> RequestSpec:
        return self.post(self.endpoint, TASK_PAYLOADS[self.task], token)

    def judge_error(self, ev: Evidence) -> Verdict | None:
        if ev.status == 404 and ev.text.strip() == "Not Found":
            return Verdict(
                Outcome.NOT_FOUND,
                detail=f"HTTP 404 Not Found: {self.model} is not served by hf-inference",
                hint=(
                    "this model is not deployed on hf-inference; check its provider mapping at "
                    f"https://huggingface.co/api/models/{self.model}?expand[]=inferenceProviderMapping"
                ),
            )
        return judge_hf_answer(ev, self.token_env)

    def judge_body(self, ev: Evidence) -> Verdict | None:
        if self.task != "feature-extraction":
            return None if ev.json is not None else bad_response("the answer is not JSON")
        problem = vector_problem(ev.json, self.expect.embedding_dim)
        return bad_response(problem) if problem else None
