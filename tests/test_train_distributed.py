"""Two CPU processes (gloo) give the loss and gradients of one process on the whole batch."""

import json
import os

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from hrsa.data.contrastive import synthetic_examples, write_examples
from hrsa.train import TrainConfig, launch, train_embedding_model

TEMPLATE = "Instruct: {instruction}\nQuery: "


def _load(model_dir):
    from hrsa.models import load_backbone

    model, tok = load_backbone(model_dir, dtype="float32", device="cpu")
    return model.train(), tok


def _loss_and_grads(model, tok, examples, cached, *, ddp=False):
    """Loss and gradients of the recipe's loss on ``examples`` (this process's share)."""
    from torch.nn.parallel import DistributedDataParallel

    from hrsa.train import MeanPoolEmbedder, build_loss
    from hrsa.train.batches import collate
    from hrsa.train.trainer import use_model_in_loss

    model.zero_grad(set_to_none=True)
    embedder = MeanPoolEmbedder(model)
    cfg = TrainConfig(gradient_cache=cached, mini_batch_size=3)
    loss_fn = build_loss(embedder, cfg, gather=ddp)
    if ddp:
        use_model_in_loss(loss_fn, DistributedDataParallel(embedder))
    features = collate(
        examples, tok, num_negatives=3, template=TEMPLATE, max_length=40, exclude_instruction=True
    )
    loss = loss_fn(features, None)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def _worker(rank, world, port, model_dir, examples, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        per = len(examples) // world
        model, tok = _load(model_dir)
        results = {}
        for cached in (False, True):
            loss, grads = _loss_and_grads(
                model, tok, examples[rank * per : (rank + 1) * per], cached, ddp=True
            )
            torch.distributed.all_reduce(loss)  # each process holds the mean over its queries
            results[cached] = (loss / world, grads)  # DDP has averaged the gradients
        torch.save(results, f"{out_dir}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_processes_match_one_process(tiny_models, tmp_path):
    from hrsa.train.launch import _free_port

    examples = [e for e in synthetic_examples(8, seed=1) if e.source == "synthetic_claims"]
    mp.spawn(
        _worker,
        args=(2, _free_port(), str(tiny_models["base"]), examples, str(tmp_path)),
        nprocs=2,
        join=True,
    )
    model, tok = _load(tiny_models["base"])
    for cached in (False, True):
        loss_1, grads_1 = _loss_and_grads(model, tok, examples, cached)
        for rank in (0, 1):
            loss_2, grads_2 = torch.load(tmp_path / f"rank{rank}.pt")[cached]
            assert float(loss_2) == pytest.approx(float(loss_1), rel=1e-5)
            assert grads_2.keys() == grads_1.keys()
            for name, g in grads_1.items():
                torch.testing.assert_close(grads_2[name], g, atol=1e-6, rtol=1e-4, msg=name)


def test_launch_with_two_processes_matches_one(tiny_models, tmp_path):
    """The workflow's path: `launch` starts torch.distributed.run (accelerate on CPU, gloo)."""
    data = tmp_path / "train.jsonl"
    write_examples(synthetic_examples(16, seed=0), data)
    config = dict(global_batch_size=8, mini_batch_size=2, max_steps=2, save_every=2, max_length=32)
    one = train_embedding_model(tiny_models["base"], data, tmp_path / "one", config)
    two = launch(
        backbone=str(tiny_models["base"]),
        data=str(data),
        out_dir=str(tmp_path / "two"),
        config=config,
        num_processes=2,
    )
    assert two["world_size"] == 2 and one["world_size"] == 1
    _assert_same_training(tmp_path / "one", tmp_path / "two", ["."])


def _assert_same_training(dir_a, dir_b, model_dirs):
    """Same losses and gradient norms at every step, and the same weights in ``model_dirs``."""
    logs = [
        [json.loads(x) for x in (d / "train_log.jsonl").read_text().splitlines()]
        for d in (dir_a, dir_b)
    ]
    for a, b in zip(*logs, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
    for sub in model_dirs:
        wa = load_file(dir_a / sub / "model.safetensors")
        wb = load_file(dir_b / sub / "model.safetensors")
        assert wa.keys() == wb.keys()
        assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-3


def test_fsdp_with_checkpointing_on_two_cpu_processes_matches_one_process(tiny_models, tmp_path):
    """paper.yaml's path (FSDP + gradient checkpointing over 2 processes) trains the same model
    as one plain process: FSDP really shards (the summary says so) and changes no number."""
    data = tmp_path / "train.jsonl"
    write_examples(synthetic_examples(16, seed=0), data)
    config = dict(global_batch_size=8, mini_batch_size=2, max_steps=2, save_every=1, max_length=32)
    one = train_embedding_model(tiny_models["base"], data, tmp_path / "one", config)
    fsdp = launch(
        backbone=str(tiny_models["base"]),
        data=str(data),
        out_dir=str(tmp_path / "fsdp"),
        config={**config, "fsdp": True, "gradient_checkpointing": True},
        num_processes=2,
    )
    assert one["distributed_type"] == "NO"
    assert fsdp["distributed_type"] == "FSDP" and fsdp["world_size"] == 2
    assert fsdp["gradient_checkpointing"] is True
    # every snapshot is gathered from the shards into one loadable model
    _assert_same_training(
        tmp_path / "one", tmp_path / "fsdp", [".", "checkpoints/step1", "checkpoints/step2"]
    )


def test_bf16_autocast_on_cpu_is_used_when_asked(tiny_models, tmp_path):
    """mixed_precision: bf16 (paper.yaml) runs on CPU too; the loss moves off the fp32 one."""
    data = tmp_path / "train.jsonl"
    write_examples(synthetic_examples(16, seed=0), data)
    config = dict(global_batch_size=8, mini_batch_size=4, max_steps=1, save_every=1, max_length=32)
    fp32 = train_embedding_model(tiny_models["base"], data, tmp_path / "fp32", config)
    bf16 = train_embedding_model(
        tiny_models["base"], data, tmp_path / "bf16", {**config, "mixed_precision": "bf16"}
    )
    assert (fp32["mixed_precision"], bf16["mixed_precision"]) == ("no", "bf16")
    assert bf16["first_loss"] == pytest.approx(fp32["first_loss"], rel=0.05)
    assert bf16["first_loss"] != fp32["first_loss"]
