"""Tiny offline backbones for the default config: a base LM and its fine-tuned partners.

Recipes (all deterministic from a seed, a minute or less on 2 CPU cores):

* ``base``   - a randomly initialised Qwen2/Qwen3-style decoder, briefly trained as a language model
  on generated general text, with a byte-level BPE tokenizer trained locally
  (with ``task``: mixed 1:1 with a verifiable task, :mod:`hrsa.tiny_rl`);
* ``rlvr``     - the base trained with GRPO (trl) on its task, reward = exact match of the answer
  (:mod:`hrsa.tiny_rl`): the default config's RLVR partner;
* ``task_sft`` - the base fine-tuned on the same task's gold answers: the SFT partner;
* ``reason`` - the older stand-in: the base after a *short, low-learning-rate* fine-tune on
  step-by-step arithmetic traces (a small update; the paper-size rehearsal still uses it);
* ``sft``    - the base after a *long, high-learning-rate* fine-tune on different (dialogue) text
  (a large update).

* ``chat`` - a tiny chat model with a thinking section in its chat template, trained on
  transcripts of the CoT prompts: the stand-in generator and judge of ``cot_generation``
  (:mod:`hrsa.cot.tiny_chat`).

* ``embedding`` - not a language model: a tiny SentenceTransformer (static token embeddings, mean
  pooled, normalised) on the same tokenizer, saved in sentence-transformers' format like
  Qwen/Qwen3-Embedding-0.6B, the paper's hard-negative miner. It stands in for the miner: its
  similarities follow word overlap, so the positive-aware margin finds negatives, which the
  mean-pooled states of a tiny language model (all cosines near 1) cannot give.

Every language model is saved with ``save_pretrained`` (causal-LM weights + tokenizer) and reloads
offline with ``AutoModel`` / ``AutoTokenizer``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import tiny_rl
from .config import schema_default
from .data import synthetic
from .errors import config_error
from .locks import LOCK_NAME, make_temp_dir, remove_stale_temp_dirs

log = logging.getLogger("hrsa.tiny")

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_tokenizer(texts: list[str], vocab_size: int = 512, extra_special=()):
    """Byte-level BPE (like Qwen2's) trained on ``texts``, wrapped as a fast HF tokenizer;
    ``extra_special``: more special tokens (the chat recipe's ``<think>``, ``</think>``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[*SPECIAL_TOKENS, *extra_special],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=1024,
        padding_side="right",
    )
    return fast


def build_model(arch: str, vocab_size: int, seed: int, *, hidden_size: int = 64, layers: int = 4):
    """A randomly initialised tiny causal LM (Qwen2- or Qwen3-style)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    common = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=0,
        pad_token_id=0,
    )
    if arch == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**common))
    if arch == "qwen3":
        # Qwen3's default head_dim is 128; a tiny model needs it set explicitly.
        return Qwen3ForCausalLM(Qwen3Config(head_dim=hidden_size // 4, **common))
    raise config_error(
        "models.<key>.build.arch", f"unknown tiny architecture {arch!r}; expected qwen2 or qwen3"
    )


def train_language_model(
    model,
    tokenizer,
    texts: list[str],
    *,
    steps: int,
    lr: float,
    seed: int,
    batch_size: int = 16,
    max_length: int = 128,
    desc: str = "lm",
) -> list[float]:
    """Plain next-token training (causal attention), AdamW with constant LR. Returns the losses."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for _ in tqdm(range(steps), desc=desc, mininterval=5):
        batch = tokenizer(
            rng.sample(texts, min(batch_size, len(texts))),
            padding=True,
            truncation=True,
            max_length=max_length,
            add_special_tokens=False,
            return_tensors="pt",
        )
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.detach().item())
    model.eval()
    return losses


RECIPES = {
    # recipe: (texts, default steps, default lr)
    "base": (lambda seed: synthetic.general_text(2000, seed), 150, 3e-3),
    "reason": (
        lambda seed: [r["text"] for r in synthetic.arithmetic_traces(800, seed + 1)],
        20,
        2e-4,
    ),
    "sft": (lambda seed: synthetic.dialogue_text(2000, seed + 2), 300, 3e-3),
}
#: the recipes trained on the base's verifiable task (:mod:`hrsa.tiny_rl`): default steps, lr
TASK_RECIPES = {"rlvr": (200, 5e-4), "task_sft": (200, 5e-4)}


#: a build's defaults: the config schema's ``models.<key>.build.*`` (the schema owns every default)
BUILD_SEED = schema_default("models.<key>.build.seed")
BUILD_ARCH = schema_default("models.<key>.build.arch")
TASK_NOISE = tiny_rl.TASK_NOISE
HELDOUT = tiny_rl.HELDOUT
GROUP_SIZE = tiny_rl.GROUP_SIZE
BETA = tiny_rl.BETA
PROMPTS_PER_STEP = tiny_rl.PROMPTS_PER_STEP
FORMAT_REWARD = tiny_rl.FORMAT_REWARD


def build_tiny(
    out: str | os.PathLike,
    *,
    recipe: str,
    seed: int = BUILD_SEED,
    arch: str = BUILD_ARCH,
    init: str | os.PathLike | None = None,
    steps: int | None = None,
    lr: float | None = None,
    hidden_size: int = 64,
    layers: int = 4,
    vocab_size: int = 512,
    prompts: str | os.PathLike | None = None,
    task: str | None = None,
    task_noise: float = TASK_NOISE,
    heldout: int = HELDOUT,
    group_size: int = GROUP_SIZE,
    beta: float = BETA,
    prompts_per_step: int = PROMPTS_PER_STEP,
    format_reward: bool = FORMAT_REWARD,
) -> dict:
    """Build one tiny model by ``recipe`` into ``out`` (atomically). Returns its build record.

    ``base`` starts from random weights and a new tokenizer; ``reason`` and ``sft`` start from
    ``init`` (the base model's directory) and keep its tokenizer, so the pair tokenizes identically.
    ``chat`` (:mod:`hrsa.cot.tiny_chat`) trains on transcripts of the CoT ``prompts`` file.

    ``task`` (base only): also pre-train on that verifiable task (:mod:`hrsa.tiny_rl`), with
    ``task_noise`` of its answers wrong and ``heldout`` problems held out. ``rlvr`` (GRPO:
    ``group_size``, ``beta``, ``format_reward``) and ``task_sft`` train such a base on its task,
    ``prompts_per_step`` prompts a step; their records hold the held-out accuracy before and
    after, the reward (loss) curve and the per-layer relative weight change.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if recipe == "chat":
        from .cot.tiny_chat import build_chat

        if prompts is None:
            raise config_error(
                "models.<key>.build.prompts", "the chat recipe needs the CoT prompts file"
            )
        kw = {"steps": steps, "lr": lr, "hidden_size": hidden_size, "layers": layers}
        return build_chat(out, prompts=prompts, seed=seed, vocab_size=vocab_size, **kw)
    if recipe == "embedding":
        return build_static_embedder(out, seed=seed, dim=hidden_size, vocab_size=vocab_size)
    if recipe in TASK_RECIPES:
        return _build_task_partner(
            out,
            recipe=recipe,
            init=init,
            seed=seed,
            arch=arch,
            steps=TASK_RECIPES[recipe][0] if steps is None else steps,
            lr=TASK_RECIPES[recipe][1] if lr is None else lr,
            group_size=group_size,
            beta=beta,
            prompts_per_step=prompts_per_step,
            format_reward=format_reward,
        )
    if recipe not in RECIPES:
        known = sorted([*RECIPES, *TASK_RECIPES, "embedding", "chat"])
        raise config_error(
            "models.<key>.build.recipe", f"unknown tiny recipe {recipe!r}; expected one of {known}"
        )
    if task is not None and recipe != "base":
        raise config_error(
            "models.<key>.build.task", f"only the base recipe pre-trains on a task, not {recipe!r}"
        )
    make_texts, default_steps, default_lr = RECIPES[recipe]
    steps = default_steps if steps is None else steps
    lr = default_lr if lr is None else lr
    texts = make_texts(seed)
    task_info = None
    if recipe == "base":
        corpus = synthetic.tokenizer_corpus(seed)
        if task is not None:
            tiny_rl.check_task(task)
            train, _ = tiny_rl.split(seed, heldout)
            texts = texts + tiny_rl.pretraining_docs(train, seed, task_noise)
            corpus = corpus + tiny_rl.tokenizer_lines(seed)
        tokenizer = build_tokenizer(corpus, vocab_size)
        if task is not None:
            tiny_rl.check_tokenizer(tokenizer)
            task_info = {"name": task, "split_seed": seed, "heldout": heldout, "noise": task_noise}
        model = build_model(arch, len(tokenizer), seed, hidden_size=hidden_size, layers=layers)
    else:
        if init is None or not (Path(init) / "config.json").is_file():
            raise config_error(
                "models.<key>.build.init",
                f"recipe {recipe!r} needs `init`: the base model directory ({init!r})",
            )
        tokenizer = AutoTokenizer.from_pretrained(init)
        model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)
    losses = train_language_model(
        model, tokenizer, texts, steps=steps, lr=lr, seed=seed, desc=recipe
    )
    record = {
        "recipe": recipe,
        "seed": seed,
        "arch": arch,
        "init": str(init) if init else None,
        "steps": steps,
        "lr": lr,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
    }
    if task_info is not None:
        _, held = tiny_rl.split(seed, heldout)
        record["task"] = task_info
        record["heldout_accuracy"] = tiny_rl.heldout_accuracy(model, tokenizer, held)

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _save_built(out, save, record)


def _build_task_partner(out, *, recipe: str, init, seed: int, arch: str, **settings) -> dict:
    """The ``rlvr`` / ``task_sft`` recipes (:func:`hrsa.tiny_rl.build_task_partner`)."""
    if init is None or not (Path(init) / "config.json").is_file():
        raise config_error(
            "models.<key>.build.init",
            f"recipe {recipe!r} needs `init`: the base model directory ({init!r})",
        )
    model, tokenizer, trained = tiny_rl.build_task_partner(recipe, init, seed=seed, **settings)
    record = {
        "recipe": recipe,
        "seed": seed,
        "arch": arch,
        "init": str(init),
        "steps": settings["steps"],
        "lr": settings["lr"],
        **trained,
    }

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _save_built(out, save, record)


def _save_built(out: str | os.PathLike, save, record: dict) -> dict:
    """Write a built model with ``save(tmp_dir)`` and its build record, then rename it onto
    ``out``: a killed build leaves no directory that looks complete. The temporary directory
    has the umask's mode and is locked while written (:mod:`hrsa.locks`); leftovers of killed
    builds are removed, a live build's directory is left alone."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{out.name}.tmp-"
    remove_stale_temp_dirs(out.parent, prefix)
    tmp, lock = make_temp_dir(out.parent, prefix)
    try:
        save(tmp)
        (tmp / "hrsa_build.json").write_text(json.dumps(record, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        lock.path = out / LOCK_NAME  # renamed with the directory; removed on release
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        lock.release()
    log.info("built %s: %s", out, record)
    return record


def build_untrained(
    out: str | os.PathLike,
    *,
    arch: str = "qwen2",
    hidden_size: int = 64,
    layers: int = 4,
    seed: int = 0,
    vocab_size: int = 512,
) -> Path:
    """A randomly initialised model with the tiny tokenizer, no training (benchmarks, sizes)."""
    tokenizer = build_tokenizer(synthetic.tokenizer_corpus(seed), vocab_size)
    model = build_model(arch, len(tokenizer), seed, hidden_size=hidden_size, layers=layers)
    out = Path(out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_static_embedder(
    out: str | os.PathLike, *, seed: int = 0, dim: int = 64, vocab_size: int = 512
) -> dict:
    """The ``embedding`` recipe: a SentenceTransformer of seeded random static token embeddings
    (mean pooled, then normalised) on the tiny tokenizer, written atomically to ``out``."""
    import numpy as np
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, StaticEmbedding

    tokenizer = build_tokenizer(synthetic.tokenizer_corpus(seed), vocab_size)
    weights = np.random.default_rng(seed).standard_normal((len(tokenizer), dim)).astype("float32")
    model = SentenceTransformer(
        modules=[StaticEmbedding(tokenizer, embedding_weights=weights), Normalize()], device="cpu"
    )
    record = {"recipe": "embedding", "seed": seed, "dim": dim, "vocab_size": len(tokenizer)}
    return _save_built(out, lambda tmp: model.save(str(tmp)), record)
