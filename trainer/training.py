"""``fit``: fine-tune a Stable Diffusion pipeline on image-report pairs.

Reads top to bottom like diffusers' example scripts: accelerator, load, freeze, data,
optimizer, resume, loop, save. Reusable pieces live in the modules beside this one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import InitProcessGroupKwargs, ProjectConfiguration, set_seed
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.models.attention_processor import AttnProcessor2_0
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel, cast_training_params
from tqdm.auto import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from trainer.base_model import resolve_base_model
from trainer.checkpoints import (
    checkpoint_trainable_weights_only,
    find_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from trainer.config import ConfigError, FitConfig
from trainer.data import (
    EpochShuffleSampler,
    Ranks,
    TrainingExamples,
    collate_examples,
    default_workers,
    prepare_training_data,
)
from trainer.errors import TrainerError
from trainer.heldout import held_out_loss, prepare_held_out
from trainer.inference import Inference, load_for_inference, resolve_inference
from trainer.lora import add_lora_adapter, merge_lora_into_pipeline, save_lora_adapter
from trainer.loss_curve import append_metrics, draw_loss_curve, read_metrics, truncate_metrics
from trainer.manifest import read_manifest
from trainer.objective import batch_latents, batch_text_states, diffusion_loss
from trainer.phi import ScrubCounts, scrub_records, scrub_texts
from trainer.pipeline_files import NO_SAFETY_CHECKER, save_pipeline
from trainer.run_summary import base_info, dataset_info, peak_memory_bytes, write_json
from trainer.tokenizer import copy_tokenizer_vocab_files
from trainer.validation import choose_validation_prompts, held_out_records, write_validation_grid

logger = logging.getLogger(__name__)
WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class NonFiniteLossError(TrainerError):
    """The loss became NaN or infinite: the run stopped before that step changed anything."""


@dataclass
class FitResult:
    """Where the run's outputs are and how it went."""

    output_dir: Path
    pipeline_dir: Path
    lora_dir: Path | None
    global_step: int
    losses: list[float] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def batch_generator(seed: int, epoch: int, batch_index: int, process: int) -> torch.Generator:
    """Randomness for one batch, from its position alone: a resumed run draws the same."""
    return torch.Generator().manual_seed(
        ((seed * 1_000_003 + epoch) * 1_000_003 + batch_index) * 131 + process
    )


def fit(config: FitConfig, *, on_step: Callable[[int, float], None] | None = None) -> FitResult:
    """Fine-tune per ``config``; write checkpoints, curves, samples and the final pipeline."""
    output = config.output_dir
    output.mkdir(parents=True, exist_ok=True)
    _check_tracker(config.report_to)

    # Accelerator: mixed precision, gradient accumulation, one process per GPU.
    _allow_new_precision(config.mixed_precision)
    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=config.mixed_precision,
        log_with=config.report_to,
        project_config=ProjectConfiguration(
            project_dir=str(output), logging_dir=str(output / "logs")
        ),
        kwargs_handlers=[
            InitProcessGroupKwargs(timeout=timedelta(minutes=config.distributed_timeout_minutes))
        ],
    )
    set_seed(config.seed)
    weight_dtype = WEIGHT_DTYPES[config.mixed_precision]
    if accelerator.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    resume_from = find_checkpoint(output, config.resume_from_checkpoint)
    if resume_from is None and list_checkpoints(output):
        raise ConfigError(
            f"{output} already has checkpoints: resume with 'latest' or use a new folder"
        )

    # Load the base pipeline's parts (a registry base is pulled once, by the main process).
    with accelerator.main_process_first():
        base = resolve_base_model(config.base)
    tokenizer = CLIPTokenizer.from_pretrained(base.path, subfolder="tokenizer")
    noise_scheduler = DDPMScheduler.from_pretrained(base.path, subfolder="scheduler")
    text_encoder = CLIPTextModel.from_pretrained(base.path, subfolder="text_encoder")
    vae = AutoencoderKL.from_pretrained(base.path, subfolder="vae")
    unet = UNet2DConditionModel.from_pretrained(base.path, subfolder="unet")
    config, warnings = _resolve_resolution(config, unet, vae)
    for warning in warnings if accelerator.is_main_process else []:
        logger.warning(warning)

    # Freeze what is not trained; attach LoRA; keep trainable weights in fp32.
    vae.requires_grad_(False)
    text_encoder.requires_grad_(config.train_text_encoder)
    unet.set_attn_processor(AttnProcessor2_0())  # PyTorch SDPA kernels
    if config.mode == "lora":
        _place(unet, accelerator.device, weight_dtype)
        add_lora_adapter(unet, rank=config.lora_rank, alpha=config.lora_alpha)
        cast_training_params(unet, dtype=torch.float32)
        checkpoint_trainable_weights_only(accelerator)
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        if config.train_text_encoder:
            # transformers 5 renamed it; 4.x only has the old name
            enable = getattr(text_encoder, "activation_checkpointing_enable", None)
            (enable or text_encoder.gradient_checkpointing_enable)()
    # from_pretrained returns eval mode: dropout and transformers' checkpointing need train.
    unet.train()
    text_encoder.train(config.train_text_encoder)
    _place(vae, accelerator.device, weight_dtype)
    if not config.train_text_encoder:
        _place(text_encoder, accelerator.device, weight_dtype)
    unet_params = [p for p in unet.parameters() if p.requires_grad]
    text_params = list(text_encoder.parameters()) if config.train_text_encoder else []
    ema = EMAModel(unet_params + text_params, decay=config.ema_decay) if config.use_ema else None

    # Data: scrub report texts; check every image once; cache latents and text embeddings,
    # each rank its share of the chunks.
    manifest = read_manifest(config.train_manifest)
    scrub = ScrubCounts()
    if config.scrub_phi:
        manifest.records, emptied, scrub = scrub_records(manifest.records)
        for record in emptied:
            manifest.skipped["empty text after PHI scrub"] += 1
            manifest.skipped_rows.append(
                {"image": str(record.image), "reason": "empty text after PHI scrub"}
            )
    records = manifest.select("train")[: config.max_train_samples]
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes))
    ranks = Ranks(
        accelerator.process_index,
        accelerator.num_processes,
        local_processes,
        accelerator.wait_for_everyone,
    )
    data = prepare_training_data(
        records,
        tokenizer=tokenizer,
        vae=vae,
        text_encoder=text_encoder,
        resolution=config.resolution,
        cache_dir=output / "cache",
        cache_latents=config.cache_latents,
        cache_text=config.caches_text,
        chunk_size=config.cache_chunk_size,
        workers=(
            default_workers(local_processes)
            if config.cache_num_workers is None
            else config.cache_num_workers
        ),
        ranks=ranks,
    )
    held_out_source = held_out_records(manifest, config.validation_manifest)
    if config.scrub_phi and config.validation_manifest:
        held_out_source = scrub_records(held_out_source)[0]
    held_out = None
    if accelerator.is_main_process and config.validation_loss_samples > 0:
        held_out = prepare_held_out(
            held_out_source,
            tokenizer=tokenizer,
            vae=vae,
            resolution=config.resolution,
            limit=config.validation_loss_samples,
        )
    dataloader = torch.utils.data.DataLoader(
        TrainingExamples(data, config.resolution),
        batch_size=config.train_batch_size,
        sampler=EpochShuffleSampler(len(data.records), config.seed),
        collate_fn=collate_examples,
        num_workers=config.dataloader_num_workers,
    )

    # Optimizer and learning-rate schedule.
    optimizer_class = _adamw_class(config.use_8bit_adam)
    groups = [{"params": unet_params, "lr": config.learning_rate}]
    if text_params:
        groups.append(
            {"params": text_params, "lr": config.text_encoder_learning_rate or config.learning_rate}
        )
    optimizer = optimizer_class(
        groups,
        betas=(config.adam_beta1, config.adam_beta2),
        weight_decay=config.adam_weight_decay,
        eps=config.adam_epsilon,
    )
    lr_scheduler = get_scheduler(
        config.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=config.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=config.max_train_steps * accelerator.num_processes,
    )
    if config.train_text_encoder:
        unet, text_encoder, optimizer, dataloader, lr_scheduler = accelerator.prepare(
            unet, text_encoder, optimizer, dataloader, lr_scheduler
        )
    else:
        unet, optimizer, dataloader, lr_scheduler = accelerator.prepare(
            unet, optimizer, dataloader, lr_scheduler
        )
    trained = [unet, text_encoder] if config.train_text_encoder else [unet]
    updates_per_epoch = math.ceil(len(dataloader) / config.gradient_accumulation_steps)
    epochs = math.ceil(config.max_train_steps / updates_per_epoch)

    # Resume: restore state, forget the loss rows that will be trained again.
    global_step = 0
    if resume_from is not None:
        global_step = load_checkpoint(accelerator, resume_from, ema=ema)
        truncate_metrics(output, global_step)
        accelerator.print(f"resumed from {resume_from} at step {global_step}")
    elif accelerator.is_main_process:
        (output / "metrics.jsonl").unlink(missing_ok=True)
    if ema is not None:
        ema.to(accelerator.device)
    write_json(output / "run_config.json", {"config": config.to_dict(), "base": base_info(base)})
    if config.report_to:
        accelerator.init_trackers("fit", config=_tracker_config(config))
    prompts = choose_validation_prompts(
        config.validation_prompts, manifest, config.validation_manifest
    )
    if config.scrub_phi:  # the prompts end up in the model card
        prompts = [text for text in scrub_texts(prompts)[0] if text] or ["No acute process."]
    sampling = resolve_inference(
        config.validation_device, config.validation_dtype, default_device=accelerator.device
    )
    scaling_factor, device = vae.config.scaling_factor, accelerator.device

    def validate(pipeline: StableDiffusionPipeline, step: int, settings: Inference) -> None:
        write_validation_grid(
            pipeline,
            prompts,
            output / "validation" / f"step-{step}.png",
            resolution=config.resolution,
            steps=config.validation_inference_steps,
            seed=config.seed,
            settings=settings,
        )

    @contextlib.contextmanager
    def weights_to_judge() -> Iterator[None]:
        """The weights being trained, or the EMA weights while they are kept."""
        if ema is not None:
            ema.store(unet_params + text_params)
            ema.copy_to(unet_params + text_params)
        try:
            yield
        finally:
            if ema is not None:
                ema.restore(unet_params + text_params)

    def validate_current(step: int) -> None:
        """Validation images from the weights being trained (on the training device)."""
        if not accelerator.is_main_process:
            return
        current = StableDiffusionPipeline(
            vae=vae,
            text_encoder=accelerator.unwrap_model(text_encoder),
            tokenizer=tokenizer,
            unet=accelerator.unwrap_model(unet),
            scheduler=DPMSolverMultistepScheduler.from_pretrained(base.path, subfolder="scheduler"),
            **NO_SAFETY_CHECKER,
        )
        with weights_to_judge():
            validate(current, step, Inference(device, sampling.dtype))

    def record_held_out_loss(step: int) -> None:
        if held_out is None:
            return
        with weights_to_judge(), accelerator.autocast():
            value = held_out_loss(
                held_out,
                unet=accelerator.unwrap_model(unet),
                text_encoder=accelerator.unwrap_model(text_encoder),
                noise_scheduler=noise_scheduler,
                scaling_factor=scaling_factor,
                device=device,
                batch_size=config.train_batch_size,
                snr_gamma=config.snr_gamma,
            )
        append_metrics(output, {"step": step, "validation_loss": value})
        if config.report_to:
            accelerator.log({"validation_loss": value}, step=step)

    # Train.
    first_epoch = global_step // updates_per_epoch
    skip_batches = (global_step % updates_per_epoch) * config.gradient_accumulation_steps
    progress = tqdm(
        total=config.max_train_steps,
        initial=global_step,
        desc="fit",
        disable=not (config.progress_bar and accelerator.is_local_main_process),
    )
    losses_in_update: list[float] = []
    this_rank: dict[str, Any] = {"batches": 0, "samples": 0, "first_batch_indices": None}
    started, start_step = time.perf_counter(), global_step
    held_out_step = None
    for epoch in range(first_epoch, epochs):
        dataloader.set_epoch(epoch)  # accelerate passes it on to our sampler
        skip = skip_batches if epoch == first_epoch else 0
        batches = accelerator.skip_first_batches(dataloader, skip) if skip else dataloader
        for batch_index, batch in enumerate(batches, start=skip):
            if global_step >= config.max_train_steps:
                break
            generator = batch_generator(config.seed, epoch, batch_index, accelerator.process_index)
            with accelerator.accumulate(*trained):
                if batch:
                    latents = batch_latents(batch, vae, scaling_factor, generator, device)
                    hidden = batch_text_states(
                        batch, text_encoder, data, config.text_dropout, generator, device
                    )
                    loss = diffusion_loss(
                        unet,
                        noise_scheduler,
                        latents,
                        hidden,
                        generator,
                        snr_gamma=config.snr_gamma,
                        noise_offset=config.noise_offset,
                    )
                else:  # every image of the batch broke after the check: keep the step count
                    loss = sum(p.sum() for p in unet_params) * 0.0
                # Every rank sees every rank's loss, so all stop together on a bad one.
                gathered = accelerator.gather(loss.detach()).float()
                if not torch.isfinite(gathered).all():
                    raise NonFiniteLossError(_non_finite_message(gathered, global_step, output))
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(unet_params + text_params, config.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            losses_in_update.append(float(gathered.mean()))
            _count_batch(this_rank, batch)
            if not accelerator.sync_gradients:
                continue
            if ema is not None:
                ema.step(unet_params + text_params)
            global_step += 1
            step_loss = sum(losses_in_update) / len(losses_in_update)
            losses_in_update = []
            progress.update(1)
            progress.set_postfix(loss=f"{step_loss:.4f}")
            learning_rate = lr_scheduler.get_last_lr()[0]
            if accelerator.is_main_process:
                append_metrics(
                    output, {"step": global_step, "loss": step_loss, "lr": learning_rate}
                )
            if config.report_to:
                accelerator.log({"loss": step_loss, "lr": learning_rate}, step=global_step)
            if on_step is not None:
                on_step(global_step, step_loss)
            if global_step % config.checkpointing_steps == 0:
                save_checkpoint(
                    accelerator, output, global_step, ema=ema, keep=config.checkpoints_total_limit
                )
            if config.validation_loss_steps and global_step % config.validation_loss_steps == 0:
                record_held_out_loss(global_step)
                held_out_step = global_step
            if config.validation_steps and global_step % config.validation_steps == 0:
                validate_current(global_step)
    progress.close()
    elapsed = time.perf_counter() - started

    # Save: EMA weights into the model, the pipeline (merged for LoRA), curves, samples, summary.
    accelerator.wait_for_everyone()
    if global_step % config.checkpointing_steps:
        save_checkpoint(
            accelerator, output, global_step, ema=ema, keep=config.checkpoints_total_limit
        )
    if held_out_step != global_step:
        record_held_out_loss(global_step)
    if ema is not None:
        ema.copy_to(unet_params + text_params)
    unet = accelerator.unwrap_model(unet)
    text_encoder = accelerator.unwrap_model(text_encoder)
    pipeline_dir, lora_dir = output / "pipeline", None
    if accelerator.is_main_process:
        shutil.rmtree(pipeline_dir, ignore_errors=True)
        if config.mode == "lora":
            lora_dir = output / "lora"
            save_lora_adapter(unet, lora_dir)
            merge_lora_into_pipeline(base.path, lora_dir, pipeline_dir)
        else:
            trained_parts = {"unet": unet.to(torch.float32)}
            if config.train_text_encoder:
                trained_parts["text_encoder"] = text_encoder.to(torch.float32)
            pipeline = StableDiffusionPipeline.from_pretrained(
                base.path, **trained_parts, **NO_SAFETY_CHECKER
            )
            save_pipeline(pipeline, pipeline_dir)
        copy_tokenizer_vocab_files(base.path, pipeline_dir)
        record_resolution(pipeline_dir, config.resolution)
        validate(load_for_inference(pipeline_dir, sampling), global_step, sampling)
    rows = read_metrics(output)
    losses = [row["loss"] for row in rows if "loss" in row]
    held_out_curve = [
        [row["step"], row["validation_loss"]] for row in rows if "validation_loss" in row
    ]
    samples = (global_step - start_step) * config.train_batch_size
    samples *= config.gradient_accumulation_steps * accelerator.num_processes
    summary = {
        "base": base_info(base),
        "config": config.to_dict(),
        "global_step": global_step,
        "processes": accelerator.num_processes,
        "warnings": warnings,
        "validation_prompts": prompts,
        "validation_sampling": sampling.describe(),
        "dataset": {
            **dataset_info(manifest, data, len(records)),
            "phi_scrub": scrub.to_dict(),
            "held_out_examples": len(held_out) if held_out is not None else 0,
        },
        "cache": data.work,
        "metrics": {
            "first_loss": losses[0] if losses else None,
            "final_loss": sum(losses[-10:]) / len(losses[-10:]) if losses else None,
            "validation_loss": held_out_curve,
            "final_validation_loss": held_out_curve[-1][1] if held_out_curve else None,
            "train_seconds": elapsed,
            "samples_per_second": samples / elapsed if elapsed > 0 else None,
            "peak_memory_bytes": peak_memory_bytes(accelerator.device),
        },
    }
    _write_rank_report(output, accelerator, global_step - start_step, this_rank, data.work)
    if accelerator.is_main_process:
        draw_loss_curve(
            [row["step"] for row in rows if "loss" in row],
            losses,
            output / "loss.png",
            validation=held_out_curve,
        )
        _write_skipped_report(output / "skipped.jsonl", manifest.skipped_rows, data.skipped_images)
        write_json(output / "summary.json", summary)
    accelerator.end_training()
    return FitResult(output, pipeline_dir, lora_dir, global_step, losses, summary)


def _resolve_resolution(
    config: FitConfig, unet: UNet2DConditionModel, vae: AutoencoderKL
) -> tuple[FitConfig, list[str]]:
    """Default the resolution to the base's native size; warn when told to use another."""
    native = int(unet.config.sample_size) * 2 ** (len(vae.config.block_out_channels) - 1)
    if config.resolution is None:
        return dataclasses.replace(config, resolution=native), []
    if config.resolution == native:
        return config, []
    return config, [
        f"resolution {config.resolution} px differs from the base's native {native} px: the "
        f"model is fine-tuned at, and will draw by default at, {config.resolution} px"
    ]


def _non_finite_message(gathered: torch.Tensor, step: int, output: Path) -> str:
    found = list_checkpoints(output)
    value = gathered[~torch.isfinite(gathered)][0].item()
    remedy = "a lower --learning-rate (or --mixed-precision bf16 instead of fp16)"
    where = (
        f"The last good checkpoint is {found[-1]}: resume from it (--resume latest) with {remedy}."
        if found
        else f"No checkpoint was written yet: start again with {remedy}."
    )
    return f"loss became {value} at step {step + 1}; stopped before it changed any weights. {where}"


def _count_batch(stats: dict[str, Any], batch: dict[str, torch.Tensor]) -> None:
    """What this rank trained on: batches, samples, and the first batch's record indices."""
    stats["batches"] += 1
    if batch:
        stats["samples"] += len(batch["index"])
        if stats["first_batch_indices"] is None:
            stats["first_batch_indices"] = batch["index"].tolist()


def _write_rank_report(
    output: Path, accelerator: Accelerator, steps: int, stats: dict[str, Any], work: dict
) -> None:
    """``processes/rank-<i>.json``: every rank says what it did (a hung rank stays silent)."""
    folder = output / "processes"
    folder.mkdir(exist_ok=True)
    report = {
        "process_index": accelerator.process_index,
        "num_processes": accelerator.num_processes,
        "device": str(accelerator.device),
        "steps": steps,
        **stats,
        "cache": work,
    }
    write_json(folder / f"rank-{accelerator.process_index}.json", report)
    logger.info("rank %d/%d: %s", accelerator.process_index, accelerator.num_processes, report)


def _write_skipped_report(path: Path, *parts: list[dict[str, Any]]) -> None:
    """One JSON line per skipped record: its image and why (empty file: nothing skipped)."""
    with path.open("w", encoding="utf-8") as out:
        for part in parts:
            for entry in part:
                out.write(json.dumps(entry) + "\n")


def _check_tracker(report_to: str | None) -> None:
    if report_to == "tensorboard":
        try:
            import tensorboard  # noqa: F401 (only checking that it is installed)
        except ImportError as exc:
            raise ConfigError(
                "--report-to tensorboard needs the tensorboard package: "
                "pip install 'roentgen-registry[tensorboard]'"
            ) from exc


def _tracker_config(config: FitConfig) -> dict[str, Any]:
    """Hyperparameters as TensorBoard takes them: numbers, booleans and strings only."""
    values = config.to_dict()
    return {
        k: v if isinstance(v, int | float | bool | str) else json.dumps(v)
        for k, v in values.items()
        if v is not None
    }


def _adamw_class(use_8bit: bool) -> type[torch.optim.Optimizer]:
    """torch's AdamW, or bitsandbytes' 8-bit AdamW (optional dependency, CUDA only)."""
    if not use_8bit:
        return torch.optim.AdamW
    try:
        import bitsandbytes
    except ImportError as exc:
        raise ConfigError("use_8bit_adam needs bitsandbytes: pip install bitsandbytes") from exc
    return bitsandbytes.optim.AdamW8bit


def _place(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """Move a frozen model to the device, in the compute dtype when mixed precision is on."""
    if dtype == torch.float32:
        model.to(device)  # passing dtype=float32 makes diffusers warn about fp32 modules
    else:
        model.to(device, dtype=dtype)


def _allow_new_precision(mixed_precision: str) -> None:
    """Let a later fit() in the same process use another precision (accelerate keeps one).

    Only the precision part of accelerate's per-process state is cleared; the distributed
    setup made by ``accelerate launch`` stays.
    """
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision", mixed_precision) != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)


def record_resolution(pipeline_dir: Path, resolution: int) -> None:
    """Make the saved pipeline default to the resolution it was trained at.

    diffusers draws at ``unet.config.sample_size`` times the VAE's scale factor unless told
    otherwise; a model fine-tuned at another size draws poorly at the base's default, so
    ``registry-client generate``, ``evaluate`` and stock diffusers must all get this one.
    """
    vae = json.loads((pipeline_dir / "vae" / "config.json").read_text("utf-8"))
    scale = 2 ** (len(vae["block_out_channels"]) - 1)
    unet_config = pipeline_dir / "unet" / "config.json"
    unet = json.loads(unet_config.read_text("utf-8"))
    unet["sample_size"] = resolution // scale
    unet_config.write_text(json.dumps(unet, indent=2, sort_keys=True) + "\n", "utf-8")
