"""The contrastive training loop (paper Table 5), from one CPU process to FSDP on several GPUs.

What is reused and what is written here:

* The loss is sentence-transformers' ``CachedMultipleNegativesRankingLoss`` (GradCache: embed
  mini-batches without gradients, back-propagate the InfoNCE loss to the embeddings, re-embed
  each mini-batch with its random state replayed and push the cached gradients through) or, with
  ``gradient_cache: false``, the plain ``MultipleNegativesRankingLoss``. Both compute the paper's
  loss: each query against the positives and hard negatives of every query in the global batch
  (no query-query terms), scale = 1 / temperature, gathered across processes *with* gradients
  (``gather_across_devices``) so the loss equals the single-process loss on the whole batch.
* The model handed to the loss is :class:`~hrsa.train.embedding.MeanPoolEmbedder`, not a
  ``SentenceTransformer``: its pooling mask drops the instruction's tokens per row (ST's pooling
  takes one prompt length per batch, which is wrong when byte-level BPE merges the template's
  trailing space into the query) and its position ids make padding side irrelevant.
* The loop is ours rather than ``SentenceTransformerTrainer``'s because the contract needs things
  that trainer does not do: snapshots in the final checkpoint format under
  ``checkpoints/step{N}``, bit-exact resumption from a deterministic single-source batch schedule,
  an atomic final directory, and the behavioural bidirectional-attention check before step 1.
  ``accelerate`` provides the process group, DDP/FSDP wrapping, bf16 autocast and resumable state.

fp32 master weights: the backbone is loaded in fp32; on GPU the forward runs under bf16 autocast
(``mixed_precision``), pooling, similarities and the loss stay in fp32.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import resource
import shutil
import time
from pathlib import Path

import torch

from ..data.contrastive import group_by_source, read_examples, validate_examples
from ..errors import HRSAError, ModelError, config_error
from ..locks import FileLock
from .batches import batch_schedule, collate, local_slice
from .config import TrainConfig, snapshot_steps
from .embedding import MeanPoolEmbedder, save_embedding_model
from .lora import base_model, merged_state_dict, parameter_counts

log = logging.getLogger("hrsa.train")

STATE_DIR = "state"  # resumable state inside the work directory
SUMMARY = "training_summary.json"
TRAIN_LOG = "train_log.jsonl"


class TrainingInterrupted(HRSAError):
    """Raised by ``interrupt_after`` (a testing aid that simulates a killed job)."""


def work_dir_for(out_dir: str | os.PathLike) -> Path:
    """Where a run trains and keeps its resumable state: ``<out_dir>.work`` next to the output."""
    out = Path(out_dir)
    return out.with_name(out.name + ".work")


def build_loss(embedder, cfg: TrainConfig, *, gather: bool = False):
    """The InfoNCE loss over in-batch and hard negatives, cached (GradCache) or not."""
    from sentence_transformers.sentence_transformer import losses

    scale = 1.0 / cfg.temperature
    if cfg.gradient_cache:
        return losses.CachedMultipleNegativesRankingLoss(
            embedder, scale=scale, mini_batch_size=cfg.mini_batch_size, gather_across_devices=gather
        )
    return losses.MultipleNegativesRankingLoss(embedder, scale=scale, gather_across_devices=gather)


def use_model_in_loss(loss, model) -> None:
    """Point a loss (and the loss it wraps) at a DDP/FSDP-wrapped model."""
    loss.model = model
    inner = getattr(loss, "loss", None)
    if inner is not None and hasattr(inner, "model"):
        inner.model = model


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups as the Hugging Face Trainer forms them: no decay on biases and norm weights."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lowered = name.lower()
        (no_decay if lowered.endswith("bias") or "norm" in lowered else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _layer_classes(source: str, revision: str | None, cfg: TrainConfig) -> list[str]:
    if cfg.fsdp_layer_classes:
        return list(cfg.fsdp_layer_classes)
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(source, revision=revision)
    model_class = AutoModel._model_mapping[type(config)]
    classes = list(getattr(model_class, "_no_split_modules", None) or [])
    if not classes:
        raise config_error(
            "training.fsdp_layer_classes",
            f"cannot tell the decoder layer class of {source!r}; name it "
            "(e.g. [Qwen2DecoderLayer])",
        )
    return classes


def make_accelerator(cfg: TrainConfig, source: str, revision: str | None = None):
    """An ``Accelerator`` for the recipe: CPU or GPU, bf16 autocast on GPU, FSDP if asked."""
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    mixed = cfg.mixed_precision
    if mixed == "auto":
        mixed = "bf16" if cuda else "no"
    kwargs = {}
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if cfg.fsdp and distributed:
        from accelerate.utils import FullyShardedDataParallelPlugin

        kwargs["fsdp_plugin"] = FullyShardedDataParallelPlugin(
            # FSDP2 (torch's fully_shard): the same code on GPUs and on CPU processes over gloo,
            # where FSDP1 refuses a CPU compute device; reshard after forward = FULL_SHARD
            fsdp_version=2,
            reshard_after_forward=True,
            auto_wrap_policy="transformer_based_wrap",
            transformer_cls_names_to_wrap=_layer_classes(source, revision, cfg),
            state_dict_type="SHARDED_STATE_DICT",
            # every rank loads the same weights from disk, so syncing them is only a safeguard;
            # accelerate can sync on an accelerator only (it refuses on CPU, as in the rehearsal)
            sync_module_states=cuda,
            activation_checkpointing=False,  # the model's own gradient checkpointing is used
        )
    elif cfg.fsdp:
        log.warning("training.fsdp is set but this is a single process: training without FSDP")
    from accelerate.state import AcceleratorState

    # accelerate keeps one global state per process; a second run in the same process (tests, a
    # notebook) with other settings would be refused. The process group itself is kept.
    AcceleratorState._reset_state()
    accelerator = Accelerator(cpu=not cuda, mixed_precision=mixed, **kwargs)
    if "fsdp_plugin" in kwargs and not cuda:
        # accelerate switches to FSDP only for accelerator devices and silently trains CPU
        # processes with DDP instead. torch's FSDP itself runs on CPU over gloo, so the state is
        # set to FSDP by hand: the CPU rehearsal of paper.yaml then runs the same wrapping,
        # sharded state and state-dict gathering as a GPU job (training_summary.json records
        # the distributed type that actually ran).
        from accelerate.utils import DistributedType

        plugin = kwargs["fsdp_plugin"]
        if mixed != "no":
            plugin.set_mixed_precision(mixed)
        from accelerate.state import PartialState

        # AcceleratorState copies PartialState's fields whenever it is instantiated again
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = plugin
    return accelerator


def _fingerprint(source, revision, data_sha, cfg: TrainConfig, world_size: int) -> str:
    record = {
        "source": str(source),
        "revision": revision,
        "data": data_sha,
        "config": cfg.to_dict(),
        "world_size": world_size,
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link (or copy, across file systems) every file of ``src`` into ``dst``."""
    for path in src.rglob("*"):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


class TrainingRun:
    """One run of :func:`train_embedding_model`, section by section.

    :meth:`run` calls, in order: :meth:`load_data` (everything checkable before a model is
    loaded), :meth:`set_up` (accelerator, seed), :meth:`load_model`, :meth:`set_up_optimizer`,
    :meth:`resume`, :meth:`train_steps` (which saves with :meth:`save_snapshot` and
    :meth:`save_state`) and :meth:`finish` (the final directory and its summary).
    """

    def __init__(
        self,
        backbone: str | os.PathLike,
        data: str | os.PathLike,
        out_dir: str | os.PathLike,
        config: TrainConfig | dict | None = None,
        *,
        revision: str | None = None,
        model_key: str | None = None,
        interrupt_after: int | None = None,
    ) -> None:
        self.cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_mapping(config)
        self.started = time.time()
        self.source = str(backbone)
        self.out_dir, self.data = Path(out_dir), Path(data)
        self.work = work_dir_for(self.out_dir)
        self.state_dir, self.log_path = self.work / STATE_DIR, self.work / TRAIN_LOG
        self.revision = revision
        self.model_key = model_key
        self.interrupt_after = interrupt_after
        self.start_step = 0

    def run(self) -> dict:
        """Train, save and return the summary (every process returns it).

        The main process holds an exclusive lock on the work directory
        (``<out_dir>.work.lock``, :mod:`hrsa.locks`) from before the model is loaded until the
        output is in place: a second trainer of the same output (an orphaned job still running
        after Snakemake was killed, and the rerun) fails fast naming the holder's pid and host,
        and the first completes with its output intact."""
        self.load_data()
        self.set_up()
        lock = None
        if self.main:
            self.work.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(self.work.with_name(self.work.name + ".lock"), self.work).acquire()
        try:
            self.load_model()
            self.set_up_optimizer()
            self.resume()
            self.train_steps()
            return self.finish()
        finally:
            if lock is not None:
                lock.release()

    # ---- everything that can be checked before a model is loaded ----

    def load_data(self) -> None:
        """Read and validate the examples, group them by source and plan the batches."""
        cfg = self.cfg
        self.examples = read_examples(self.data)
        validate_examples(self.examples, num_negatives=cfg.num_negatives, where=str(self.data))
        self.groups = group_by_source(self.examples)
        self.schedule = batch_schedule(
            {s: len(g) for s, g in self.groups.items()},
            global_batch_size=cfg.global_batch_size,
            max_steps=cfg.max_steps,
            seed=cfg.seed,
        )
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if cfg.global_batch_size % world_size:
            raise config_error(
                "training.global_batch_size",
                f"{cfg.global_batch_size} is not divisible by the {world_size} processes "
                "(training.gpus)",
            )

    def set_up(self) -> None:
        """The accelerator, this process's place in it, the run's fingerprint and the seed."""
        cfg = self.cfg
        self.accelerator = accelerator = make_accelerator(cfg, self.source, self.revision)
        self.rank, self.world_size = accelerator.process_index, accelerator.num_processes
        self.main = accelerator.is_main_process
        self.fingerprint = _fingerprint(
            self.source, self.revision, _sha256(self.data), cfg, self.world_size
        )

        from accelerate.utils import set_seed

        set_seed(cfg.seed)

    # ---- model: fp32 master weights, attention mode applied and verified ----

    def load_model(self) -> None:
        """The backbone in fp32 with its attention mode verified, wrapped for mean pooling."""
        from ..models import attention_is_bidirectional, load_backbone

        cfg, source = self.cfg, self.source
        model, self.tokenizer = load_backbone(
            source, revision=self.revision, dtype="float32", attention=cfg.attention, device="cpu"
        )
        self.bidirectional = bidirectional = attention_is_bidirectional(model)
        if bidirectional != (cfg.attention == "bidirectional"):
            raise ModelError(f"{source}: attention is not {cfg.attention} before training")
        log.info(
            "%s: %s attention verified (changing a later token changes an earlier one: %s)",
            source,
            cfg.attention,
            bidirectional,
        )
        if cfg.gradient_checkpointing:
            enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5.2x
            if enable is not None:
                enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(
                    gradient_checkpointing_kwargs={"use_reentrant": False}
                )
        model.train()
        self.model = model
        if cfg.adapter is not None:  # a LoRA target: only the adapters train (Table 6)
            from .lora import add_adapter

            model = add_adapter(model, cfg.adapter)
            log.info("LoRA adapters %s: %s", cfg.adapter, parameter_counts(model))
        self.embedder = MeanPoolEmbedder(model)

    def set_up_optimizer(self) -> None:
        """AdamW, the cosine schedule and the loss, prepared by the accelerator."""
        cfg, accelerator = self.cfg, self.accelerator
        optimizer = torch.optim.AdamW(
            parameter_groups(self.embedder, cfg.weight_decay), lr=cfg.learning_rate
        )
        from transformers import get_cosine_schedule_with_warmup

        self.scheduler = get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.max_steps)
        # together: FSDP2 swaps the optimizer's parameters for the sharded ones
        self.embedder, self.optimizer = accelerator.prepare(self.embedder, optimizer)
        # The scheduler is stepped by hand once per global step (accelerate would step it once per
        # process); registering it puts it into the saved state.
        accelerator.register_for_checkpointing(self.scheduler)
        self.loss_fn = build_loss(
            accelerator.unwrap_model(self.embedder), cfg, gather=self.world_size > 1
        )
        use_model_in_loss(self.loss_fn, self.embedder)

    # ---- resume ----

    def resume(self) -> int:
        """Load the saved state of the same run, if any, and prepare the work directory.

        Returns (and keeps as ``start_step``) the step to resume after, 0 for a fresh start.
        """
        accelerator, work, log_path = self.accelerator, self.work, self.log_path
        start_step = 0
        state_file = self.state_dir / "trainer_state.json"
        if state_file.is_file():
            saved = json.loads(state_file.read_text())
            if saved.get("fingerprint") == self.fingerprint:
                accelerator.load_state(str(self.state_dir))
                start_step = int(saved["step"])
                log.info("resuming %s from step %d", work, start_step)
            else:
                log.warning(
                    "%s holds state from a different run (config, data or model changed): "
                    "starting afresh",
                    work,
                )
        accelerator.wait_for_everyone()
        if self.main:
            if start_step == 0 and work.exists():
                shutil.rmtree(work)
            work.mkdir(parents=True, exist_ok=True)
            if log_path.exists():  # drop steps logged after the state we resumed from
                kept = [
                    line
                    for line in log_path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= start_step
                ]
                log_path.write_text("".join(line + "\n" for line in kept))
        accelerator.wait_for_everyone()
        self.start_step = start_step
        return start_step

    # ---- the loop ----

    def train_steps(self) -> None:
        """The steps after ``start_step``: snapshots and state saved as the config says."""
        cfg, accelerator = self.cfg, self.accelerator
        self.snapshots = snapshot_steps(cfg.max_steps, cfg.save_every)
        self.save_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(
            cfg.save_dtype, torch.bfloat16 if accelerator.device.type == "cuda" else torch.float32
        )
        self.unwrapped = accelerator.unwrap_model(self.embedder)
        self.params = [p for p in self.embedder.parameters() if p.requires_grad]
        self.device = accelerator.device
        for batch in self.schedule[self.start_step :]:
            step = batch.step
            self.train_step(batch)
            if step in self.snapshots:
                self.save_snapshot(step)
                if step < cfg.max_steps:
                    self.save_state(step)
            if self.interrupt_after is not None and step == self.interrupt_after:
                raise TrainingInterrupted(f"interrupted after step {step} (interrupt_after)")

    def train_step(self, batch) -> None:
        """One optimizer step on this process's slice of ``batch``, logged."""
        cfg, accelerator, device = self.cfg, self.accelerator, self.device
        step = batch.step
        local = [
            self.groups[batch.source][i] for i in local_slice(batch, self.rank, self.world_size)
        ]
        features = collate(
            local,
            self.tokenizer,
            num_negatives=cfg.num_negatives,
            template=cfg.instruction_template,
            max_length=cfg.max_length,
            exclude_instruction=cfg.exclude_instruction_from_pool,
        )
        features = [{k: v.to(device) for k, v in f.items()} for f in features]
        lr = self.scheduler.get_last_lr()[0]
        loss = self.loss_fn(features, None)
        accelerator.backward(loss)
        grad_norm = None
        if cfg.max_grad_norm is not None:
            grad_norm = float(accelerator.clip_grad_norm_(self.params, cfg.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        mean_loss = float(accelerator.reduce(loss.detach().float(), reduction="mean"))
        if not math.isfinite(mean_loss):
            raise ModelError(f"training loss is {mean_loss} at step {step}")
        if self.main:
            with open(self.log_path, "a") as fh:
                fh.write(
                    json.dumps(
                        {
                            "step": step,
                            "loss": mean_loss,
                            "lr": lr,
                            "grad_norm": grad_norm,
                            "source": batch.source,
                            "elapsed_s": round(time.time() - self.started, 3),
                        }
                    )
                    + "\n"
                )
        if step % 10 == 0 or step == cfg.max_steps:
            log.info(
                "step %d/%d loss %.4f lr %.3g (%s)",
                step,
                cfg.max_steps,
                mean_loss,
                lr,
                batch.source,
            )

    # ---- saving ----

    def save_snapshot(self, step: int) -> None:
        """The model at ``step`` in the final format, as ``checkpoints/step{step}``."""
        accelerator = self.accelerator
        # all ranks (FSDP gathers to rank 0)
        state_dict = accelerator.get_state_dict(self.embedder)
        if self.main:
            state_dict = {k.removeprefix("backbone."): v for k, v in state_dict.items()}
            if self.cfg.adapter is not None:  # saved merged: loads like a full model
                state_dict = merged_state_dict(self.unwrapped.backbone, state_dict)
            target = self.work / "checkpoints" / f"step{step}"
            tmp = target.with_name(target.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            save_embedding_model(
                base_model(self.unwrapped.backbone),
                self.tokenizer,
                tmp,
                state_dict=state_dict,
                dtype=self.save_dtype,
                include_prompt=not self.cfg.exclude_instruction_from_pool,
                bidirectional=self.cfg.attention == "bidirectional",
            )
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
        accelerator.wait_for_everyone()

    def save_state(self, step: int) -> None:
        """The resumable state after ``step`` (accelerate's, plus the step and fingerprint)."""
        accelerator, main = self.accelerator, self.main
        tmp = self.work / (STATE_DIR + ".tmp")
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if main:
            (tmp / "trainer_state.json").write_text(
                json.dumps({"step": step, "fingerprint": self.fingerprint})
            )
            shutil.rmtree(self.state_dir, ignore_errors=True)
            os.replace(tmp, self.state_dir)
        accelerator.wait_for_everyone()

    # ---- final directory ----

    def summary(self) -> dict:
        """The run's ``training_summary.json`` (main process, after the last step)."""
        cfg, accelerator, model = self.cfg, self.accelerator, self.model
        records = [
            json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()
        ]
        losses = [r["loss"] for r in records]
        k = max(1, min(5, len(losses) // 4))
        return {
            "model": self.model_key,
            "backbone": self.source,
            "revision": self.revision,
            "seed": cfg.seed,
            "data": str(self.data),
            "data_sha256": _sha256(self.data),
            "examples": len(self.examples),
            "examples_per_source": {s: len(g) for s, g in self.groups.items()},
            "steps": cfg.max_steps,
            "snapshots": self.snapshots,
            "world_size": self.world_size,
            "device": str(self.device),
            "first_loss": losses[0],
            "last_loss": losses[-1],
            "mean_loss_first": sum(losses[:k]) / k,
            "mean_loss_last": sum(losses[-k:]) / k,
            "attention_bidirectional_verified": self.bidirectional,
            # what actually ran (the rehearsal of paper.yaml asserts these)
            "distributed_type": str(accelerator.distributed_type).rsplit(".", 1)[-1],
            "mixed_precision": str(accelerator.mixed_precision),
            "gradient_checkpointing": bool(
                model.is_activation_checkpointing  # transformers >= 5.2x
                if hasattr(model, "is_activation_checkpointing")
                else getattr(model, "is_gradient_checkpointing", False)
            ),
            "save_dtype": str(self.save_dtype).removeprefix("torch."),
            "peak_memory_mb": _peak_memory_mb(self.device),
            "resumed_from_step": self.start_step,
            "lora": cfg.adapter,
            **parameter_counts(self.unwrapped),
            "wall_seconds_this_run": round(time.time() - self.started, 2),
            "config": cfg.to_dict(),
        }

    def finish(self) -> dict:
        """Turn the work directory into ``out_dir`` (the last snapshot at its top, the summary
        beside it, no resumable state) atomically; every process returns the summary."""
        work, out_dir = self.work, self.out_dir
        summary = None
        if self.main:
            summary = self.summary()
            _link_tree(work / "checkpoints" / f"step{self.cfg.max_steps}", work)
            (work / SUMMARY).write_text(json.dumps(summary, indent=2))
            shutil.rmtree(self.state_dir, ignore_errors=True)
            if out_dir.exists():
                shutil.rmtree(out_dir)
            os.replace(work, out_dir)
            log.info(
                "trained %s -> %s: loss %.4f -> %.4f",
                self.source,
                out_dir,
                summary["mean_loss_first"],
                summary["mean_loss_last"],
            )
        self.accelerator.wait_for_everyone()
        if summary is None:
            summary = json.loads((out_dir / SUMMARY).read_text())
        return summary


def train_embedding_model(
    backbone: str | os.PathLike,
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig | dict | None = None,
    *,
    revision: str | None = None,
    model_key: str | None = None,
    interrupt_after: int | None = None,
) -> dict:
    """Train ``backbone`` into an embedding model on the examples in ``data`` (JSONL/parquet).

    Trains in ``<out_dir>.work`` (snapshots, ``train_log.jsonl``, resumable state) and renames it
    to ``out_dir`` when done; a rerun after a kill resumes from the latest saved step. Run it in
    one process, or in several under ``accelerate launch`` (one per GPU). Returns the summary.
    The sections of a run are the methods of :class:`TrainingRun`.
    """
    return TrainingRun(
        backbone,
        data,
        out_dir,
        config,
        revision=revision,
        model_key=model_key,
        interrupt_after=interrupt_after,
    ).run()
