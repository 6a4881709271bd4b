"""The CoT generation's client, cache, prompts, sources and pipeline against a real HTTP server.

The server is a small OpenAI-compatible ``http.server`` running in this process on localhost
(no mock of the client): it speaks ``/v1/models`` and ``/v1/chat/completions``, checks the
bearer key, counts every request it receives, and can be told to answer the next requests with
429s (with ``Retry-After``), 5xx, malformed bodies, 400 or 401.
"""

from __future__ import annotations

import json
import random
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from hrsa.config import validate_config
from hrsa.cot import cache as cache_mod
from hrsa.cot import pipeline
from hrsa.cot.cache import RequestCache, read_cache, request_key
from hrsa.cot.client import (
    Endpoint,
    EndpointError,
    Request,
    RetryPolicy,
    make_client,
    parse_reply,
    preflight,
    run_requests,
)
from hrsa.cot.prompts import load_prompts
from hrsa.cot.sources import select_problems, write_problems
from hrsa.data.probe import load_probe_dataset
from hrsa.errors import ConfigError, DataError, LockError
from hrsa.plan import Plan
from hrsa.report.cot import cot_card, table11

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "config" / "cot_prompts.yaml"
KEY = "sk-test-123"


class FakeServer:
    """An OpenAI-compatible server on localhost (see the module docstring)."""

    def __init__(self, key: str | None = KEY):
        self.key = key
        self.script: deque = deque()  # (status, body bytes or dict, headers) for the next POSTs
        self.posts: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body, headers=None, ctype="application/json"):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                if server.key is None:
                    return True
                if self.headers.get("authorization") == f"Bearer {server.key}":
                    return True
                self._send(
                    401, {"error": {"message": "Incorrect API key", "code": "invalid_api_key"}}
                )
                return False

            def do_GET(self):
                if not self._authorised():
                    return
                self._send(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with server.lock:
                    server.posts.append(body)
                    action = server.script.popleft() if server.script else None
                if not self._authorised():
                    return
                if action is not None:
                    status, payload, headers = action
                    ctype = "text/html" if isinstance(payload, bytes) else "application/json"
                    return self._send(status, payload, headers, ctype)
                self._send(200, server.reply(body))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @staticmethod
    def reply(body: dict) -> dict:
        """A generator reply (reasoning + answer) or a judge reply ('1' unless the answer
        contains 13)."""
        system = body["messages"][0]["content"]
        if "evaluator" in system:
            answer = body["messages"][1]["content"]
            message = {"role": "assistant", "content": "0" if "13" in answer else "1"}
            usage = {"prompt_tokens": 50, "completion_tokens": 1, "total_tokens": 51}
        else:
            problem = body["messages"][1]["content"].rsplit("\n", 1)[-1]
            message = {
                "role": "assistant",
                "reasoning_content": f"Let me think about {problem} step by step.",
                "content": f"The answer is {len(problem)}.",
            }
            usage = {
                "prompt_tokens": 40,
                "completion_tokens": 30,
                "total_tokens": 70,
                "completion_tokens_details": {"reasoning_tokens": 20},
            }
        return {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": usage,
        }

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with FakeServer() as s:
        yield s


FAST = RetryPolicy(
    concurrency=2, max_attempts=3, backoff_initial=0.01, backoff_max=0.05, timeout=10
)


def endpoint(url: str, key: str | None = KEY) -> Endpoint:
    return Endpoint(base_url=url, model="m", model_id="m", api_key=key, api_key_env="TEST_KEY")


def make_requests(n: int, kind: str = "generate") -> list[Request]:
    out = []
    for i in range(n):
        messages = [{"role": "system", "content": "s"}, {"role": "user", "content": f"p{i}"}]
        params = {"temperature": 0.6, "max_tokens": 50}
        key, h = request_key(kind, f"test_{i}", "m", params, messages)
        out.append(Request(key, f"test_{i}", kind, messages, params, h, {"source": "src"}))
    return out


# ------------------------------------------------------------------------------- prompts


def test_the_prompts_file_holds_appendix_cs_prompts_with_the_authors_whitespace():
    prompts = load_prompts(PROMPTS)
    gen = prompts["generator"].messages(problem="What is $\\frac{1}{2}$ of {x}?")
    assert gen[0] == {
        "role": "system",
        "content": "You are a helpful and rigorous math reasoning assistant.",
    }
    assert gen[1]["content"] == (
        "You are an expert competition math solver. Read the problem carefully and solve it "
        "step by step.\n\n Problem:\nWhat is $\\frac{1}{2}$ of {x}?"
    )
    judge = prompts["judge"].messages(problem="P", answer="A")
    assert judge[0]["content"] == (
        "You are a precise math answer evaluator. Respond only with 0 or 1."
    )
    assert "\n\nProblem:\nP\n\nAnswer:\nA\n\n" in judge[1]["content"]
    assert judge[1]["content"].endswith(
        'Respond with ONLY "1" if the answer is correct, or "0" '
        "if it is incorrect. Do not provide any explanation."
    )


def test_a_bad_prompts_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "generator": {"system": "s", "user": "no placeholder"},
                "judge": {"system": "s", "user": "{problem} {answer}"},
            }
        )
    )
    with pytest.raises(DataError, match="generator.user lacks the placeholders"):
        load_prompts(bad)
    bad.write_text(
        yaml.safe_dump(
            {
                "generator": {"system": "s", "user": "{problem} {other}"},
                "judge": {"system": "s", "user": "{problem} {answer}"},
            }
        )
    )
    with pytest.raises(DataError, match="unknown placeholders"):
        load_prompts(bad)
    with pytest.raises(DataError, match="does not exist"):
        load_prompts(tmp_path / "missing.yaml")


# ------------------------------------------------------------------------------- sources


def test_problem_selection_is_the_authors_filter_index_and_seeded_sample():
    rows = [{"question": f"q{i}", "source": "a" if i % 2 else "b", "ans": i} for i in range(40)]
    spec = {
        "tier": "easy",
        "problem_field": "question",
        "answer_field": "ans",
        "split": "train",
        "filters": {"source": "a"},
        "sample": 5,
        "seed": 42,
    }
    problems = select_problems("s", spec, rows, "hub/x")
    kept = [r for r in rows if r["source"] == "a"]
    drawn = random.Random(42).sample(range(len(kept)), 5)  # random.seed(42); random.sample(...)
    assert [p["id"] for p in problems] == [f"train_{i}" for i in drawn]
    assert [p["problem"] for p in problems] == [kept[i]["question"] for i in drawn]
    assert problems[0]["reference_answer"] == str(kept[drawn[0]]["ans"])
    assert {p["tier"] for p in problems} == {"easy"}
    limited = select_problems("s", {**spec, "sample": None, "limit": 3}, rows, "hub/x")
    assert [p["id"] for p in limited] == ["train_0", "train_1", "train_2"]
    with pytest.raises(DataError, match="no field 'problem'"):
        select_problems("s", {"tier": "easy"}, rows, "hub/x")
    with pytest.raises(DataError, match="needs at least as many rows"):
        select_problems("s", {**spec, "sample": 99}, rows, "hub/x")


# ------------------------------------------------------------------------------- cache


def test_the_cache_appends_durably_ignores_a_torn_last_line_and_locks(tmp_path):
    path = tmp_path / "c.jsonl"
    with RequestCache(path) as cache:
        for i in range(3):
            cache.append({"key": f"k{i}", "status": "ok", "n": i})
        with pytest.raises(LockError, match="being written by"):
            RequestCache(path).open()  # a second writer fails at once
    with open(path, "ab") as fh:  # a write cut short by a kill
        fh.write(b'{"key": "k3", "sta')
    records, torn = read_cache(path)
    assert sorted(records) == ["k0", "k1", "k2"] and torn == len(b'{"key": "k3", "sta')
    with RequestCache(path) as cache:  # reopening cuts the torn tail off, then appends cleanly
        cache.append({"key": "k3", "status": "ok", "n": 3})
        cache.append({"key": "k0", "status": "failed", "n": 0})  # the last record of a key wins
    records, torn = read_cache(path)
    assert torn == 0 and sorted(records) == ["k0", "k1", "k2", "k3"]
    assert records["k0"]["status"] == "failed"
    assert len(path.read_text().splitlines()) == 5
    path.write_text(path.read_text() + "not json\n" + '{"key": "k9"}\n')
    with pytest.raises(DataError, match=r"c\.jsonl:6: not a cache record"):
        read_cache(path)


def test_the_key_is_what_determines_the_reply():
    messages = [{"role": "user", "content": "x"}]
    base, prompt_hash = request_key("generate", "test_1", "m", {"temperature": 0.6}, messages)
    assert prompt_hash == cache_mod.digest(messages)
    assert base == request_key("generate", "test_1", "m", {"temperature": 0.6}, messages)[0]
    for changed in (
        request_key("judge", "test_1", "m", {"temperature": 0.6}, messages),
        request_key("generate", "test_2", "m", {"temperature": 0.6}, messages),
        request_key("generate", "test_1", "m2", {"temperature": 0.6}, messages),
        request_key("generate", "test_1", "m", {"temperature": 0.7}, messages),
        request_key(
            "generate", "test_1", "m", {"temperature": 0.6}, [{"role": "user", "content": "y"}]
        ),
    ):
        assert changed[0] != base


# ------------------------------------------------------------------------------- requests


def test_requests_are_sent_once_and_a_rerun_sends_none(server, tmp_path):
    reqs = make_requests(6)
    with RequestCache(tmp_path / "c.jsonl") as cache:
        records = run_requests(reqs, endpoint(server.url), cache, FAST)
    assert len(server.posts) == 6
    assert all(r["status"] == "ok" and r["attempts"] == 1 for r in records.values())
    assert records[reqs[0].key]["reply"]["reasoning"].startswith("Let me think")
    assert records[reqs[0].key]["reply"]["usage"]["reasoning_tokens"] == 20
    with RequestCache(tmp_path / "c.jsonl") as cache:
        run_requests(reqs + make_requests(8)[6:], endpoint(server.url), cache, FAST)
    assert len(server.posts) == 8  # only the two new ones


def test_429_and_5xx_are_retried_with_backoff_honouring_retry_after(server, tmp_path):
    server.script.extend(
        [
            (429, {"error": {"message": "slow down"}}, {"retry-after": "0.04"}),
            (503, {"error": {"message": "overloaded"}}, {}),
        ]
    )
    pauses = []
    policy = RetryPolicy(concurrency=1, max_attempts=4, backoff_initial=0.01, backoff_max=1.0)
    with RequestCache(tmp_path / "c.jsonl") as cache:
        records = run_requests(
            make_requests(1), endpoint(server.url), cache, policy, sleep=pauses.append
        )
    (record,) = records.values()
    assert record["status"] == "ok" and record["attempts"] == 3
    assert "RateLimitError (HTTP 429)" in record["errors"][0]
    assert "HTTP 503" in record["errors"][1]
    assert pauses[0] >= 0.04  # Retry-After
    assert len(server.posts) == 3


def test_a_request_that_keeps_failing_is_recorded_and_reported_never_dropped(server, tmp_path):
    server.script.extend([(500, {"error": {"message": "boom"}}, {})] * 3)
    policy = RetryPolicy(concurrency=1, max_attempts=3, backoff_initial=0.001, backoff_max=0.001)
    reqs = make_requests(3)
    with RequestCache(tmp_path / "c.jsonl") as cache:
        records = run_requests(reqs, endpoint(server.url), cache, policy)
    statuses = [records[r.key]["status"] for r in reqs]
    assert statuses == ["failed", "ok", "ok"]
    failed = records[reqs[0].key]
    assert failed["attempts"] == 3 and "InternalServerError (HTTP 500)" in failed["error"]
    on_disk, _ = read_cache(tmp_path / "c.jsonl")
    assert on_disk[reqs[0].key]["status"] == "failed"  # in the cache, with its error
    with pytest.raises(pipeline.RequestsFailed, match="1 of 3 requests failed.*test_0"):
        pipeline._check_failures(list(records.values()), {"max_failed_fraction": 0.2}, "x", "c")
    pipeline._check_failures(list(records.values()), {"max_failed_fraction": 0.5}, "x", "c")
    # a rerun retries only the failed one
    with RequestCache(tmp_path / "c.jsonl") as cache:
        again = run_requests(reqs, endpoint(server.url), cache, policy)
    assert len(server.posts) == 3 + 2 + 1 and again[reqs[0].key]["status"] == "ok"


@pytest.mark.parametrize(
    "payload",
    [
        b"<html>502 Bad Gateway</html>",  # not JSON at all
        {"id": "x", "object": "chat.completion", "created": 0, "model": "m"},  # no choices
        {"choices": [{"message": "hello"}]},  # no chat message
    ],
)
def test_malformed_replies_are_retried_then_recorded(server, tmp_path, payload):
    server.script.extend([(200, payload, {})] * 2)
    policy = RetryPolicy(concurrency=1, max_attempts=2, backoff_initial=0.001, backoff_max=0.001)
    with RequestCache(tmp_path / "c.jsonl") as cache:
        records = run_requests(make_requests(2), endpoint(server.url), cache, policy)
    first, second = records.values()
    assert first["status"] == "failed" and first["attempts"] == 2
    assert "MalformedReply" in first["error"] or "Decode" in first["error"]
    assert second["status"] == "ok"


def test_a_bad_request_is_recorded_at_once(server, tmp_path):
    server.script.append((400, {"error": {"message": "prompt too long"}}, {}))
    with RequestCache(tmp_path / "c.jsonl") as cache:
        records = run_requests(make_requests(1), endpoint(server.url), cache, FAST)
    (record,) = records.values()
    assert record["status"] == "failed" and record["attempts"] == 1
    assert "BadRequestError (HTTP 400)" in record["error"]


def test_an_invalid_api_key_stops_the_run_keeping_what_finished(server, tmp_path):
    policy = RetryPolicy(concurrency=1, max_attempts=3, backoff_initial=0.001)
    reqs = make_requests(3)
    with RequestCache(tmp_path / "c.jsonl") as cache:
        run_requests(reqs[:1], endpoint(server.url), cache, policy)
        server.key = "rotated"
        with pytest.raises(EndpointError, match=r"rejected the API key from \$TEST_KEY.*401"):
            run_requests(reqs, endpoint(server.url), cache, policy)
    records, _ = read_cache(tmp_path / "c.jsonl")
    assert list(records) == [reqs[0].key]  # nothing lost, nothing recorded for the rest
    client = make_client(endpoint(server.url), policy)
    with pytest.raises(EndpointError, match="rejected the API key"):
        preflight(client, endpoint(server.url), policy)
    assert KEY not in str(records)


def test_an_unreachable_server_is_a_clear_error_before_anything_is_sent(tmp_path):
    with FakeServer() as s:
        url = s.url
    policy = RetryPolicy(max_attempts=2, backoff_initial=0.001, backoff_max=0.001, timeout=2)
    ep = endpoint(url)
    with pytest.raises(
        EndpointError, match="cannot reach the OpenAI-compatible server at .* after 2"
    ):
        preflight(make_client(ep, policy), ep, policy, sleep=lambda s: None)
    # during a run: connection errors are retried, then recorded as failures (never dropped)
    with RequestCache(tmp_path / "c.jsonl") as cache:
        records = run_requests(make_requests(2), ep, cache, policy, sleep=lambda s: None)
    assert all(
        r["status"] == "failed" and "APIConnectionError" in r["error"] for r in records.values()
    )
    assert len(read_cache(tmp_path / "c.jsonl")[0]) == 2


def test_think_blocks_in_the_content_are_split_when_the_server_has_no_reasoning_field():
    from openai.types.chat import ChatCompletion

    response = ChatCompletion.model_validate(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": "<think>\nsteps\n</think>\n\nAnswer: 4",
                    },
                }
            ],
        }
    )
    reply = parse_reply(response)
    assert reply["reasoning"] == "steps" and reply["content"] == "Answer: 4"


# ------------------------------------------------------------------------------- pipeline


def _endpoint_settings(url, role, **over):
    e = {
        "role": role,
        "serve": "external",
        "base_url": url,
        "model": "m",
        "model_id": "m",
        "api_key_env": "TEST_KEY",
        "tokenizer": None,
        "price_input": 1.0,
        "price_output": 2.0,
        "request": {
            "temperature": 0.6 if role == "generator" else 0,
            "top_p": 0.95 if role == "generator" else None,
            "top_k": None,
            "max_tokens": 100 if role == "generator" else 10,
            "seed": None,
            "thinking": role == "generator",
            "thinking_switch": "chat_template_kwargs",
            "extra_body": {},
        },
    }
    if role == "generator":
        e.update(reasoning_budget=8000, budget_measure="authors_estimate")
    else:
        e["valid_if_contains"] = "1"
    e.update(over)
    return e


REQUESTS = {
    "concurrency": 2,
    "max_attempts": 2,
    "backoff_initial": 0.01,
    "backoff_max": 0.02,
    "timeout": 10,
    "retry_failed": True,
    "max_failed_fraction": 0.05,
}


def test_generate_and_judge_write_the_published_schema_read_by_the_probe_loader(
    server, tmp_path, monkeypatch
):
    monkeypatch.setenv("TEST_KEY", KEY)
    local = tmp_path / "problems.jsonl"
    local.write_text("".join(json.dumps({"q": f"compute {i} + {i}"}) + "\n" for i in range(10, 16)))
    problems = tmp_path / "problems" / "arith.jsonl"
    write_problems("arith", {"local": str(local), "problem_field": "q", "tier": "hard"}, problems)
    gen = _endpoint_settings(server.url, "generator")
    jud = _endpoint_settings(server.url, "judge")
    rows = pipeline.generate(
        problems,
        tmp_path / "gen.jsonl",
        endpoint=gen,
        requests=REQUESTS,
        prompts_path=PROMPTS,
        cache_path=tmp_path / "g.jsonl",
    )
    assert len(rows) == 6 and len(server.posts) == 6
    # concurrency 2: the server sees the requests in any order
    for sent in server.posts:
        assert sent["temperature"] == 0.6 and sent["top_p"] == 0.95 and sent["max_tokens"] == 100
        assert sent["chat_template_kwargs"] == {"enable_thinking": True}
    endings = sorted(p["messages"][1]["content"].rsplit("Problem:\n", 1)[1] for p in server.posts)
    assert endings == [f"compute {i} + {i}" for i in range(10, 16)]
    judged = pipeline.judge(
        tmp_path / "gen.jsonl",
        tmp_path / "judged" / "arith.jsonl",
        tmp_path / "judged" / "arith.json",
        endpoint=jud,
        requests=REQUESTS,
        prompts_path=PROMPTS,
        cache_path=tmp_path / "j.jsonl",
        source_spec={"key": "arith", "label": "Arith", "paper_total": 6, "paper_valid": 5},
    )
    for sent in server.posts[6:]:
        assert sent["temperature"] == 0 and "top_p" not in sent and sent["max_tokens"] == 10
        assert sent["chat_template_kwargs"] == {"enable_thinking": False}
    labels = {r["question_id"]: r["correctness_label"] for r in judged}
    assert labels["test_3"] == 0 and sum(labels.values()) == 5  # "compute 13 + 13" judged 0
    row = judged[0]
    assert row["reasoning"].startswith("Let me think") and row["answer"].startswith("The answer")
    assert row["reasoning_tokens"] == 20 and row["reasoning_tokens_source"] == "server"
    assert row["evaluator_model"] == "m" and row["tier"] == "hard" and row["source"] == "arith"
    # the loader of the published traces reads them, filter correctness_label 1 and all
    records = load_probe_dataset(
        "cot",
        {"registry": "cot", "traces": "generated", "tiers": ["hard"]},
        generated={"hard": [str(tmp_path / "judged" / "arith.jsonl")]},
    )
    assert len(records) == 5 and records[0]["id"] == "hard/arith/test_0"
    assert records[0]["text"] == row["reasoning"]
    stats = json.loads((tmp_path / "judged" / "arith.json").read_text())
    assert (stats["total"], stats["valid"], stats["invalid"], stats["yield"]) == (6, 5, 1, 5 / 6)
    assert stats["mean_reasoning_tokens"] == 20 and stats["reasoning_tokens_measure"] == "server"
    table = table11([stats])
    assert "| Arith (Hard) | 6 | 5 | 83.33 | 20 | 0 | 6 | 5 | 83.33 |" in table.markdown
    card = cot_card([stats])
    assert "Generator: `m` (external)" in card and '"temperature": 0.6' in card
    # reruns cost no requests, not even a server check
    n = len(server.posts)
    pipeline.generate(
        problems,
        tmp_path / "gen.jsonl",
        endpoint=gen,
        requests=REQUESTS,
        prompts_path=PROMPTS,
        cache_path=tmp_path / "g.jsonl",
    )
    pipeline.judge(
        tmp_path / "gen.jsonl",
        tmp_path / "judged" / "arith.jsonl",
        tmp_path / "judged" / "arith.json",
        endpoint=jud,
        requests=REQUESTS,
        prompts_path=PROMPTS,
        cache_path=tmp_path / "j.jsonl",
    )
    assert len(server.posts) == n


def test_the_reasoning_budget_and_missing_answers_skip_traces_as_the_authors_did(
    server, tmp_path, monkeypatch
):
    monkeypatch.setenv("TEST_KEY", KEY)
    local = tmp_path / "p.jsonl"
    local.write_text(json.dumps({"problem": "x" * 40}) + "\n" + json.dumps({"problem": "y"}) + "\n")
    problems = tmp_path / "problems.jsonl"
    write_problems("s", {"local": str(local), "tier": "easy"}, problems)
    server.script.append(
        (
            200,
            FakeServer.reply(
                {"messages": [{"content": "s"}, {"content": "u\n" + "x" * 40}], "model": "m"}
            ),
            {},
        )
    )
    no_answer = FakeServer.reply(
        {"messages": [{"content": "s"}, {"content": "u\ny"}], "model": "m"}
    )
    no_answer["choices"][0]["message"]["content"] = ""
    no_answer["choices"][0]["finish_reason"] = "length"
    server.script.append((200, no_answer, {}))
    gen = _endpoint_settings(server.url, "generator", reasoning_budget=30)
    rows = pipeline.generate(
        problems,
        tmp_path / "g.jsonl",
        endpoint=gen,
        requests={**REQUESTS, "concurrency": 1},
        prompts_path=PROMPTS,
        cache_path=tmp_path / "c.jsonl",
    )
    assert rows[0]["skipped"] and rows[0]["skip_reason"] == "cot_exceeded_max_tokens"
    assert rows[0]["cot_length_tokens"] == len(rows[0]["reasoning"]) // 1.3 > 30
    assert rows[1]["skipped"] and rows[1]["skip_reason"] == "no_answer"


def test_a_missing_api_key_names_the_variable_and_the_dry_run_sends_nothing(
    server, tmp_path, monkeypatch
):
    monkeypatch.delenv("TEST_KEY", raising=False)
    local = tmp_path / "p.jsonl"
    local.write_text("".join(json.dumps({"problem": f"p{i}"}) + "\n" for i in range(4)))
    problems = tmp_path / "problems.jsonl"
    write_problems("s", {"local": str(local), "tier": "easy"}, problems)
    gen = _endpoint_settings(server.url, "generator")
    with pytest.raises(EndpointError, match=r"\$TEST_KEY .*not set"):
        pipeline.generate(
            problems,
            tmp_path / "g.jsonl",
            endpoint=gen,
            requests=REQUESTS,
            prompts_path=PROMPTS,
            cache_path=tmp_path / "c.jsonl",
        )
    report = pipeline.dry_run(
        {"s": problems},
        generator={"s": gen},
        judge=_endpoint_settings(server.url, "judge"),
        requests=REQUESTS,
        prompts_path=PROMPTS,
        cache_paths={"s": {"generate": tmp_path / "c.jsonl", "judge": tmp_path / "j.jsonl"}},
    )
    est = report["sources"]["s"]["generate"]
    assert (est["requests"], est["to_send"], est["output_tokens_max"]) == (4, 4, 400)
    assert est["cost_usd_max"] == pytest.approx((est["input_tokens_estimate"] + 2 * 400) / 1e6)
    assert "4 of 4 requests to send" in pipeline.format_dry_run(report)
    assert server.posts == []


# ------------------------------------------------------------------------------- plan


def _config(**cot):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["cot_generation"] = cot
    return config


def test_the_plan_resolves_endpoints_limits_and_resources():
    config = _config(
        sources={
            "g": {
                "hub_id": "openai/gsm8k",
                "config": "main",
                "problem_field": "question",
                "tier": "easy",
            },
            "h": {"local": "x.jsonl", "tier": "hard", "reasoning_budget": None, "max_tokens": None},
        },
        generator={
            "serve": "slurm_vllm",
            "model": "tiny-base",
            "vllm": {"gpus": 4, "mem_mb": 1000},
        },
        judge={"serve": "external", "base_url": "http://h/v1", "model": "j", "api_key_env": "K"},
    )
    config["probe_datasets"]["cot"] = {"registry": "cot", "traces": "generated", "tiers": ["hard"]}
    validate_config(config)
    plan = Plan(config, exists=lambda p: False)
    gen = plan.cot_endpoint("generator", "g")
    assert gen["source"] == "results/models/tiny-base" and gen["served_name"] == "tiny-base"
    assert gen["request"]["max_tokens"] == 11000 and gen["reasoning_budget"] == 8000
    assert gen["request"]["temperature"] == 0.6 and gen["request"]["top_p"] == 0.95
    assert gen["request"]["thinking"] is True and gen["tokenizer"] == "results/models/tiny-base"
    hard = plan.cot_endpoint("generator", "h")
    assert hard["reasoning_budget"] is None and hard["request"]["max_tokens"] is None
    judge = plan.cot_endpoint("judge")
    assert judge["request"]["temperature"] == 0 and judge["request"]["thinking"] is False
    assert judge["valid_if_contains"] == "1" and judge["base_url"] == "http://h/v1"
    assert plan.cot_resources("generator") == {"gpu": 4, "mem_mb": 1000, "runtime": 720}
    assert plan.cot_resources("judge") == {"gpu": 0}
    assert not plan.cot_is_local_rule("generator") and plan.cot_is_local_rule("judge")
    assert plan.cot_endpoint_input("generator") == ["results/models/tiny-base"]
    assert plan.probe_local_input("cot") == ["results/cot/judged/h.jsonl"]
    assert plan.probe_spec("cot")["generated_files"] == {"hard": ["results/cot/judged/h.jsonl"]}
    assert "results/report/table11.csv" in plan.report_tables()
    assert "results/report/cot_card.md" in plan.report_tables()
    assert "Table 11" not in plan.report_skipped()
    assert "results/cot/problems/g.jsonl" in plan.prefetch_inputs()
    assert "results/data/probe/cot.jsonl" not in plan.prefetch_inputs()
    assert plan.wildcard_constraints()["cot_source"] == "g|h"


def test_plan_time_errors_name_the_key():
    config = _config(sources={"e": {"local": "x.jsonl", "tier": "easy"}})
    config["probe_datasets"]["cot"] = {"registry": "cot", "traces": "generated"}  # tiers: [hard]
    validate_config(config)
    plan = Plan(config)
    with pytest.raises(ConfigError, match=r"probe_datasets\.cot\.traces: .*\['hard'\].*easy"):
        plan.probe_local_input("cot")
    with pytest.raises(ConfigError, match=r"cot_generation\.generator\.base_url"):
        plan.cot_endpoint("generator", "e")
    config = _config()
    config["probe_datasets"]["mmlu_pro"]["traces"] = "generated"
    with pytest.raises(ConfigError, match="traces"):
        validate_config(config)


def test_without_sources_nothing_changes():
    for name in ("config.yaml", "paper.yaml"):
        config = yaml.safe_load((ROOT / "config" / name).read_text())
        validate_config(config)
        plan = Plan(config)
        assert not plan.cot_enabled() and "Table 11" in plan.report_skipped()
        assert not any("table11" in t or "cot" in t.split("/")[1] for t in plan.report_tables())


def test_the_paper_generation_overlay_is_valid_and_reproduces_appendix_c():
    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    overlay = yaml.safe_load((ROOT / "config" / "cot-generation.yaml").read_text())
    from hrsa.cot.__main__ import _merge

    _merge(config, overlay)
    validate_config(config)
    plan = Plan(config, exists=lambda p: False)
    assert plan.cot_sources() == ["gsm8k", "numinamath-cn-k12", "math-500", "livemathbench"]
    assert [config["cot_generation"]["sources"][s]["tier"] for s in plan.cot_sources()] == [
        "easy",
        "moderate",
        "moderate",
        "hard",
    ]
    assert (
        sum(config["cot_generation"]["sources"][s]["paper_total"] for s in plan.cot_sources())
        == 1197
    )
    assert (
        sum(config["cot_generation"]["sources"][s]["paper_valid"] for s in plan.cot_sources())
        == 1021
    )
    gen = plan.cot_endpoint("generator", "gsm8k")
    assert gen["serve"] == "slurm_vllm" and gen["source"] == "Qwen/Qwen3-32B"
    assert (gen["request"]["temperature"], gen["request"]["top_p"]) == (0.6, 0.95)
    assert gen["reasoning_budget"] == 8000 and gen["request"]["thinking"] is True
    assert plan.cot_endpoint("generator", "livemathbench")["reasoning_budget"] is None
    judge = plan.cot_endpoint("judge")
    assert judge["request"]["temperature"] == 0 and judge["request"]["thinking"] is False
    assert judge["api_key_env"] == "DASHSCOPE_API_KEY"
    assert plan.cot_resources("generator")["gpu"] == 4
    assert plan.probe_spec("cot")["traces"] == "generated"
    assert "results/prefetch/models/qwen3-32b.json" in plan.prefetch_inputs()


def test_the_report_readme_lists_table_11_and_its_card_after_it():
    from hrsa.report.readme import describe

    table, card = describe("table11", {}), describe("cot_card", {})
    assert table.reproduces == "Table 11" and "yield" in table.description
    assert card.reproduces == "Table 11 (dataset card)" and card.order > table.order
    assert describe("table12", {}).order > card.order


def test_a_chat_model_built_by_the_workflow_can_serve_the_generation_locally():
    config = _config(
        sources={"s": {"local": "x.jsonl", "tier": "hard"}},
        generator={"serve": "local", "model": "tiny-chat"},
        judge={"serve": "local", "model": "tiny-chat"},
    )
    config["models"]["tiny-chat"] = {"build": {"recipe": "chat"}}
    validate_config(config)
    plan = Plan(config, basedir=ROOT)
    assert plan.build_settings("tiny-chat")["prompts"] == "config/cot_prompts.yaml"
    assert plan.build_prompts_input("tiny-chat") == ["config/cot_prompts.yaml"]
    assert plan.build_prompts_input("tiny-base") == []  # other recipes: unchanged
    gen = plan.cot_endpoint("generator", "s")
    assert gen["serve"] == "local" and gen["source"] == "results/models/tiny-chat"
    assert gen["local"]["device"] == "cpu" and plan.cot_resources("generator") == {"gpu": 0}
    assert plan.cot_endpoint_input("judge") == ["results/models/tiny-chat"]
    from hrsa.cot.serve import server_command

    cmd, name = server_command(gen, 8123)
    assert cmd[1:] == [
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
        "--device",
        "cpu",
        "--dtype",
        "auto",
        "results/models/tiny-chat",
    ]
    assert name == "results/models/tiny-chat"  # transformers serve names it as loaded
    vllm = {
        **gen,
        "serve": "slurm_vllm",
        "revision": "abc",
        "served_name": "q",
        "vllm": {
            "gpus": 4,
            "reasoning_parser": "qwen3",
            "max_model_len": 40960,
            "extra_args": ["--enforce-eager"],
        },
    }
    cmd, name = server_command(vllm, 8124)
    assert name == "q" and cmd[1:3] == ["serve", "results/models/tiny-chat"]
    joined = " ".join(cmd)
    for part in (
        "--served-model-name q",
        "--tensor-parallel-size 4",
        "--revision abc",
        "--reasoning-parser qwen3",
        "--max-model-len 40960",
        "--enforce-eager",
    ):
        assert part in joined
