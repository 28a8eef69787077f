"""`http`: any method, URL, headers and body; expectations do the judging."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from monitor.domain.evidence import Evidence, RequestSpec, Verdict
from monitor.targets.base import TargetBase, Url
from monitor.targets.hf import judge_hf_answer
from monitor.targets.openai import judge_openai_answer

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class HttpTarget(TargetBase):
    kind: Literal["http"]
    url: Url = Field(description="the URL to request")
    method: Method = "GET"
    body: str | dict[str, Any] | list[Any] | None = Field(
        default=None, description="request body; a mapping or list is sent as JSON"
    )
    follow_redirects: bool = True

    @property
    def endpoint(self) -> str:
        return self.url

    def build_request(self, token: str | None) -> RequestSpec:
        headers = self.request_headers(token)
        if isinstance(self.body, str):
            content = self.body.encode()
        elif self.body is not None:
            content = json.dumps(self.body).encode()
            headers.setdefault("content-type", "application/json")
        else:
            content = None
        return RequestSpec(
            method=self.method,
            url=self.url,
            headers=headers,
            content=content,
            follow_redirects=self.follow_redirects,
        )

    def judge_error(self, ev: Evidence) -> Verdict | None:
        # A plain URL may be any provider's (a proxy hides which): read the answer as each
        # provider we know writes it, as the OpenAI-compatible kinds do.
        return judge_hf_answer(ev, self.token_env) or judge_openai_answer(ev)
