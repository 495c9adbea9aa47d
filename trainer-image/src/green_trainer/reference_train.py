"""Reference PyTorch training with the habits that save energy: bf16 autocast on GPU, early
stopping, and checkpoint-on-SIGTERM with exact resume (so a preempted or deferred job loses no work).

    green-trainer run -- python -m green_trainer.reference_train --checkpoint /ckpt/model.pt
    green-trainer run -- python -m green_trainer.reference_train   # GREEN_CHECKPOINT_DIR set: pause/resume

The data is synthetic and made here (a fixed random "teacher" labels Gaussian inputs), so the script
runs anywhere, a CPU test included. Progress goes to the wrapper through green_trainer.progress.
Events are JSON lines on stdout. Exit status: 0 when done, 128+N after checkpointing on signal N.

Pause and resume (the operator's contract, see green_trainer.progress): with a checkpoint directory
(--checkpoint-dir, default GREEN_CHECKPOINT_DIR) it resumes from the latest checkpoint there, saves
one on SIGTERM, and says how much of the training it holds (progress.checkpointed). The shuffle
depends only on (seed, epoch) and the checkpoint holds the model, the optimizer and the position, so
a run paused any number of times ends bit-for-bit where an uninterrupted one does (on the same
device and thread count).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from green_trainer import progress


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many optimizer steps (0: none)")
    parser.add_argument("--samples", type=int, default=4096, help="synthetic dataset size")
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto", help="auto: bf16 on GPU")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--patience", type=int, default=3, help="epochs without improvement before stopping (0: off)")
    parser.add_argument("--min-delta", type=float, default=1e-3, help="validation-loss gain that counts")
    parser.add_argument("--checkpoint", type=Path, help="save here each epoch and on SIGTERM; resume from it")
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=progress.checkpoint_dir(),
        help="keep step-numbered checkpoints here and resume from the latest (default: GREEN_CHECKPOINT_DIR)",
    )
    parser.add_argument("--keep", type=int, default=2, help="checkpoints kept in --checkpoint-dir")
    parser.add_argument("--step-sleep", type=float, default=0.0, help="seconds to sleep per step (demos, tests)")
    parser.add_argument("--log-every", type=int, default=0, help="emit a step event every N steps (0: off)")
    parser.add_argument("--tokens-per-sample", type=int, default=0, help="tokens to report per sample")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


@dataclass
class State:
    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    best_val: float = float("inf")
    bad_epochs: int = 0


def make_data(args: argparse.Namespace, device: torch.device) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(args.seed)
    teacher = torch.randn(args.features, args.classes, generator=generator)
    inputs = torch.randn(args.samples, args.features, generator=generator)
    noise = 0.5 * torch.randn(args.samples, args.classes, generator=generator)
    labels = (inputs @ teacher + noise).argmax(dim=1)
    split = args.samples * 9 // 10
    return tuple(t.to(device) for t in (inputs[:split], labels[:split], inputs[split:], labels[split:]))


def make_model(args: argparse.Namespace) -> nn.Module:
    layers: list[nn.Module] = []
    width = args.features
    for _ in range(args.layers):
        layers += [nn.Linear(width, args.hidden), nn.ReLU()]
        width = args.hidden
    layers.append(nn.Linear(width, args.classes))
    return nn.Sequential(*layers)


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: State) -> None:
    temporary = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state.__dict__}, temporary)
    os.replace(temporary, path)  # atomic: a kill mid-save leaves the previous checkpoint intact


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> State:
    saved = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    return State(**saved["state"])


def checkpoint_in(directory: Path, step: int) -> Path:
    return directory / f"step-{step:09d}.pt"


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint (saves are atomic renames, so every listed one is whole)."""
    found = sorted(directory.glob("step-*.pt")) if directory.is_dir() else []
    return found[-1] if found else None


def prune(directory: Path, keep: int) -> None:
    for old in sorted(directory.glob("step-*.pt"))[: -max(keep, 1)]:
        old.unlink(missing_ok=True)


def params_digest(model: nn.Module) -> str:
    """A digest of every parameter's bytes: equal digests mean bit-identical models."""
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def evaluate(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, autocast: torch.autocast) -> float:
    model.eval()
    with torch.no_grad(), autocast:
        loss = nn.functional.cross_entropy(model(inputs).float(), labels)
    model.train()
    return float(loss)


def train(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    bf16 = args.precision == "bf16" or (args.precision == "auto" and use_cuda)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    train_x, train_y, val_x, val_y = make_data(args, device)
    model = make_model(args).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    progress.should_checkpoint()  # installs the SIGTERM/SIGINT handler before any work
    state = State()
    directory: Path | None = args.checkpoint_dir
    resume_from = latest_checkpoint(directory) if directory is not None else None
    if resume_from is None and args.checkpoint is not None and args.checkpoint.exists():
        resume_from = args.checkpoint
    if resume_from is not None:
        loading = time.perf_counter()
        state = load_checkpoint(resume_from, model, optimizer, device)
        emit(
            "resumed",
            step=state.step,
            epoch=state.epoch,
            batch=state.batch_in_epoch,
            load_seconds=round(time.perf_counter() - loading, 4),
        )
    emit("start", device=device.type, precision="bf16" if bf16 else "fp32", step=state.step)
    batches = (len(train_x) + args.batch_size - 1) // args.batch_size
    total_steps = args.max_steps or args.epochs * batches

    def checkpoint(reason: str) -> None:
        if args.checkpoint is None and directory is None:
            return
        saving = time.perf_counter()
        if args.checkpoint is not None:
            save_checkpoint(args.checkpoint, model, optimizer, state)
        if directory is not None:
            save_checkpoint(checkpoint_in(directory, state.step), model, optimizer, state)
            prune(directory, args.keep)
        progress.checkpointed(min(state.step / total_steps, 1.0) if total_steps else 0.0)
        emit(
            "checkpoint",
            step=state.step,
            epoch=state.epoch,
            reason=reason,
            save_seconds=round(time.perf_counter() - saving, 4),
        )

    started, steps_this_run, reason = time.perf_counter(), 0, "epochs"
    while state.epoch < args.epochs:
        # The shuffle depends only on (seed, epoch): a resumed run replays the same order.
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(args.seed + state.epoch))
        while state.batch_in_epoch < batches:
            if progress.should_checkpoint():
                signum = progress.pause_signal() or signal.SIGTERM
                checkpoint(signal.Signals(signum).name)
                progress.flush()
                return 128 + signum
            if args.max_steps and state.step >= args.max_steps:
                reason = "max_steps"
                break
            index = order[state.batch_in_epoch * args.batch_size : (state.batch_in_epoch + 1) * args.batch_size]
            inputs, labels = train_x[index.to(device)], train_y[index.to(device)]
            with autocast:
                loss = nn.functional.cross_entropy(model(inputs).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            state.step += 1
            state.batch_in_epoch += 1
            steps_this_run += 1
            progress.report(samples=len(index), steps=1, tokens=len(index) * args.tokens_per_sample)
            if args.log_every and state.step % args.log_every == 0:
                emit("step", step=state.step)
            if args.step_sleep:
                time.sleep(args.step_sleep)
        if reason == "max_steps":
            break
        val_loss = evaluate(model, val_x, val_y, autocast)
        improved = val_loss < state.best_val - args.min_delta
        state.best_val = min(state.best_val, val_loss)
        state.bad_epochs = 0 if improved else state.bad_epochs + 1
        state.epoch += 1
        state.batch_in_epoch = 0
        emit("epoch", epoch=state.epoch, step=state.step, val_loss=round(val_loss, 5))
        checkpoint("epoch")
        if args.patience and state.bad_epochs >= args.patience:
            reason = "early_stop"
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    progress.flush()
    final = evaluate(model, val_x, val_y, autocast)
    emit(
        "done",
        reason=reason,
        step=state.step,
        epoch=state.epoch,
        steps_this_run=steps_this_run,
        seconds=round(seconds, 3),
        steps_per_second=round(steps_this_run / seconds, 2) if seconds > 0 else None,
        best_val_loss=round(state.best_val, 5),
        final_val_loss=repr(final),
        params=params_digest(model),
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return train(_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
