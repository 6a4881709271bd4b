"""Published embedding models (config key ``models.<key>.embedding_source``) replace training.

Local directories stand in for the authors' hub ids (``lucaswychan/<Backbone>-Reasoning-Embedding``):
one in the recipe's format, one declaring last-token pooling, pooled prompts, its own query
prompt and its transformer in a sub-directory (older sentence-transformers), so the detection of
a published model's own format is exercised end to end.
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from hrsa.errors import ModelError
from hrsa.models import load_backbone, read_embedding_format, resolve_embedding_model
from hrsa.train.embedding import pool_tokens, save_embedding_model

sys.path.insert(0, str(Path(__file__).parent))
from test_workflow import ROOT, run, small_config  # noqa: E402

OWN_PROMPT = "Represent this question: "


def write_published(
    backbone, out, *, pooling="mean", include_prompt=False, prompts=None, subfolder=False
):
    """A sentence-transformers directory built from a tiny backbone, declaring ``pooling``,
    ``include_prompt`` and ``prompts``; ``subfolder`` puts the transformer in 0_Transformer."""
    model, tokenizer = load_backbone(backbone, attention="bidirectional", device="cpu")
    out = Path(out)
    save_embedding_model(model, tokenizer, out)
    pooling_file = out / "1_Pooling" / "config.json"
    config = json.loads(pooling_file.read_text())
    config.update(pooling_mode=pooling, include_prompt=include_prompt)
    pooling_file.write_text(json.dumps(config))
    st_file = out / "config_sentence_transformers.json"
    st_config = json.loads(st_file.read_text())
    st_config["prompts"] = prompts or {"query": "", "document": ""}
    st_file.write_text(json.dumps(st_config))
    if subfolder:
        keep = {"modules.json", "config_sentence_transformers.json", "1_Pooling", "2_Normalize"}
        (out / "0_Transformer").mkdir()
        for path in list(out.iterdir()):
            if path.name not in keep | {"0_Transformer"}:
                shutil.move(str(path), str(out / "0_Transformer" / path.name))
        modules = json.loads((out / "modules.json").read_text())
        modules[0]["path"] = "0_Transformer"
        (out / "modules.json").write_text(json.dumps(modules))
    return out


@pytest.fixture(scope="module")
def own_format(tiny_models, tmp_path_factory):
    return write_published(
        tiny_models["reason"],
        tmp_path_factory.mktemp("published") / "own",
        pooling="lasttoken",
        include_prompt=True,
        prompts={"query": OWN_PROMPT, "document": ""},
        subfolder=True,
    )


def test_format_is_read_from_the_files(own_format, tiny_models, tmp_path):
    fmt = read_embedding_format(own_format)
    assert (fmt.pooling, fmt.include_prompt, fmt.normalize) == ("lasttoken", True, True)
    assert fmt.query_prompt == OWN_PROMPT and fmt.document_prompt == ""
    assert fmt.transformer_path == "0_Transformer" and fmt.declared
    assert len(fmt.differences()) == 4  # pooling, include_prompt, query prompt, sub-directory
    source, revision, _ = resolve_embedding_model(own_format, "ignored-for-local")
    assert source == str(own_format / "0_Transformer") and revision is None
    # the recipe's own checkpoint format: no difference; a backbone: the recipe assumed
    recipe = write_published(tiny_models["base"], tmp_path / "recipe")
    assert read_embedding_format(recipe).differences() == []
    assert not read_embedding_format(tiny_models["base"]).declared
    # older sentence-transformers: one boolean per mode
    legacy = tmp_path / "legacy"
    shutil.copytree(recipe, legacy)
    (legacy / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    )
    assert read_embedding_format(legacy).pooling == "cls"
    (legacy / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "weightedmean"}))
    with pytest.raises(ModelError, match="weightedmean"):
        read_embedding_format(legacy)


def test_pool_tokens_modes():
    hidden = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    torch.testing.assert_close(pool_tokens(hidden, mask, "lasttoken"), hidden[[0, 1], [1, 2]])
    torch.testing.assert_close(pool_tokens(hidden, mask, "cls"), hidden[:, 0])
    torch.testing.assert_close(pool_tokens(hidden, mask, "max"), hidden[[0, 1], [1, 2]])
    torch.testing.assert_close(pool_tokens(hidden, mask, "mean")[0], hidden[0, :2].mean(0))


def test_encoder_uses_the_declared_pooling_and_prompts(own_format):
    pytest.importorskip("mteb")
    from mteb.types import PromptType
    from sentence_transformers import SentenceTransformer

    from hrsa.evaluate.encoder import InstructionMeanPoolEncoder
    from hrsa.evaluate.instructions import Instructions
    from hrsa.evaluate.local_tasks import HRSAArithmeticRetrieval, HRSATopicSTS

    texts = ["market shares rise", "a b c d e", "the team won the final"]
    plain = InstructionMeanPoolEncoder(own_format, name="hrsa/own", max_length=64)
    ours = plain.encode(
        [{"text": texts}],
        task_metadata=HRSATopicSTS.metadata,
        hf_split="test",
        hf_subset="default",
    )
    # sentence-transformers' own route on the same directory: last token, normalised
    theirs = SentenceTransformer(str(own_format), device="cpu").encode(texts, batch_size=1)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # with instructions: queries get the model's own prompt (pooled), documents nothing
    model = InstructionMeanPoolEncoder(
        own_format, name="hrsa/own", instructions=Instructions(default="x"), max_length=64
    )
    meta = HRSAArithmeticRetrieval.metadata
    assert model.prefix(meta, "hard", PromptType.query) == (OWN_PROMPT, "{instruction}")
    assert model.prefix(meta, "hard", PromptType.document)[0] == ""
    got = model.encode(
        [{"text": texts}], task_metadata=meta, hf_split="test", hf_subset="hard",
        prompt_type=PromptType.query,
    )  # fmt: skip
    with_prompt = SentenceTransformer(str(own_format), device="cpu").encode(
        texts, prompt_name="query", batch_size=1
    )
    np.testing.assert_allclose(got, with_prompt, atol=1e-5)


PUBLISHED_IDS = {
    "qwen2.5-1.5b": "lucaswychan/Qwen2.5-1.5B-Reasoning-Embedding",
    "simplerl-zoo-qwen2.5-1.5b": "lucaswychan/Qwen-2.5-1.5B-SimpleRL-Zoo-Reasoning-Embedding",
}


def jobs(output, rule):
    """Outputs of the jobs of ``rule`` in a dry run's plan."""
    found, current = [], None
    for line in output.splitlines():
        if line.startswith(("rule ", "localrule ")):
            current = line.split()[1].rstrip(":")
        elif current == rule and line.strip().startswith("output:"):
            found.append(line.split("output:")[1].strip())
    return found


def test_paper_config_with_published_models_dry_runs_offline(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    for model, hub_id in PUBLISHED_IDS.items():
        cfg["models"][model]["embedding_source"] = {"source": hub_id, "revision": "main"}
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = run(tmp_path, "-n", "--configfile", str(path)).stdout
    prefetched = jobs(out, "prefetch_embedding")
    assert sorted(prefetched) == [f"results/prefetch/embeddings/{m}.json" for m in PUBLISHED_IDS]
    trained = jobs(out, "train_embedding")
    assert trained and not [t for t in trained if t.split("/")[2] in PUBLISHED_IDS]
    assert "results/activations/qwen2.5-1.5b/emb/cot" in out
    assert "results/hrsa/grpo-qwen2.5-1.5b/emb/cot/summary.json" in out
    assert "grpo-qwen2.5-1.5b/step" not in out and "figure5/grpo-qwen2.5-1.5b" not in out
    # evaluated once, under the first seed; the trained ones under every seed
    assert "results/mteb/qwen2.5-1.5b/emb/seed0/" in out
    assert "results/mteb/qwen2.5-1.5b/emb/seed1/" not in out
    assert "results/mteb/qwen2.5-0.5b/emb/seed2/" in out
    # `snakemake prefetch` downloads them
    out = run(tmp_path, "-n", "prefetch", "--configfile", str(path)).stdout
    assert sorted(jobs(out, "prefetch_embedding")) == sorted(prefetched)
    assert not (tmp_path / "results").exists()


@pytest.mark.slow(minutes=3)
def test_published_models_flow_through_extraction_hrsa_evaluation_and_table1(tmp_path):
    """tiny-base and tiny-rlvr get published embedding models (local directories): pair
    tiny-rlvr-grpo has two, tiny-sft-control one (tiny-sft is still trained)."""
    published = tmp_path / "published"
    from hrsa.tiny import build_tiny

    # the tokenizer of the config's tiny-base (seed 0, pre-trained with the task max3)
    build_tiny(published / "bb-base", recipe="base", seed=0, steps=3, task="max3")
    build_tiny(published / "bb-reason", recipe="reason", init=published / "bb-base", steps=3)
    recipe = write_published(published / "bb-base", published / "base-emb")
    own = write_published(
        published / "bb-reason",
        published / "reason-emb",
        pooling="lasttoken",
        include_prompt=True,
        prompts={"query": OWN_PROMPT, "document": ""},
        subfolder=True,
    )
    work = tmp_path / "work"
    work.mkdir()
    cfg = small_config(work)
    data = yaml.safe_load(cfg.read_text())
    data["models"]["tiny-base"]["embedding_source"] = {"source": str(recipe)}
    data["models"]["tiny-rlvr"]["embedding_source"] = {"source": str(own), "revision": None}
    data["training"].update(max_steps=6, save_every=3)
    data["training"]["lora"]["models"] = []  # LoRA needs the model trained
    data["hrsa"]["datasets"] = ["cot", "ag_news"]
    cfg.write_text(yaml.safe_dump(data))
    # the plan: only tiny-sft is trained; no snapshots of either pair (one member published)
    plan = run(work, "-n", "--configfile", str(cfg)).stdout
    assert jobs(plan, "train_embedding") == ["results/embeddings/tiny-sft/seed0"]
    assert "/step3/" not in plan and "prefetch_embedding" not in plan
    targets = [
        "results/mteb/table1.csv",
        "results/report/table1.md",
        *[f"results/hrsa/{p}/emb/cot/summary.json" for p in ("tiny-rlvr-grpo", "tiny-sft-control")],
        "results/hrsa/tiny-rlvr-grpo/emb/ag_news/probe.csv",
    ]
    run(work, *targets, "--cores", "2", "--configfile", str(cfg))
    res = work / "results"
    assert not (res / "embeddings" / "tiny-base").exists()
    assert not (res / "embeddings" / "tiny-rlvr").exists()
    assert (res / "embeddings" / "tiny-sft" / "seed0" / "config.json").is_file()
    manifest = json.loads((res / "activations/tiny-rlvr/emb/cot/manifest.json").read_text())
    assert manifest["source"] == str(own / "0_Transformer") and manifest["stage"] == "emb"
    summary = json.loads((res / "hrsa/tiny-rlvr-grpo/emb/cot/summary.json").read_text())
    assert 0 <= summary["headline"]["h_inv_final"]["value"] <= 1
    assert (res / "hrsa/tiny-sft-control/emb/cot/summary.json").is_file()
    for model in ("tiny-base", "tiny-rlvr", "tiny-sft"):
        scores = pd.read_csv(res / "mteb" / model / "emb" / "seed0" / "HRSA-Local.csv")
        assert (scores["status"] == "ok").all()
    log = (work / "logs/evaluate_mteb/tiny-rlvr/emb/seed0/HRSA-Local.log").read_text()
    assert "lasttoken" in log and "own prompt" in log and "differs from the training" in log
    table = pd.read_csv(res / "mteb" / "table1.csv").set_index("pair")
    assert table.loc["tiny-rlvr-grpo", "base_embedding"] == "published"
    assert table.loc["tiny-sft-control", "reasoning_embedding"] == "trained"
    assert table["delta_mean"].notna().all()
    assert "published checkpoint" in (res / "mteb" / "table1.md").read_text()
    report = (res / "report" / "table1.md").read_text()
    assert "†" in report and str(own) in report
