"""The ``chat`` tiny-model recipe: a stand-in generator and judge for the CoT generation.

A tiny Qwen2-style causal LM (:func:`hrsa.tiny.build_model`) with its own byte-level BPE (which
has ``<think>`` and ``</think>`` as single tokens), a chat template with a thinking section, and
a short language-model training on chat transcripts rendered with the configured prompts
(``cot_generation.prompts``): the generator's turn is ``<think>`` step-by-step arithmetic
``</think>`` then ``Answer: N.``; the judge's turn (thinking off) is ``0`` or ``1``. 200 steps
(20-40 s on 2 CPU cores) teach it the format - nearly every sampled reply closes ``</think>`` and
gives an answer - not arithmetic: it is for testing the
pipeline against a real ``transformers serve``, not for data.

The chat template follows Qwen3's switch: the generation prompt opens ``<think>\\n`` when
``enable_thinking`` is not false, and adds an empty ``<think>\\n\\n</think>\\n\\n`` when it is
false. ``transformers serve`` splits a reply into ``reasoning_content`` and ``content`` at
``</think>`` (its qwen2 response template).
"""

from __future__ import annotations

import logging
import os
import random

from ..data import synthetic

log = logging.getLogger("hrsa.cot.tiny_chat")

THINK_TOKENS = ("<think>", "</think>")
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- else %}{{- '<think>\\n' }}{%- endif %}"
    "{%- endif %}"
)


def _turn(role: str, content: str) -> str:
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def transcripts(prompts, n: int, seed: int) -> list[str]:
    """``2 n`` chat transcripts: a generator's and a judge's turn per synthetic arithmetic
    trace (``prompts``: :func:`hrsa.cot.prompts.load_prompts`'s pairs)."""
    out = []
    for row in synthetic.arithmetic_traces(n, seed):
        text = row["text"]
        question = text.split(" Let us think")[0].removeprefix("Question: ")
        steps = (
            text.split("step by step. ", 1)[1].split(" Answer:", 1)[0].replace(". Step", ".\nStep")
        )
        answer = "Answer:" + text.split("Answer:", 1)[1]
        gen = prompts["generator"].messages(problem=question)
        out.append(
            _turn("system", gen[0]["content"])
            + _turn("user", gen[1]["content"])
            + f"<|im_start|>assistant\n<think>\n{steps}\n</think>\n\n{answer}<|im_end|>\n"
        )
        jud = prompts["judge"].messages(problem=question, answer=answer)
        out.append(
            _turn("system", jud[0]["content"])
            + _turn("user", jud[1]["content"])
            + "<|im_start|>assistant\n<think>\n\n</think>\n\n"
            + f"{row['correctness_label']}<|im_end|>\n"
        )
    random.Random(seed).shuffle(out)
    return out


def build_chat(
    out: str | os.PathLike,
    *,
    prompts: str | os.PathLike,
    seed: int = 0,
    steps: int | None = None,
    lr: float | None = None,
    hidden_size: int = 64,
    layers: int = 4,
    vocab_size: int = 512,
) -> dict:
    """Build the ``chat`` recipe into ``out`` (atomically); returns its build record."""
    from transformers import GenerationConfig

    from .. import tiny
    from .prompts import load_prompts

    steps = 200 if steps is None else steps
    lr = 6e-3 if lr is None else lr
    texts = transcripts(load_prompts(prompts), 600, seed + 5)
    tokenizer = tiny.build_tokenizer(
        synthetic.tokenizer_corpus(seed) + texts[:200], vocab_size, extra_special=THINK_TOKENS
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    model = tiny.build_model("qwen2", len(tokenizer), seed, hidden_size=hidden_size, layers=layers)
    losses = tiny.train_language_model(
        model,
        tokenizer,
        texts,
        steps=steps,
        lr=lr,
        seed=seed,
        batch_size=8,
        max_length=256,
        desc="chat",
    )
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config = GenerationConfig(
        eos_token_id=[im_end, tokenizer.eos_token_id],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True,  # transformers serve then applies each request's temperature and top_p
        temperature=0.6,
        top_p=0.95,
        max_new_tokens=256,
    )
    record = {
        "recipe": "chat",
        "seed": seed,
        "arch": "qwen2",
        "steps": steps,
        "lr": lr,
        "prompts": str(prompts),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
    }

    def save(tmp) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return tiny._save_built(out, save, record)
