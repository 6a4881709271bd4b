"""A verifiable task for the tiny models, and the two partners trained on it: RLVR and SFT.

The default config's pairs are base vs RLVR and base vs SFT *on the same task*, so the paper's
contrast (an RL-trained partner moves its weights and representations less than an SFT one) is
shown by real algorithms, at tiny scale:

* the task ``max3``: the prompt ``"Q: max a b c A:"`` with digits ``a, b, c``; the gold answer
  is ``" m"``, ``m = max(a, b, c)`` (one token). :func:`verify` is the verifier: reward 1.0
  when the first integer of a completion equals ``m``, else 0.0. The 1000 triples are shuffled
  by a seed; ``heldout`` of them are held out: never in pre-training, RL or SFT;
* the base pre-training mixes general text 1:1 with documents of task lines on the training
  triples whose answer carries a systematic off-by-one error (``(max - 1) mod 10``) with
  probability ``task_noise``, else the true max. The base learns to pick the largest digit but
  often answers ``max - 1``, so RL starts from a non-trivial, imperfect success rate (default
  config, 450 steps: held-out greedy accuracy 0.82/0.24/0.54 over seeds 0/1/2);
* ``rlvr`` - GRPO (trl's ``GRPOTrainer``) from the base: groups of ``group_size`` sampled
  completions per prompt, reward = :func:`verify` (plus an optional format reward), KL
  coefficient ``beta`` to the base;
* ``task_sft`` - the same base fine-tuned on the gold answers of the same training prompts
  (distillation-style: loss on the answer token only), the same steps and prompts per step.

Both record in their build record the held-out greedy accuracy before (the base) and after,
the training curve (GRPO's mean reward per step, SFT's loss) and the relative weight change
``||dW|| / ||W||`` per layer (:func:`relative_weight_change`).
"""

from __future__ import annotations

import copy
import json
import logging
import random
import re
import tempfile
from pathlib import Path

import torch

from .config import schema_default
from .errors import config_error

log = logging.getLogger("hrsa.tiny")

TASKS = ("max3",)

#: the defaults of ``models.<key>.build.*`` the task recipes read (the schema owns them)
TASK_NOISE = schema_default("models.<key>.build.task_noise")
HELDOUT = schema_default("models.<key>.build.heldout")
GROUP_SIZE = schema_default("models.<key>.build.group_size")
BETA = schema_default("models.<key>.build.beta")
PROMPTS_PER_STEP = schema_default("models.<key>.build.prompts_per_step")
FORMAT_REWARD = schema_default("models.<key>.build.format_reward")

#: pre-training documents of the task (each ``LINES_PER_DOC`` task lines), mixed 1:1 with text
TASK_DOCS = 2000
LINES_PER_DOC = 4
#: task lines added to the tokenizer corpus so that every `` d`` digit is one token
TOKENIZER_LINES = 300
#: the format reward's weight next to the exact-match reward's 1.0 (``format_reward: true``)
FORMAT_WEIGHT = 0.1

Triple = tuple[int, int, int]


def check_task(task: str | None) -> str:
    if task not in TASKS:
        raise config_error("models.<key>.build.task", f"unknown task {task!r}; expected {TASKS}")
    return task


def prompt(t: Triple) -> str:
    """The task's prompt for the triple ``t``."""
    return f"Q: max {t[0]} {t[1]} {t[2]} A:"


def gold(t: Triple) -> int:
    """The verifiable answer: the largest digit."""
    return max(t)


def verify(completion: str, answer: int) -> float:
    """The verifier: 1.0 when the completion's first integer equals ``answer``, else 0.0."""
    m = re.match(r"\s*(-?\d+)", completion)
    return 1.0 if m is not None and int(m.group(1)) == answer else 0.0


def well_formed(completion: str) -> float:
    """The optional format reward: 1.0 when the completion starts with an integer."""
    return 1.0 if re.match(r"\s*-?\d", completion) else 0.0


def split(seed: int, heldout: int = HELDOUT) -> tuple[list[Triple], list[Triple]]:
    """``(train, held_out)``: the 1000 digit triples shuffled by ``seed``; the first
    ``heldout`` are held out (never used for pre-training, RL or SFT)."""
    triples = [(a, b, c) for a in range(10) for b in range(10) for c in range(10)]
    if not 0 < heldout < len(triples):
        raise config_error(
            "models.<key>.build.heldout", f"{heldout} is not between 1 and {len(triples) - 1}"
        )
    random.Random(f"max3-split-{seed}").shuffle(triples)
    return triples[heldout:], triples[:heldout]


def noisy_answer(t: Triple, rng: random.Random, noise: float) -> int:
    """A pre-training answer: the off-by-one error ``(max - 1) mod 10`` with probability
    ``noise``, else the true max."""
    return (gold(t) - 1) % 10 if rng.random() < noise else gold(t)


def pretraining_docs(train: list[Triple], seed: int, noise: float = TASK_NOISE) -> list[str]:
    """``TASK_DOCS`` documents of ``LINES_PER_DOC`` task lines on training triples only."""
    if not 0.0 <= noise <= 1.0:
        raise config_error("models.<key>.build.task_noise", f"{noise} is not in [0, 1]")
    rng = random.Random(f"max3-docs-{seed}")
    docs = []
    for _ in range(TASK_DOCS):
        lines = []
        for _ in range(LINES_PER_DOC):
            t = rng.choice(train)
            lines.append(f"{prompt(t)} {noisy_answer(t, rng, noise)}")
        docs.append("\n".join(lines))
    return docs


def tokenizer_lines(seed: int) -> list[str]:
    """Task-like lines (random triples and answers) for the tokenizer corpus: every digit
    after a space becomes one token, so each answer is exactly one token."""
    rng = random.Random(f"max3-tok-{seed}")
    rand = lambda: tuple(rng.randrange(10) for _ in range(3))  # noqa: E731
    return [
        " ".join(f"{prompt(rand())} {rng.randrange(10)}" for _ in range(LINES_PER_DOC))
        for _ in range(TOKENIZER_LINES)
    ]


def check_tokenizer(tokenizer) -> None:
    """Every prompt has the same number of tokens and every answer `` d`` is one token."""
    lengths = {len(tokenizer(prompt(t), add_special_tokens=False)["input_ids"]) for t in _all()}
    answers = {len(tokenizer(f" {d}", add_special_tokens=False)["input_ids"]) for d in range(10)}
    if len(lengths) != 1 or answers != {1}:
        raise config_error(
            "models.<key>.build.init",
            "the base tokenizer does not split the max3 task into fixed-length prompts and "
            "one-token answers: build the base with `task: max3`",
        )


def load_tokenizer(path: str | Path):
    """The tokenizer exactly as trained (``tokenizer.json``). ``AutoTokenizer`` maps a qwen2
    config to ``Qwen2Tokenizer``, whose pre-tokenizer splits `` 7`` into two tokens: the task's
    one-token answers need the trained tokenizer."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(path))


def _all() -> list[Triple]:
    return [(a, b, c) for a in range(10) for b in range(10) for c in range(10)]


@torch.no_grad()
def heldout_accuracy(model, tokenizer, triples: list[Triple]) -> float:
    """Greedy accuracy under the verifier: the model's most likely next token after each prompt
    (all prompts have the same length: one batch, no padding), decoded and verified."""
    was_training = model.training
    model.eval()
    enc = tokenizer([prompt(t) for t in triples], add_special_tokens=False, return_tensors="pt")
    ids = model(**enc).logits[:, -1, :].argmax(-1).tolist()
    completions = tokenizer.batch_decode([[i] for i in ids])
    model.train(was_training)
    return sum(verify(c, gold(t)) for c, t in zip(completions, triples, strict=True)) / len(triples)


def task_record(path: str | Path) -> dict:
    """The task settings a base was pre-trained with (its build record's ``task``)."""
    rec_path = Path(path) / "hrsa_build.json"
    task = json.loads(rec_path.read_text()).get("task") if rec_path.is_file() else None
    if not task:
        raise config_error(
            "models.<key>.build.init",
            f"{path} was not pre-trained on a task: build its base with `task: max3`",
        )
    return task


def _prompt_stream(train: list[Triple], n: int, seed: int, salt: str) -> list[Triple]:
    rng = random.Random(f"max3-{salt}-{seed}")
    return [rng.choice(train) for _ in range(n)]


def train_rlvr(
    model,
    tokenizer,
    train: list[Triple],
    *,
    init_dir: str | Path,
    steps: int,
    lr: float,
    seed: int,
    group_size: int = GROUP_SIZE,
    beta: float = BETA,
    prompts_per_step: int = PROMPTS_PER_STEP,
    format_reward: bool = FORMAT_REWARD,
) -> list[float]:
    """GRPO (trl's ``GRPOTrainer``) on the task, in place on ``model``. Each step samples
    ``group_size`` completions (temperature 1, one token) for each of ``prompts_per_step``
    training prompts and rewards them with :func:`verify` (plus ``FORMAT_WEIGHT`` x
    :func:`well_formed` if ``format_reward``); advantages are normalised per group. ``beta``:
    the KL coefficient to the reference model, which trl reloads from ``init_dir``. Returns the
    mean verifier reward of each step."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    if group_size < 2:
        raise config_error("models.<key>.build.group_size", f"{group_size} < 2: GRPO needs groups")
    if beta < 0:
        raise config_error("models.<key>.build.beta", f"{beta} is negative")
    rows = _prompt_stream(train, max(steps, 1) * prompts_per_step, seed, "rl")
    data = Dataset.from_dict(
        {"prompt": [prompt(t) for t in rows], "answer": [gold(t) for t in rows]}
    )

    def exact_match(prompts, completions, answer, **_):
        return [verify(c, a) for c, a in zip(completions, answer, strict=True)]

    def answer_format(prompts, completions, **_):
        return [well_formed(c) for c in completions]

    funcs, weights = [exact_match], [1.0]
    if format_reward:
        funcs, weights = [exact_match, answer_format], [1.0, FORMAT_WEIGHT]
    # trl reloads the KL reference from the policy's _name_or_path: the base directory
    model.config._name_or_path = str(init_dir)
    model.train()
    with tempfile.TemporaryDirectory(prefix="hrsa-grpo-") as out:
        args = GRPOConfig(
            output_dir=out,
            use_cpu=not torch.cuda.is_available(),
            bf16=False,
            fp16=False,
            gradient_checkpointing=False,
            report_to="none",
            save_strategy="no",
            logging_steps=1,
            disable_tqdm=True,
            seed=seed,
            data_seed=seed,
            dataloader_num_workers=0,
            learning_rate=lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            max_steps=steps,
            per_device_train_batch_size=prompts_per_step * group_size,
            gradient_accumulation_steps=1,
            num_generations=group_size,
            max_completion_length=1,  # the answer is one token
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            beta=beta,
            loss_type="dapo",
            scale_rewards="group",
            reward_weights=weights,
            shuffle_dataset=False,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=funcs,
            args=args,
            train_dataset=data,
            processing_class=tokenizer,
        )
        trainer.remove_callback(PrinterCallback)  # it prints every log dict when tqdm is off
        trainer.train()
    model.eval()
    return [
        h["rewards/exact_match/mean"]
        for h in trainer.state.log_history
        if "rewards/exact_match/mean" in h
    ]


def train_task_sft(
    model,
    tokenizer,
    train: list[Triple],
    *,
    steps: int,
    lr: float,
    seed: int,
    prompts_per_step: int = PROMPTS_PER_STEP,
) -> list[float]:
    """SFT on the gold answers of the training prompts, in place on ``model``: AdamW at a
    constant ``lr``, ``prompts_per_step`` prompts a step, loss on the answer token only,
    gradients clipped at 1.0. Returns the losses."""
    torch.manual_seed(seed)
    rows = _prompt_stream(train, steps * prompts_per_step, seed, "sft")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for step in range(steps):
        batch = rows[step * prompts_per_step : (step + 1) * prompts_per_step]
        enc = tokenizer(
            [f"{prompt(t)} {gold(t)}" for t in batch], add_special_tokens=False, return_tensors="pt"
        )
        labels = torch.full_like(enc["input_ids"], -100)
        labels[:, -1] = enc["input_ids"][:, -1]  # the answer token only
        loss = model(**enc, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.detach().item())
    model.eval()
    return losses


def _layer_of(name: str) -> str:
    m = re.search(r"layers\.(\d+)\.", name)
    if m:
        return f"layer{m.group(1)}"
    if "embed_tokens" in name:
        return "embed"
    if name.endswith("lm_head.weight"):
        return "lm_head"
    return "final_norm" if "norm" in name else "other"


def relative_weight_change(before, after) -> dict[str, float]:
    """``||W_after - W_before||_F / ||W_before||_F`` per layer (all of a layer's parameters
    together): ``embed``, ``layer0`` .. ``layerN``, ``final_norm`` (a tied ``lm_head`` is the
    embedding). ``before``/``after``: models, state dicts or saved model directories."""
    a, b = _state(before), _state(after)
    if set(a) != set(b):
        raise ValueError(f"the two models' parameters differ: {sorted(set(a) ^ set(b))[:5]}")
    num: dict[str, float] = {}
    den: dict[str, float] = {}
    for name, w0 in a.items():
        layer = _layer_of(name)
        w0 = w0.double()
        num[layer] = num.get(layer, 0.0) + (b[name].double() - w0).pow(2).sum().item()
        den[layer] = den.get(layer, 0.0) + w0.pow(2).sum().item()
    order = lambda k: (k != "embed", int(k[5:]) if k.startswith("layer") else 1e9, k)  # noqa: E731
    return {k: (num[k] / den[k]) ** 0.5 if den[k] else 0.0 for k in sorted(num, key=order)}


def _state(model) -> dict[str, torch.Tensor]:
    if isinstance(model, dict):
        return model
    if isinstance(model, (str, Path)):
        from safetensors.torch import load_file

        files = sorted(Path(model).glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"no safetensors weights in {model}")
        state: dict[str, torch.Tensor] = {}
        for f in files:
            state.update(load_file(f))
        return state
    seen, state = set(), {}
    for name, p in model.named_parameters():  # tied weights appear once
        if id(p) not in seen:
            seen.add(id(p))
            state[name] = p.detach()
    return state


def build_task_partner(
    recipe: str,
    init: str | Path,
    *,
    steps: int,
    lr: float,
    seed: int,
    group_size: int = GROUP_SIZE,
    beta: float = BETA,
    prompts_per_step: int = PROMPTS_PER_STEP,
    format_reward: bool = FORMAT_REWARD,
):
    """Train the ``rlvr`` or ``task_sft`` partner of the base in ``init`` on the base's task.
    Returns ``(model, tokenizer, record)``; the record has the held-out accuracy before and
    after, the training curve and the per-layer relative weight change."""
    from transformers import AutoModelForCausalLM

    task = task_record(init)
    train, held = split(task["split_seed"], task["heldout"])
    tokenizer = load_tokenizer(init)
    check_tokenizer(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)
    before_weights = copy.deepcopy(_state(model))
    before = heldout_accuracy(model, tokenizer, held)
    record: dict = {"task": task["name"], "prompts_per_step": prompts_per_step}
    if recipe == "rlvr":
        curve = train_rlvr(
            model,
            tokenizer,
            train,
            init_dir=init,
            steps=steps,
            lr=lr,
            seed=seed,
            group_size=group_size,
            beta=beta,
            prompts_per_step=prompts_per_step,
            format_reward=format_reward,
        )
        k = max(1, len(curve) // 10)
        record.update(
            algorithm="GRPO",
            group_size=group_size,
            beta=beta,
            format_reward=format_reward,
            reward_curve=curve,
            reward_first=sum(curve[:k]) / k if curve else None,
            reward_last=sum(curve[-k:]) / k if curve else None,
        )
        # trl's reload path must not leak into the saved model's config
        model.config._name_or_path = ""
    else:
        losses = train_task_sft(
            model,
            tokenizer,
            train,
            steps=steps,
            lr=lr,
            seed=seed,
            prompts_per_step=prompts_per_step,
        )
        record.update(
            algorithm="SFT",
            loss_curve=losses,
            first_loss=losses[0] if losses else None,
            last_loss=losses[-1] if losses else None,
        )
    after = heldout_accuracy(model, tokenizer, held)
    record.update(
        heldout_n=len(held),
        heldout_accuracy_before=before,
        heldout_accuracy=after,
        weight_change=relative_weight_change(before_weights, _state(model)),
    )
    log.info("%s on %s: held-out accuracy %.3f -> %.3f", recipe, task["name"], before, after)
    return model, tokenizer, record
