"""Chat-completion requests to an OpenAI-compatible server: bounded concurrency, retries, a cache.

:func:`run_requests` sends every :class:`Request` whose key the cache lacks (or holds as failed,
with ``retry_failed``) through the official ``openai`` client, at most ``concurrency`` at a time,
and appends each finished one to the :class:`~hrsa.cot.cache.RequestCache` as it finishes.

What happens to a request that does not succeed at once:

* 429 (rate limit), 5xx, 408/409, timeouts, connection errors and malformed replies (not JSON, no
  ``choices``, no message) are retried with exponential backoff (``backoff_initial`` doubling up
  to ``backoff_max``, with jitter; a ``Retry-After`` header is honoured) up to ``max_attempts``
  attempts; a request that still fails is recorded in the cache as ``failed`` with its last
  error and the number of attempts, and reported - never dropped;
* another 4xx (400 bad request, 404, 422: the request itself is wrong) is recorded as failed at
  once (retrying cannot help);
* 401/403 (the API key is missing or invalid) stops the run with :class:`EndpointError`: every
  other request would fail the same way. Requests already finished stay in the cache.

:func:`preflight` checks the server before anything is sent (``GET /models``): an unreachable
server or a rejected key is a clear :class:`EndpointError` up front.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..errors import HRSAError
from .cache import FAILED, OK, RequestCache

log = logging.getLogger("hrsa.cot.client")
for _name in ("httpx", "httpx2"):  # one INFO line per request would drown the job's log
    logging.getLogger(_name).setLevel(logging.WARNING)

#: fields a server may put a reasoning trace in, besides ``content`` (vLLM: ``reasoning`` or
#: ``reasoning_content``; transformers serve, DashScope, DeepSeek: ``reasoning_content``)
REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")
THINK = re.compile(r"^\s*(?:<think>)?(?P<reasoning>.*?)</think>\s*(?P<answer>.*)$", re.DOTALL)


class EndpointError(HRSAError):
    """The server cannot be used at all: unreachable, or it rejects the API key."""


class MalformedReply(HRSAError):
    """A reply that is not a chat completion (retried, then recorded as a failure)."""


@dataclass(frozen=True)
class Endpoint:
    """Where requests go and what they carry besides the messages.

    ``model`` is the name sent in each request; ``model_id`` the identity recorded in rows and
    cache keys (a served model's source and revision); ``params`` the request's settings
    (``temperature``, ``top_p``, ``max_tokens``, ``seed``, ``extra_body``...); ``api_key_env``
    only names where the key came from (errors name it, never the key)."""

    base_url: str
    model: str
    model_id: str
    params: Mapping = field(default_factory=dict)
    api_key: str | None = None
    api_key_env: str | None = None


@dataclass(frozen=True)
class RetryPolicy:
    concurrency: int = 8
    max_attempts: int = 6
    backoff_initial: float = 2.0
    backoff_max: float = 120.0
    timeout: float = 1800.0
    retry_failed: bool = True

    @classmethod
    def from_settings(cls, settings: Mapping) -> RetryPolicy:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in settings.items() if k in names})


@dataclass
class Request:
    """One chat completion to send: its cache key, problem id and messages (``meta`` is copied
    into the cache record)."""

    key: str
    id: str
    kind: str
    messages: list
    params: Mapping
    prompt_hash: str
    meta: Mapping = field(default_factory=dict)


def make_client(endpoint: Endpoint, policy: RetryPolicy):
    """The official client, with its own retries off (:func:`call` retries and counts)."""
    import openai

    return openai.OpenAI(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key or "EMPTY",
        max_retries=0,
        timeout=policy.timeout,
    )


def _key_text(endpoint: Endpoint) -> str:
    if endpoint.api_key_env:
        return f"the API key from ${endpoint.api_key_env}"
    return "no API key (cot_generation.<role>.api_key_env is null)"


def _status(exc) -> int | None:
    return getattr(exc, "status_code", None)


def _retry_after(exc) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("retry-after") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def classify(exc: BaseException) -> str:
    """``retry``, ``fail`` (record as failed now) or ``fatal`` (stop the run) for an error."""
    import openai

    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return "fatal"
    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError | MalformedReply):
        return "retry"
    if isinstance(exc, ValueError):  # a body that is not JSON (json.JSONDecodeError)
        return "retry"
    status = _status(exc)
    if status is not None:
        return "retry" if status in (408, 409, 429) or status >= 500 else "fail"
    if isinstance(exc, openai.APIError):
        return "retry"
    return "fail"


def describe_error(exc: BaseException) -> str:
    status = _status(exc)
    text = str(exc).strip().replace("\n", " ")
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "") + f": {text}"


def _extra(obj) -> dict:
    extra = getattr(obj, "model_extra", None)
    return dict(extra) if isinstance(extra, dict) else {}


def parse_reply(response) -> dict:
    """The parts of a chat completion the pipeline keeps; :class:`MalformedReply` when it is
    not one. The reasoning comes from the server's reasoning field, or from a ``<think>...
    </think>`` block at the start of the content (a server without a reasoning parser)."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        shown = repr(response)
        raise MalformedReply(
            "the reply has no choices: " + (shown if len(shown) <= 200 else shown[:197] + "...")
        )
    choice = choices[0]
    message = getattr(choice, "message", None)
    content = getattr(message, "content", None) if message is not None else None
    if (
        message is None
        or isinstance(message, str)
        or not (content is None or isinstance(content, str))
    ):
        raise MalformedReply(f"the reply's first choice has no chat message: {choice!r}"[:300])
    extra = _extra(message)
    reasoning = next(
        (extra[f] for f in REASONING_FIELDS if isinstance(extra.get(f), str) and extra[f]), None
    )
    content = content or ""
    if reasoning is None and "</think>" in content:
        match = THINK.match(content)
        if match:
            reasoning, content = match["reasoning"].strip("\n"), match["answer"]
    usage = getattr(response, "usage", None)
    details = getattr(usage, "completion_tokens_details", None)
    return {
        "content": content,
        "reasoning": reasoning,
        "finish_reason": getattr(choice, "finish_reason", None),
        "model": getattr(response, "model", None),
        "response_id": getattr(response, "id", None),
        "usage": {
            "prompt_tokens": getattr(usage, "prompt_tokens", None),
            "completion_tokens": getattr(usage, "completion_tokens", None),
            "reasoning_tokens": getattr(details, "reasoning_tokens", None),
        },
    }


def _backoff(policy: RetryPolicy, attempt: int, exc: BaseException, rng: random.Random) -> float:
    wait_s = min(policy.backoff_max, policy.backoff_initial * 2 ** (attempt - 1))
    wait_s *= 0.5 + rng.random() / 2  # jitter: requests that failed together do not retry together
    after = _retry_after(exc)
    return min(policy.backoff_max, max(wait_s, after)) if after is not None else wait_s


def call(
    client,
    endpoint: Endpoint,
    request: Request,
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Send one request with retries; the cache record (``status`` ok or failed). Raises
    :class:`EndpointError` on 401/403."""
    params = dict(request.params)
    extra_body = params.pop("extra_body", None) or None
    rng = random.Random(request.key)
    started = time.time()
    errors: list[str] = []
    for attempt in range(1, policy.max_attempts + 1):
        try:
            response = client.chat.completions.create(
                model=endpoint.model, messages=request.messages, extra_body=extra_body, **params
            )
            reply = parse_reply(response)
        except Exception as exc:  # every failure is classified; none escapes unrecorded
            kind = classify(exc)
            errors.append(describe_error(exc))
            if kind == "fatal":
                raise EndpointError(
                    f"{endpoint.base_url} rejected {_key_text(endpoint)} ({describe_error(exc)}); "
                    "set the variable to a valid key. Finished requests are kept in the cache"
                ) from exc
            if kind == "retry" and attempt < policy.max_attempts:
                pause = _backoff(policy, attempt, exc, rng)
                log.info(
                    "%s %s: attempt %d failed (%s); retrying in %.1f s",
                    request.kind,
                    request.id,
                    attempt,
                    errors[-1],
                    pause,
                )
                sleep(pause)
                continue
            return _record(
                request, endpoint, FAILED, started, attempt, error=errors[-1], errors=errors
            )
        return _record(request, endpoint, OK, started, attempt, reply=reply, errors=errors)
    raise AssertionError("unreachable")  # pragma: no cover


def _record(request, endpoint, status, started, attempts, *, reply=None, error=None, errors=()):
    return {
        "key": request.key,
        "kind": request.kind,
        "id": request.id,
        "model": endpoint.model_id,
        "settings": dict(request.params),
        "prompt_hash": request.prompt_hash,
        "status": status,
        "reply": reply,
        "error": error,
        "errors": list(errors),
        "attempts": attempts,
        "finished": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "elapsed_s": round(time.time() - started, 3),
        **dict(request.meta),
    }


def preflight(client, endpoint: Endpoint, policy: RetryPolicy, *, sleep=time.sleep) -> list[str]:
    """``GET /models`` before anything is sent: the model names the server lists. An unreachable
    server (after ``max_attempts`` tries with backoff) or a rejected key is an
    :class:`EndpointError`; a server without ``/models`` is only logged."""
    import openai

    rng = random.Random(endpoint.base_url)
    for attempt in range(1, policy.max_attempts + 1):
        try:
            names = [m.id for m in client.models.list()]
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise EndpointError(
                f"{endpoint.base_url} rejected {_key_text(endpoint)} ({describe_error(exc)})"
            ) from exc
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            if attempt == policy.max_attempts:
                raise EndpointError(
                    f"cannot reach the OpenAI-compatible server at {endpoint.base_url} after "
                    f"{attempt} attempts ({describe_error(exc)}); is it running, and is "
                    "base_url right (it ends in /v1 for vLLM and transformers serve)?"
                ) from exc
            sleep(_backoff(policy, attempt, exc, rng))
            continue
        except Exception as exc:  # 404 (no /models), 5xx, malformed: the requests will tell
            log.warning("%s: GET /models failed (%s); going on", endpoint.base_url, exc)
            return []
        if names and endpoint.model not in names:
            log.warning(
                "%s lists the models %s, not %r; the requests may fail",
                endpoint.base_url,
                names[:10],
                endpoint.model,
            )
        return names
    return []  # pragma: no cover


def pending(requests: Iterable[Request], cache: RequestCache, retry_failed: bool) -> list[Request]:
    """The requests a run still has to send (not answered in the cache; failed ones again with
    ``retry_failed``); a key listed twice is sent once."""
    out, seen = [], set()
    for r in requests:
        record = cache.get(r.key)
        done = record is not None and (record["status"] == OK or not retry_failed)
        if not done and r.key not in seen:
            seen.add(r.key)
            out.append(r)
    return out


def run_requests(
    requests: list[Request],
    endpoint: Endpoint,
    cache: RequestCache,
    policy: RetryPolicy,
    *,
    desc: str = "requests",
    client=None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, dict]:
    """Send what the cache lacks, ``policy.concurrency`` at a time, appending each finished
    request to ``cache``; returns ``{key: record}`` for every request. A progress bar (rate,
    ETA) goes to stderr (the job's log)."""
    from tqdm.auto import tqdm

    todo = pending(requests, cache, policy.retry_failed)
    log.info(
        "%s: %d requests, %d already in the cache %s, %d to send",
        desc,
        len(requests),
        len(requests) - len(todo),
        cache.path,
        len(todo),
    )
    if todo:
        client = client or make_client(endpoint, policy)
        stop = threading.Event()
        fatal: list[BaseException] = []

        def work(request: Request):
            if stop.is_set():
                return None
            return call(client, endpoint, request, policy, sleep=sleep)

        bar = tqdm(total=len(todo), desc=desc, unit="req", mininterval=2, smoothing=0.1)
        failed = 0
        with ThreadPoolExecutor(max_workers=max(1, policy.concurrency)) as pool:
            queue = iter(todo)
            running = set()
            while True:
                while not stop.is_set() and len(running) < max(1, policy.concurrency):
                    request = next(queue, None)
                    if request is None:
                        break
                    running.add(pool.submit(work, request))
                if not running:
                    break
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        record = future.result()
                    except EndpointError as exc:
                        fatal.append(exc)
                        stop.set()
                        continue
                    if record is None:
                        continue
                    cache.append(record)
                    failed += record["status"] == FAILED
                    bar.update(1)
                    bar.set_postfix(failed=failed, refresh=False)
        bar.close()
        if fatal:
            raise fatal[0]
    return {r.key: cache.get(r.key) for r in requests}
