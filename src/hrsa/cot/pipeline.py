"""Generation, judging, the dry-run estimate and the per-source statistics of the CoT traces.

Each function takes an endpoint's resolved settings (``hrsa.plan.Plan.cot_endpoint``: the
``cot_generation.generator``/``judge`` section with its model resolved and the source's token
limits applied) and works on one problem source:

* :func:`generate` - one request per problem (Prompts 1-2), thinking on; writes
  ``generated/{source}.jsonl``: the problem, the messages, ``reasoning`` (the server's reasoning
  field, or the ``<think>`` block), ``answer`` (the content after it), token counts, and whether
  the trace was ``skipped`` (``request_failed``: the request kept failing; ``no_answer``: no
  final answer, e.g. cut off by ``max_tokens``; ``cot_exceeded_max_tokens``: the reasoning
  exceeds the source's ``reasoning_budget``, as the authors' code marks it);
* :func:`judge` - one request per generated trace that has an answer (Prompts 3-4), thinking off,
  greedy; ``correctness_label`` is 1 iff the reply contains ``valid_if_contains`` ("1"), 0
  otherwise, and -1 for a trace not judged (skipped, or its judge request failed); writes
  ``judged/{source}.jsonl`` (the published traces' schema plus ours) and ``judged/{source}.json``
  (the statistics of Table 11 and the dataset card);
* :func:`estimate` - the requests a run would send, their tokens and cost, without sending any.

Nothing is sent for a request the cache holds; no server is started when nothing is left to
send. A run in which more than ``requests.max_failed_fraction`` of the requests failed stops with
:class:`RequestsFailed` (the answered ones stay in the cache; a rerun sends only the failed ones
again); below that the failures are kept in the output as skipped rows and counted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

from ..atomic import atomic_path
from ..errors import DataError, HRSAError
from .cache import FAILED, OK, RequestCache, request_key
from .client import (
    Endpoint,
    EndpointError,
    Request,
    RetryPolicy,
    make_client,
    pending,
    preflight,
    run_requests,
)
from .prompts import load_prompts, prompts_hash
from .serve import serving
from .sources import read_problems

log = logging.getLogger("hrsa.cot.pipeline")

#: the authors' token estimate of a reasoning trace (their ``len(text) // 1.3``, "~1.3
#: characters per token for Chinese/English mixed text"), which their 8,000-token budget counted
AUTHORS_CHARS_PER_TOKEN = 1.3
#: the rough characters per token of the dry-run's input estimate
CHARS_PER_TOKEN = 4.0
SKIP_FAILED, SKIP_NO_ANSWER, SKIP_BUDGET = "request_failed", "no_answer", "cot_exceeded_max_tokens"


class RequestsFailed(HRSAError):
    """More requests failed than ``requests.max_failed_fraction`` allows."""


# ----------------------------------------------------------------------------- requests


def request_params(endpoint: Mapping, problem_id: str) -> dict:
    """What a request carries besides the model and the messages: sampling, token limit,
    per-request seed, and ``extra_body`` (``top_k``, the thinking switch, ``extra_body``)."""
    req = endpoint["request"]
    params = {k: req[k] for k in ("temperature", "top_p", "max_tokens") if req.get(k) is not None}
    if req.get("seed") is not None:  # one reproducible seed per problem
        digest = hashlib.sha256(f"{req['seed']}/{problem_id}".encode()).hexdigest()
        params["seed"] = int(digest[:8], 16)
    extra = json.loads(json.dumps(req.get("extra_body") or {}))
    if req.get("top_k") is not None:
        extra["top_k"] = req["top_k"]
    switch, thinking = req.get("thinking_switch", "chat_template_kwargs"), bool(req["thinking"])
    if switch in ("chat_template_kwargs", "both"):
        extra.setdefault("chat_template_kwargs", {})["enable_thinking"] = thinking
    if switch in ("top_level", "both"):
        extra["enable_thinking"] = thinking
    if extra:
        params["extra_body"] = extra
    return params


def _requests(kind: str, endpoint: Mapping, items, render) -> list[Request]:
    out = []
    for item_id, values, meta in items:
        messages = render(**values)
        params = request_params(endpoint, item_id)
        key, prompt_hash = request_key(kind, item_id, endpoint["model_id"], params, messages)
        out.append(Request(key, item_id, kind, messages, params, prompt_hash, meta))
    return out


def generation_requests(problems, endpoint: Mapping, prompts) -> list[Request]:
    return _requests(
        "generate",
        endpoint,
        [(p["id"], {"problem": p["problem"]}, {"source": p["source"]}) for p in problems],
        prompts["generator"].messages,
    )


def judge_requests(rows, endpoint: Mapping, prompts) -> list[Request]:
    return _requests(
        "judge",
        endpoint,
        [
            (
                r["question_id"],
                {"problem": r["problem"], "answer": r["answer"]},
                {"source": r["source"]},
            )
            for r in rows
        ],
        prompts["judge"].messages,
    )


def api_key(endpoint: Mapping) -> str | None:
    """The API key from the environment variable ``api_key_env`` names (None: no key)."""
    name = endpoint.get("api_key_env")
    if not name:
        return None
    value = os.environ.get(name, "").strip()
    if not value:
        raise EndpointError(
            f"the {endpoint['role']} endpoint needs an API key in the environment variable "
            f"${name} (cot_generation.{endpoint['role']}.api_key_env), which is not set; "
            f"export {name}=... before running (the key never goes into a config file)"
        )
    return value


def policy_of(requests: Mapping) -> RetryPolicy:
    return RetryPolicy.from_settings(requests)


def send(
    reqs: list[Request],
    endpoint: Mapping,
    cache: RequestCache,
    requests: Mapping,
    *,
    server_log=None,
    desc: str,
) -> dict[str, dict]:
    """Send what the cache lacks (starting the server only then); the records by key."""
    policy = policy_of(requests)
    todo = pending(reqs, cache, policy.retry_failed)
    if todo:
        key = api_key(endpoint)
        with serving(endpoint, server_log) as served:
            ep = Endpoint(
                base_url=served.base_url,
                model=served.model,
                model_id=endpoint["model_id"],
                api_key=key,
                api_key_env=endpoint.get("api_key_env"),
            )
            client = make_client(ep, policy)
            preflight(client, ep, policy)
            run_requests(reqs, ep, cache, policy, desc=desc, client=client)
    else:
        log.info(
            "%s: all %d requests are in the cache %s; nothing to send", desc, len(reqs), cache.path
        )
    return {r.key: cache.get(r.key) for r in reqs}


def _check_failures(records: list[dict], requests: Mapping, what: str, cache_path) -> None:
    failed = [r for r in records if r["status"] == FAILED]
    if not failed:
        return
    shown = "; ".join(f"{r['id']}: {r['error']}" for r in failed[:5])
    log.warning("%s: %d of %d requests failed: %s", what, len(failed), len(records), shown)
    if len(failed) > float(requests["max_failed_fraction"]) * len(records):
        raise RequestsFailed(
            f"{what}: {len(failed)} of {len(records)} requests failed after their retries "
            f"(more than cot_generation.requests.max_failed_fraction = "
            f"{requests['max_failed_fraction']}); first: {shown}. The answered requests are "
            f"kept in {cache_path}: a rerun sends only the failed ones again"
        )


# ----------------------------------------------------------------------------- token counts


def authors_estimate(text: str) -> int:
    return int(len(text) // AUTHORS_CHARS_PER_TOKEN)


class TokenCounter:
    """Counts tokens with the tokenizer named by the endpoint's ``tokenizer`` (loaded once, at
    ``revision``); ``None`` without one."""

    def __init__(self, source: str | None, revision: str | None = None):
        self.source = source
        self.revision = revision
        self._tok = None

    def __call__(self, text: str) -> int | None:
        if not self.source:
            return None
        if self._tok is None:
            from transformers import AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(self.source, revision=self.revision)
        return len(self._tok(text, add_special_tokens=False)["input_ids"])


def reasoning_tokens(
    reply: Mapping, reasoning: str, counter: TokenCounter
) -> tuple[int | None, str | None]:
    """The reasoning's token count and where it came from: the server's usage
    (``completion_tokens_details.reasoning_tokens``), else the endpoint's tokenizer, else
    ``(None, None)``."""
    server = (reply.get("usage") or {}).get("reasoning_tokens")
    if server is not None:
        return int(server), "server"
    counted = counter(reasoning) if reasoning else 0
    return (counted, "tokenizer") if counted is not None else (None, None)


# ----------------------------------------------------------------------------- generation


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def generation_row(
    problem: Mapping, request: Request, record: Mapping, endpoint: Mapping, counter
) -> dict:
    """One output row (the published traces' fields, then ours) for a problem's request."""
    reply = record.get("reply") or {}
    reasoning = reply.get("reasoning") or ""
    answer = (reply.get("content") or "") if record["status"] == OK else ""
    tokens, tokens_source = reasoning_tokens(reply, reasoning, counter) if reasoning else (0, None)
    budget, measure = endpoint.get("reasoning_budget"), endpoint.get("budget_measure")
    counted = tokens if measure == "tokens" and tokens is not None else authors_estimate(reasoning)
    skip = None
    if record["status"] != OK:
        skip = SKIP_FAILED
    elif budget is not None and counted > int(budget):
        skip = SKIP_BUDGET
    elif not answer.strip():
        skip = SKIP_NO_ANSWER
    usage = reply.get("usage") or {}
    row = {
        # the authors' published fields (hrsa.data.probe.COT_FIELDS and optional ones)
        "timestamp": record.get("finished"),
        "dataset": problem["dataset"],
        "split": problem["split"],
        "question_id": problem["id"],
        "model": endpoint["model"],
        "problem": problem["problem"],
        "messages": request.messages,
        "reasoning": reasoning,
        "answer": answer,
        "cot_length_words": len(reasoning.split()),
        "cot_length_chars": len(reasoning),
        "cot_length_tokens": authors_estimate(reasoning),
        "skipped": skip is not None,
        # ours
        "source": problem["source"],
        "tier": problem["tier"],
        "config": problem.get("config"),
        "index": problem.get("index"),
        "reference_answer": problem.get("reference_answer"),
        "generator_model": endpoint["model_id"],
        "generator_serve": endpoint["serve"],
        "generation_settings": dict(request.params),
        "reasoning_budget": budget,
        "budget_measure": measure,
        "prompt_hash": request.prompt_hash,
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "reasoning_tokens": tokens,
        "reasoning_tokens_source": tokens_source,
        "finish_reason": reply.get("finish_reason"),
        "generation_status": record["status"],
        "generation_attempts": record.get("attempts"),
    }
    if skip is not None:
        row["skip_reason"] = skip
    if record["status"] != OK:
        row["error"] = record.get("error")
    return row


def generate(
    problems_path,
    out,
    *,
    endpoint: Mapping,
    requests: Mapping,
    prompts_path,
    cache_path,
    server_log=None,
) -> list[dict]:
    """Generate one source's traces (see the module docstring); returns the rows written."""
    problems = read_problems(problems_path)
    prompts = load_prompts(prompts_path)
    reqs = generation_requests(problems, endpoint, prompts)
    source = problems[0]["source"] if problems else "?"
    with RequestCache(cache_path) as cache:
        log_estimate(estimate(reqs, endpoint, cache, requests))
        records = send(
            reqs, endpoint, cache, requests, server_log=server_log, desc=f"generate {source}"
        )
    _check_failures(list(records.values()), requests, f"cot_generate {source}", cache_path)
    tokenizer = endpoint.get("tokenizer")
    revision = endpoint.get("revision") if tokenizer == endpoint.get("source") else None
    counter = TokenCounter(tokenizer, revision)
    rows = [
        generation_row(p, r, records[r.key], endpoint, counter)
        for p, r in zip(problems, reqs, strict=True)
    ]
    no_reasoning = sum(1 for r in rows if r["generation_status"] == OK and not r["reasoning"])
    if no_reasoning:
        log.warning(
            "%s: %d replies carry no reasoning: is thinking on (thinking_switch) and does the "
            "server separate it (vLLM --reasoning-parser, or <think> in the content)?",
            source,
            no_reasoning,
        )
    write_jsonl(rows, out)
    log.info(
        "%s: %d traces, skipped %s",
        source,
        len(rows),
        dict(Counter(r.get("skip_reason") for r in rows if r["skipped"])),
    )
    return rows


# ----------------------------------------------------------------------------- judging


def read_jsonl(path) -> list[dict]:
    from ..data.probe import iter_jsonl

    return [row for _, row in iter_jsonl(path)]


def write_jsonl(rows, path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def judge(
    generated_path,
    out,
    stats_out,
    *,
    endpoint: Mapping,
    requests: Mapping,
    prompts_path,
    cache_path,
    source_spec: Mapping | None = None,
    server_log=None,
) -> list[dict]:
    """Judge one source's generated traces; writes the judged rows and their statistics."""
    rows = read_jsonl(generated_path)
    prompts = load_prompts(prompts_path)
    to_judge = [r for r in rows if not r["skipped"]]
    reqs = judge_requests(to_judge, endpoint, prompts)
    source = rows[0]["source"] if rows else "?"
    with RequestCache(cache_path) as cache:
        log_estimate(estimate(reqs, endpoint, cache, requests))
        records = (
            send(reqs, endpoint, cache, requests, server_log=server_log, desc=f"judge {source}")
            if reqs
            else {}
        )
    _check_failures(list(records.values()), requests, f"cot_judge {source}", cache_path)
    marker = str(endpoint["valid_if_contains"])
    by_id = {
        r["question_id"]: (req, records[req.key]) for r, req in zip(to_judge, reqs, strict=True)
    }
    judged = []
    for row in rows:
        row = dict(row)
        row["evaluator_model"] = endpoint["model"]
        row["judge_model"] = endpoint["model_id"]
        row["judge_serve"] = endpoint["serve"]
        if row["question_id"] not in by_id:
            row["correctness_label"] = -1
            row["judge_status"] = "not_judged"
            judged.append(row)
            continue
        req, record = by_id[row["question_id"]]
        reply = record.get("reply") or {}
        usage = reply.get("usage") or {}
        row.update(
            {
                "judge_settings": dict(req.params),
                "judge_prompt_hash": req.prompt_hash,
                "judge_status": record["status"],
                "judge_attempts": record.get("attempts"),
                "judge_timestamp": record.get("finished"),
                "judge_prompt_tokens": usage.get("prompt_tokens"),
                "judge_completion_tokens": usage.get("completion_tokens"),
            }
        )
        if record["status"] == OK:
            text = (reply.get("content") or "").strip()
            row["judge_reply"] = text
            row["correctness_label"] = 1 if marker in text else 0
        else:
            row["judge_reply"] = None
            row["judge_error"] = record.get("error")
            row["correctness_label"] = -1
        judged.append(row)
    check_rows(judged, out)
    write_jsonl(judged, out)
    stats = source_stats(judged, endpoint, source_spec or {}, prompts_path=prompts_path)
    with atomic_path(stats_out) as tmp:
        Path(tmp).write_text(json.dumps(stats, indent=2, ensure_ascii=False))
    log.info(
        "%s: %d of %d traces judged correct (yield %.1f%%)",
        source,
        stats["valid"],
        stats["total"],
        100 * (stats["yield"] or 0),
    )
    return judged


# ----------------------------------------------------------------------------- statistics


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _token_column(rows) -> tuple[str, str]:
    """The reasoning-token column Table 11 uses: the counted tokens when every trace has them,
    else the authors' estimate."""
    with_text = [r for r in rows if r.get("reasoning")]
    if with_text and all(r.get("reasoning_tokens") is not None for r in with_text):
        sources = {r["reasoning_tokens_source"] for r in with_text}
        return "reasoning_tokens", "/".join(sorted(s for s in sources if s))
    return "cot_length_tokens", "authors_estimate"


def _span(values) -> list:
    values = sorted(v for v in values if v)
    return [values[0], values[-1]] if values else [None, None]


def source_stats(
    rows: list[dict], judge_endpoint: Mapping, spec: Mapping, *, prompts_path=None
) -> dict:
    """Table 11's numbers and the dataset card's facts for one source's judged rows."""
    from .. import __version__

    first = rows[0] if rows else {}
    valid = [r for r in rows if r["correctness_label"] == 1]
    column, measured = _token_column(rows)
    prompts = None
    if prompts_path is not None and Path(prompts_path).is_file():
        prompts = {
            "file": str(prompts_path),
            "sha256": hashlib.sha256(Path(prompts_path).read_bytes()).hexdigest(),
            "templates_sha256": prompts_hash(load_prompts(prompts_path)),
        }
    skipped = Counter(r.get("skip_reason") for r in rows if r["skipped"])
    judged = [r for r in rows if r.get("judge_status") == OK]
    return {
        "source": first.get("source", spec.get("key")),
        "label": spec.get("label") or first.get("source"),
        "tier": first.get("tier", spec.get("tier")),
        "dataset": first.get("dataset"),
        "config": first.get("config"),
        "split": first.get("split"),
        "selection": {k: spec.get(k) for k in ("filters", "sample", "seed", "limit") if k in spec},
        "total": len(rows),
        "valid": len(valid),
        "invalid": sum(r["correctness_label"] == 0 for r in rows),
        "not_judged": sum(r["correctness_label"] == -1 for r in rows),
        "skipped": dict(sorted(skipped.items())),
        "generation_failed": sum(r.get("generation_status") == FAILED for r in rows),
        "judge_failed": sum(r.get("judge_status") == FAILED for r in rows),
        "yield": len(valid) / len(rows) if rows else None,
        "mean_reasoning_tokens": _mean(r.get(column) for r in valid),
        "mean_reasoning_tokens_all": _mean(r.get(column) for r in rows if r.get("reasoning")),
        "reasoning_tokens_measure": measured,
        "generator": {
            "model": first.get("model"),
            "model_id": first.get("generator_model"),
            "serve": first.get("generator_serve"),
            "settings": first.get("generation_settings"),
            "reasoning_budget": first.get("reasoning_budget"),
            "budget_measure": first.get("budget_measure"),
        },
        "judge": {
            "model": judge_endpoint["model"],
            "model_id": judge_endpoint["model_id"],
            "serve": judge_endpoint["serve"],
            "settings": judged[0].get("judge_settings") if judged else None,
            "valid_if_contains": judge_endpoint["valid_if_contains"],
        },
        "prompts": prompts,
        "generated": _span(r.get("timestamp") for r in rows),
        "judged": _span(r.get("judge_timestamp") for r in rows),
        "paper": {
            k: spec[f"paper_{k}"] for k in ("total", "valid") if spec.get(f"paper_{k}") is not None
        },
        "written": _now(),
        "hrsa_version": __version__,
    }


# ----------------------------------------------------------------------------- dry run


def estimate(
    reqs: list[Request], endpoint: Mapping, cache: RequestCache | Mapping, requests: Mapping
) -> dict:
    """What sending ``reqs`` would cost: requests (in the cache, to send), input tokens (about
    4 characters per token of the messages), the output-token ceiling (``max_tokens`` per
    request; None when unlimited) and, with ``price_input``/``price_output`` (USD per million
    tokens), the cost ceiling."""
    retry_failed = bool(requests.get("retry_failed", True))
    records = cache.records if isinstance(cache, RequestCache) else cache
    todo = [
        r
        for r in reqs
        if not (r.key in records and (records[r.key]["status"] == OK or not retry_failed))
    ]
    chars = sum(len(m["content"]) for r in todo for m in r.messages)
    input_tokens = int(chars / CHARS_PER_TOKEN)
    ceilings = [r.params.get("max_tokens") for r in todo]
    output_max = None if any(c is None for c in ceilings) else int(sum(ceilings))
    price_in, price_out = endpoint.get("price_input"), endpoint.get("price_output")
    cost = None
    if price_in is not None and price_out is not None and output_max is not None:
        cost = (input_tokens * float(price_in) + output_max * float(price_out)) / 1e6
    return {
        "role": endpoint["role"],
        "model": endpoint["model"],
        "serve": endpoint["serve"],
        "requests": len(reqs),
        "cached": len(reqs) - len(todo),
        "to_send": len(todo),
        "input_tokens_estimate": input_tokens,
        "output_tokens_max": output_max,
        "cost_usd_max": cost,
    }


def format_estimate(est: Mapping) -> str:
    out = "unlimited" if est["output_tokens_max"] is None else f"<= {est['output_tokens_max']:,}"
    cost = (
        "no price configured (price_input, price_output)"
        if est["cost_usd_max"] is None
        else f"<= ${est['cost_usd_max']:,.2f}"
    )
    return (
        f"{est['role']} {est['model']} ({est['serve']}): {est['to_send']} of {est['requests']} "
        f"requests to send ({est['cached']} in the cache); input ~{est['input_tokens_estimate']:,} "
        f"tokens, output {out} tokens; cost {cost}"
    )


def log_estimate(est: Mapping) -> None:
    log.info("before sending: %s", format_estimate(est))


def dry_run(
    sources: Mapping[str, Mapping],
    *,
    generator: Mapping[str, Mapping],
    judge: Mapping,
    requests: Mapping,
    prompts_path,
    cache_paths: Mapping[str, Mapping[str, str]],
) -> dict:
    """The estimate of every source (``{source: problems file}``) without sending anything.
    The judge's is a ceiling: one request per problem, with an empty answer (the answers are
    not known before generation). ``generator`` holds each source's generator settings."""
    from .cache import read_cache

    prompts = load_prompts(prompts_path)
    report = {"sources": {}, "total": {}}
    for source, problems_path in sources.items():
        problems = read_problems(problems_path)
        gen = generation_requests(problems, generator[source], prompts)
        fake = [
            {"question_id": p["id"], "problem": p["problem"], "answer": "", "source": source}
            for p in problems
        ]
        jud = judge_requests(fake, judge, prompts)
        report["sources"][source] = {
            "generate": estimate(
                gen, generator[source], read_cache(cache_paths[source]["generate"])[0], requests
            ),
            "judge": estimate(jud, judge, read_cache(cache_paths[source]["judge"])[0], requests),
        }
    for step in ("generate", "judge"):
        ests = [s[step] for s in report["sources"].values()]
        outs = [e["output_tokens_max"] for e in ests]
        costs = [e["cost_usd_max"] for e in ests]
        report["total"][step] = {
            "requests": sum(e["requests"] for e in ests),
            "to_send": sum(e["to_send"] for e in ests),
            "input_tokens_estimate": sum(e["input_tokens_estimate"] for e in ests),
            "output_tokens_max": None if None in outs else sum(outs),
            "cost_usd_max": None if None in costs or not costs else sum(costs),
        }
    return report


def format_dry_run(report: Mapping) -> str:
    lines = ["CoT generation dry run (nothing sent):"]
    for source, steps in report["sources"].items():
        for step in ("generate", "judge"):
            lines.append(f"  {source} {step}: {format_estimate(steps[step])}")
    for step, t in report["total"].items():
        out = "unlimited" if t["output_tokens_max"] is None else f"<= {t['output_tokens_max']:,}"
        cost = "unknown" if t["cost_usd_max"] is None else f"<= ${t['cost_usd_max']:,.2f}"
        lines.append(
            f"  total {step}: {t['to_send']} of {t['requests']} requests to send, input "
            f"~{t['input_tokens_estimate']:,} tokens, output {out} tokens, cost {cost}"
        )
    lines.append("  (judge: a ceiling - one request per problem, answers not yet known)")
    return "\n".join(lines)


def check_rows(rows, path) -> None:
    """Every judged row has the published traces' fields (the probe loader relies on it)."""
    from ..data.probe import COT_FIELDS, GENERATED_COT_FIELDS

    for i, row in enumerate(rows):
        missing = [f for f in (*COT_FIELDS, *GENERATED_COT_FIELDS) if f not in row]
        if missing:
            raise DataError(f"{path}: row {i} lacks {missing}")


def dry_run_of(settings: Mapping, *, requests: Mapping, prompts_path) -> dict:
    """:func:`dry_run` of ``settings`` (``hrsa.plan.Plan.cot_estimate_settings``)."""
    return dry_run(
        settings["problems"],
        generator=settings["generator"],
        judge=settings["judge"],
        requests=requests,
        prompts_path=prompts_path,
        cache_paths=settings["caches"],
    )


def write_dry_run(out, *, settings: Mapping, requests: Mapping, prompts_path) -> dict:
    """:func:`dry_run_of` ``settings``, printed and written as JSON to ``out``."""
    import sys

    report = dry_run_of(settings, requests=requests, prompts_path=prompts_path)
    text = format_dry_run(report)
    log.info("%s", text)
    print(text, file=sys.stdout, flush=True)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2))
    return report
