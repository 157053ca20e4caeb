"""Pluggable LLM judge for scorers whose official pipeline calls an LLM (MathVista extraction,
DriveLM GPT score, MathVerse).

A `Judge` wraps either a local callable `(prompt, system) -> str` or any OpenAI-compatible
`/chat/completions` endpoint reached with plain `urllib`. Replies are cached on disk, one JSON file
per key, where the key hashes the judge id, system prompt, prompt and sampling settings, so a swapped
judge model never reuses another judge's answers. A failed call is counted and recorded, and the
caller gets None: no scorer silently falls back to another rule.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

LocalJudgeFn = Callable[[str, "str | None"], str]


class JudgeUnavailableError(RuntimeError):
    """A scorer needs an LLM judge for some items and none was given."""


@dataclass
class JudgeStats:
    calls: int = 0
    cache_hits: int = 0
    failures: int = 0
    failure_messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "calls": self.calls, "cache_hits": self.cache_hits, "failures": self.failures,
            "failure_messages": self.failure_messages[:20],
        }


class Judge:
    """Ask an LLM one prompt at a time; cache replies; count failures.

    Args:
        local: a callable `(prompt, system) -> reply`; used instead of an endpoint (tests, local models).
        endpoint: base URL of an OpenAI-compatible server, e.g. `https://api.openai.com/v1`.
        model: model id sent to the endpoint; also part of the cache key and of `judge_id`.
        api_key_env: environment variable holding the bearer token (may be unset for local servers).
        temperature, max_tokens: sampling settings sent with every request (part of the cache key).
        cache_dir: folder for the on-disk cache; None disables caching.
        retries: extra attempts after a failed HTTP call, with exponential back-off.
    """

    def __init__(
        self,
        local: LocalJudgeFn | None = None,
        *,
        endpoint: str | None = None,
        model: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.0,
        max_tokens: int = 512,
        cache_dir: str | Path | None = None,
        timeout_s: float = 60.0,
        retries: int = 2,
        name: str | None = None,
    ) -> None:
        if (local is None) == (endpoint is None):
            raise ValueError("Judge needs exactly one of `local` (a callable) or `endpoint` (an OpenAI-compatible URL)")
        if endpoint is not None and not model:
            raise ValueError("Judge with an endpoint needs `model` (the judge model id, recorded with the results)")
        if endpoint is not None and urllib.parse.urlsplit(endpoint).password:
            raise ValueError("Judge endpoint carries a password in its URL, which would be recorded with the results; "
                             "give the URL without it and the key through the environment variable named by api_key_env")
        self.local = local
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.model = model
        self.api_key_env = api_key_env
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.timeout_s = timeout_s
        self.retries = retries
        self.judge_id = name or model or getattr(local, "__name__", "local-callable")
        self.stats = JudgeStats()

    def cache_key(self, prompt: str, system: str | None) -> str:
        payload = json.dumps(
            [self.judge_id, system, prompt, self.temperature, self.max_tokens], ensure_ascii=False
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def __call__(self, prompt: str, system: str | None = None) -> str | None:
        """The judge's reply, or None after a counted failure."""
        key = self.cache_key(prompt, system)
        cached = self._read_cache(key)
        if cached is not None:
            self.stats.cache_hits += 1
            return cached
        self.stats.calls += 1
        try:
            reply = self.local(prompt, system) if self.local is not None else self._ask_endpoint(prompt, system)
            if not isinstance(reply, str):
                raise TypeError(f"judge returned {type(reply).__name__}, expected str")
        except Exception as error:  # any failure is counted and surfaced, never swallowed silently
            self.stats.failures += 1
            self.stats.failure_messages.append(f"{type(error).__name__}: {error}")
            return None
        self._write_cache(key, prompt, system, reply)
        return reply

    def report(self) -> dict:
        return {"judge_id": self.judge_id, "endpoint": self.endpoint, "temperature": self.temperature,
                **self.stats.as_dict()}

    def _ask_endpoint(self, prompt: str, system: str | None) -> str:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        body = json.dumps({
            "model": self.model, "messages": messages,
            "temperature": self.temperature, "max_tokens": self.max_tokens,
        }).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        token = os.environ.get(self.api_key_env)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(f"{self.endpoint}/chat/completions", data=body, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    payload = json.loads(response.read().decode("utf-8"))
                return payload["choices"][0]["message"]["content"]
            except (urllib.error.URLError, TimeoutError, KeyError, IndexError, json.JSONDecodeError) as error:
                last_error = error
                if attempt < self.retries:
                    time.sleep(2 ** attempt)
        raise RuntimeError(f"judge endpoint {self.endpoint} failed after {self.retries + 1} attempts: {last_error}")

    def _cache_path(self, key: str) -> Path | None:
        return self.cache_dir / f"{key}.json" if self.cache_dir else None

    def _read_cache(self, key: str) -> str | None:
        path = self._cache_path(key)
        if path is None or not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))["reply"]

    def _write_cache(self, key: str, prompt: str, system: str | None, reply: str) -> None:
        path = self._cache_path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(
            {"judge_id": self.judge_id, "system": system, "prompt": prompt, "reply": reply}, ensure_ascii=False
        ), encoding="utf-8")
        temporary.replace(path)  # atomic, so a crash never leaves a half-written cache entry
