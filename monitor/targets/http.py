"""`http`: any method, URL, headers and body; expectations do the judging."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from monitor.domain.evidence import RequestSpec
from monitor.targets.base import TargetBase, Url

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
