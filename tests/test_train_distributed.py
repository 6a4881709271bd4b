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
    logs = [
        [json.loads(x) for x in (tmp_path / d / "train_log.jsonl").read_text().splitlines()]
        for d in ("one", "two")
    ]
    for a, b in zip(*logs, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
    wa, wb = (
        load_file(tmp_path / "one/model.safetensors"),
        load_file(tmp_path / "two/model.safetensors"),
    )
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-3
