"""The prompts file: lookup order, template, and coverage of the configured benchmarks."""

from pathlib import Path

import pytest

from hrsa.errors import ConfigError
from hrsa.evaluate.instructions import DEFAULT_TEMPLATE, Instructions

PROMPTS = Path(__file__).resolve().parents[1] / "config" / "prompts.yaml"
LOCAL_TASKS = [
    "HRSAArithmeticRetrieval",
    "HRSATopicClassification",
    "HRSATopicClustering",
    "HRSATopicSTS",
]
BRIGHT_SUBSETS = (
    "biology earth_science economics psychology robotics stackoverflow sustainable_living pony "
    "leetcode aops theoremqa_theorems theoremqa_questions"
).split()


def test_lookup_order():
    ins = Instructions(
        default="D",
        task_types={"STS": "by type"},
        tasks={"T": "task", "M": {"x": "subset x", "default": "other subsets"}, "N": {"x": "nx"}},
    )
    assert ins.instruction("T", "STS", "any") == "task"
    assert ins.instruction("M", "STS", "x") == "subset x"
    assert ins.instruction("M", "STS", "y") == "other subsets"
    assert ins.instruction("N", "STS", "y") == "by type"  # no subset entry, no default: type
    assert ins.instruction("U", "STS") == "by type"
    assert ins.instruction("U", "Retrieval") == "D"
    assert ins.prefix("T") == "Instruct: task\nQuery: "
    assert Instructions().prefix("U") == ""  # no instruction at all: no template either


def test_template_must_hold_the_instruction():
    assert DEFAULT_TEMPLATE == "Instruct: {instruction}\nQuery: "
    with pytest.raises(ConfigError, match="instruction"):
        Instructions(template="Query: ")


def test_prompts_file_covers_local_tasks_and_bright(tmp_path):
    ins = Instructions.from_yaml(PROMPTS)
    assert ins.template == DEFAULT_TEMPLATE and ins.default
    for task in LOCAL_TASKS:
        assert task in ins.tasks
    instructions = {ins.instruction("BrightRetrieval", "Retrieval", s) for s in BRIGHT_SUBSETS}
    assert len(instructions) == len(BRIGHT_SUBSETS)  # one per domain
    bad = tmp_path / "p.yaml"
    bad.write_text("defualt: x\n")
    with pytest.raises(ConfigError, match="defualt"):
        Instructions.from_yaml(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        Instructions.from_yaml(tmp_path / "none.yaml")
