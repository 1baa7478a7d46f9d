"""``python -m two_tower.train``: k-fold cross-validated training of the two-tower model.

Exit codes (.ci/CONTRACTS.md, ``spot_runner.exits``): 0 success (OUT/results.json written last, atomically);
2 bad input or usage (one message on stderr, no traceback); 75 interrupted by SIGTERM or SIGINT (checkpoint
saved, rerun with the same --out resumes); 1 unexpected crash. The trainer does not poll the EC2 spot
interruption notice: the job runner (``spot_runner.job``) does and forwards it as SIGTERM.

Speed: the whole dataset lives on the device as tensors (the features in the towers' input dtype); a batch
is an index slice of a per-epoch permutation, so a step costs two gathers and the towers, never a Python loop
over examples. Where the features do not fit the device they stay in host memory and each batch is copied
one step ahead (``features.py``, --feature-placement). Under DDP the stop/checkpoint flags are agreed every
few steps without waiting for the GPU (``stepflags.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from contract import EXIT_CODES, TRAINER_OUT, Mode, TrainerState

from . import checkpoint as ckpt
from .config import DEVICES, EVAL_CANDIDATES, PRECISIONS, TrainConfig, build_config
from .cv import assign_folds, query_folds, split_rows
from .data import Dataset, file_digests, load_dataset
from .encode_texts import read_encoder_record
from .errors import UserError, quote
from .evaluate import FoldEvaluator
from .features import PLACEMENTS, choose_placement, make_features
from .interrupt import StopRequest, install_signal_handlers
from .loss import batch_weight, gather_with_grad, in_batch_softmax_loss, pair_weights
from .model import TwoTower, training_bytes
from .progress import Progress, status_doc, write_json_atomic
from .runtime import Runtime, is_rank0, print0, setup_runtime
from .stepflags import StepFlags

EXIT_FAILED = EXIT_CODES["trainer"]["crashed"]
EXIT_BAD_INPUT = EXIT_CODES["trainer"]["badInput"]
EXIT_INTERRUPTED = EXIT_CODES["trainer"]["interrupted"]

MEMORY_ENV = "SPOT_SWEEP_MEMORY_BYTES"
"""Bytes the memory check before training takes as free on the device, instead of asking the device: lets the
tests refuse a model on any machine, and lets an operator keep memory back for other processes."""

_WRITE_ERRORS = {
    errno.ENOSPC: (
        "no space left on device, so the run stopped; the files it wrote before (checkpoints, results) are "
        "kept as they were, and the partly written one was removed.",
        "free space on that disk (or copy the directory to a disk with room and pass that as --out), then "
        "rerun: it resumes from the last checkpoint.",
    ),
    errno.EDQUOT: (
        "disk quota exceeded, so the run stopped; the files it wrote before (checkpoints, results) are kept "
        "as they were, and the partly written one was removed.",
        "free space within the quota (or pass --out a directory elsewhere), then rerun: it resumes from the "
        "last checkpoint.",
    ),
    errno.EROFS: (
        "the file system is read-only, so the run cannot write its output there.",
        "pass --out a directory on a writable disk.",
    ),
    errno.EACCES: (
        "permission denied: this user cannot write there.",
        "pass --out a directory this user can write to, or give it write permission (chmod u+w).",
    ),
}
_WRITE_ERRORS[errno.EPERM] = _WRITE_ERRORS[errno.EACCES]
_WRITE_ERRORS[errno.ENAMETOOLONG] = (
    "the path is too long for the file system.",
    "pass --out a shorter path.",
)
"""OSErrors that mean OUT cannot be written, each with the problem and the fix for the message."""


class Interrupted(Exception):
    """A stop was requested; the checkpoint is saved."""


def seed_for(*parts: int) -> int:
    """A stable 63-bit seed from integers (fold/epoch seeds independent of any RNG state)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> 1)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m two_tower.train",
        description="Train the two-tower retrieval model with k-fold cross-validation and report nDCG@10.",
    )
    p.add_argument("--data", type=Path, required=True, help="dataset directory (pairs + embeddings or texts)")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output directory: results.json, status.json, folds.json, checkpoints/, model/; rerun to resume",
    )
    p.add_argument("--config", type=Path, help="job.json whose 'train' settings (and 'examples') to use")
    p.add_argument("--folds", type=int, help="cross-validation folds, grouped by query (default 10)")
    p.add_argument("--epochs", type=int, help="epochs per fold (default 3)")
    p.add_argument(
        "--batch-size", type=int, help="rows per micro-batch over all GPUs; in-batch negatives (default 1024)"
    )
    p.add_argument("--lr", type=float, help="AdamW learning rate (default 0.001)")
    p.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 0)")
    p.add_argument("--seed", type=int, help="seed for folds, init and data order (default 42)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="default auto: cuda, then mps, then cpu")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="default auto: bf16 where the GPU has it, fp16+GradScaler on V100/T4, fp32 on CPU/MPS",
    )
    p.add_argument(
        "--grad-accumulation",
        type=int,
        help="micro-batches per optimizer step (default 1); does not add in-batch negatives",
    )
    p.add_argument("--temperature", type=float, help="softmax temperature (default 0.05)")
    p.add_argument(
        "--logq",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="logQ correction for popular documents (default off)",
    )
    p.add_argument(
        "--eval-candidates",
        choices=EVAL_CANDIDATES,
        help="rank each test query's judged documents (labeled, default) or the whole corpus",
    )
    p.add_argument(
        "--final-model",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="after the folds, train one model on all rows and export it to OUT/model/ (default on)",
    )
    p.add_argument("--hidden-dim", type=int, help="tower MLP hidden width (default 512)")
    p.add_argument(
        "--checkpoint-minutes", type=float, help="minutes between mid-epoch checkpoints (default 10)"
    )
    p.add_argument(
        "--max-examples", type=int, help="use only the first N rows of the pairs file (default all)"
    )
    p.add_argument(
        "--compile",
        choices=("auto", "off", "reduce-overhead"),
        default="auto",
        help="torch.compile the towers: auto = on CUDA only (default), off = never, reduce-overhead = on "
        "CUDA with CUDA graphs (python -m two_tower.bench gpu measures both)",
    )
    p.add_argument(
        "--feature-placement",
        choices=PLACEMENTS,
        default="auto",
        help="where the features live while training: device (copied once, in the compute dtype), host "
        "(batches copied one step ahead), or auto (default: device when it fits the free memory, logged)",
    )
    p.add_argument(
        "--progress-seconds", type=float, default=10.0, help="seconds between progress lines (default 10)"
    )
    p.add_argument(
        "--on-data-change",
        choices=("fail", "restart"),
        default="fail",
        help="when --out holds checkpoints made from other data: fail (default, saying what to do) or "
        "restart (delete them, train from fold 1: the job runner's choice; it fetches them at every start)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = {
        "folds": args.folds,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
        "precision": args.precision,
        "grad_accumulation": args.grad_accumulation,
        "temperature": args.temperature,
        "logq_correction": args.logq,
        "eval_candidates": args.eval_candidates,
        "hidden_dim": args.hidden_dim,
        "checkpoint_minutes": args.checkpoint_minutes,
        "max_examples": args.max_examples,
        "final_model": args.final_model,
    }
    return build_config(args.config, overrides)


NEXT_PASS: dict[str, Any] = {
    "epoch": 0,
    "step": 0,
    "model": None,
    "optimizer": None,
    "scaler": None,
    "fold_seconds": 0.0,
    "loss_sum": 0.0,
}
"""What a checkpoint's state starts the next pass (a fold, or the final model) with."""


class Trainer:
    on_data_change = "fail"
    """What to do with checkpoints made from other data (--on-data-change): fail, or restart from fold 1."""

    def __init__(
        self,
        config: TrainConfig,
        data: Dataset,
        out: Path,
        rt: Runtime,
        stop: StopRequest,
        assignment: dict[str, int],
        digests: dict[str, str],
        progress_seconds: float,
        placement: str = "device",
    ):
        self.config, self.data, self.out, self.rt, self.stop = config, data, out, rt, stop
        self.digests = digests
        self.ckpt_dir = out / TRAINER_OUT["checkpoints"]
        dev = rt.device
        self.pq = torch.from_numpy(data.pair_query).to(dev)
        self.pd = torch.from_numpy(data.pair_doc).to(dev)
        self.pw = pair_weights(data.weight, dev)  # None: every row weighs 1
        self.features = make_features(placement, data, rt, self.pq, self.pd)
        self.qf, self.df = self.features.query, self.features.doc
        self.flags = StepFlags(rt)
        self.pair_fold = query_folds(data.query_ids, assignment)[data.pair_query]
        self.evaluator = FoldEvaluator(data, self.qf, self.df, self.pair_fold, rt, config.eval_candidates)
        self.positive = data.relevance > 0
        # Pass ``folds`` (after the k folds) is the final model's: every row (no fold matches it), the same
        # epochs, seed and settings; it is evaluated by no one, and exported (export.py).
        self.passes = config.folds + (1 if config.final_model else 0)
        self.fold_train = [split_rows(self.pair_fold, data.weak, f)[0] for f in range(self.passes)]
        self.fold_train = [rows[self.positive[rows]] for rows in self.fold_train]
        self.batches_per_epoch = [math.ceil(len(r) / config.batch_size) for r in self.fold_train]
        total = sum(n * config.epochs for n in self.batches_per_epoch)
        self.progress = Progress(out, rt.is_master, config.folds, config.epochs, total, progress_seconds)
        self.exported: dict[str, str] | None = None
        """The exported model's sha256 (``{"sha256": ...}``) once run() wrote OUT/model/; None without one."""

    def where(self, fold: int) -> str:
        """How the logs name a pass: "fold 2/10", or "final model" for the pass after the folds."""
        return "final model" if fold >= self.config.folds else f"fold {fold + 1}/{self.config.folds}"

    def _fresh_state(self) -> dict[str, Any]:
        return {
            "fold": 0,
            "epoch": 0,
            "step": 0,
            "results": [],
            "model": None,
            "optimizer": None,
            "scaler": None,
            "loss_sum": 0.0,
            # This fold's mean train loss of each finished epoch: in the checkpoint, so a resume keeps them.
            "epoch_losses": [],
            "fold_seconds": 0.0,
            "train_seconds": 0.0,
            "examples": 0,
            "final": None,  # after the final model's pass: its train loss, examples, seconds and weights
        }

    def _load_state(self) -> dict[str, Any]:
        state = ckpt.load_latest(self.ckpt_dir)
        if state is None:
            return self._fresh_state()
        for key, now in (("config", self.config.to_json()), ("data", self.digests)):
            if state[key] != now:
                diff = sorted(k for k in set(now) | set(state[key]) if now.get(k) != state[key].get(k))
                if key == "data" and self.on_data_change == "restart":
                    # Every rank has read the checkpoints (all take this branch) before rank 0 deletes them.
                    self.rt.barrier()
                    if self.rt.is_master:
                        for path in self.ckpt_dir.glob("ckpt-*"):
                            path.unlink(missing_ok=True)
                    self.progress.message(
                        f"data changed since the checkpoints ({', '.join(diff)}): starting over from fold 1 "
                        "(--on-data-change restart; the old checkpoints are deleted)"
                    )
                    return self._fresh_state()
                raise UserError(
                    f"the checkpoints there were made with a different {key} ({', '.join(diff)} differ).",
                    file=str(self.ckpt_dir),
                    fix="use a new --out directory, or delete the old checkpoints.",
                )
        ckpt.restore_rng_states(state["rng"])
        fold = state["fold"]
        at = "final model" if fold >= self.config.folds else f"fold {fold + 1}"
        self.progress.message(
            f"resume: from {at} epoch {state['epoch'] + 1} step {state['step']} "
            f"({len(state['results'])} folds done)"
            if state["fold"] < self.passes
            else f"resume: all {self.passes} passes done ({len(state['results'])} folds"
            f"{' and the final model' if self.passes > self.config.folds else ''})"
        )
        note = self._precision_change(state)
        if note:
            self.progress.message(f"resume: {note}")
        return state

    def _precision_change(self, state: dict[str, Any]) -> str | None:
        """What a resume under another precision than the checkpoint's does, or None when nothing changes.

        The config's ``precision: auto`` is what the checkpoint and this run compare (it is the same), not the
        precision it resolved to: a spot replacement may land on any instance type the sweep lists, bf16 on
        A10G/L4/A100/H100, fp16 with a GradScaler on V100/T4, so that choice may differ between the two."""
        rt = self.rt
        saved_scaler = bool(state.get("scaler"))
        # Checkpoints from before the precision was recorded: only fp16 ever saved a scaler state.
        written = state.get("precision") or ("fp16" if saved_scaler else None)
        scaler = None
        if state["model"] is not None:  # mid-fold; at a fold's start the scaler is fresh anyway
            if rt.use_grad_scaler and not saved_scaler:
                scaler = "no GradScaler state was saved: a fresh GradScaler starts"
            elif saved_scaler and not rt.use_grad_scaler:
                scaler = "the saved GradScaler state is not needed here and is ignored"
        changed = written is not None and written != rt.precision
        if not changed and scaler is None:
            return None
        head = f"checkpoint written under {written}, continuing under {rt.precision}" if changed else None
        return ": ".join(part for part in (head, scaler) if part)

    def _save(self, state: dict[str, Any]) -> None:
        if self.rt.is_master:
            payload = {
                **state,
                "config": self.config.to_json(),
                "data": self.digests,
                # The precision this run resolved (bf16, fp16, fp32): a resume elsewhere logs the change.
                "precision": self.rt.precision,
                "rng": ckpt.rng_states(),
            }
            path = ckpt.save_checkpoint(self.ckpt_dir, payload)
            folds, fold = self.config.folds, state["fold"]
            where = (
                f"all {folds} folds done"  # the last fold's checkpoint: state['fold'] is already past it
                + (" and the final model" if fold > folds else "")
                if fold >= self.passes
                else f"{len(state['results'])} of {folds} folds done; {self.where(fold)}: "
                f"{state['epoch']} epochs + {state['step']} steps done"
            )
            self.progress.message(f"checkpoint: {path.name} ({where})")
        self.rt.barrier()

    def run(self) -> dict[str, Any]:
        state = self._load_state()
        state.setdefault("final", None)
        done_steps = sum(n * self.config.epochs for n in self.batches_per_epoch[: state["fold"]])
        if state["fold"] < self.passes:
            done_steps += state["epoch"] * self.batches_per_epoch[state["fold"]] + state["step"]
        self.progress.resume_from(done_steps)
        self.done_steps = done_steps
        while state["fold"] < self.passes:
            self._train_fold(state)
        if state["final"] is not None and self.rt.is_master:
            # Written again on every run that ends here (a kill between the last checkpoint and the rename
            # leaves no model/): the checkpoint holds the weights, the export is atomic.
            from .export import export_model

            self.exported = {"sha256": export_model(self.out, state["final"]["model"], self)}
            self.progress.message(f"final model: exported to {self.out / TRAINER_OUT['model']}")
        return self._results(state)

    def _train_fold(self, state: dict[str, Any]) -> None:
        cfg, rt, fold = self.config, self.rt, state["fold"]
        train_rows = torch.from_numpy(self.fold_train[fold]).to(rt.device)
        torch.manual_seed(seed_for(cfg.seed, fold))
        model = TwoTower(self.data.input_dim, cfg.hidden_dim, text=self.data.kind == "text").to(rt.device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        scaler = rt.grad_scaler()
        if state["model"] is not None:
            # Parameters and optimizer state are fp32 under every precision (autocast casts per op), so they
            # load anywhere.
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            # The scaler state exists only where fp16 ran: restored when this run scales too, else a fresh
            # scaler starts (bf16/fp32 -> fp16) or the saved one is dropped (fp16 -> bf16/fp32); _load_state
            # logged which.
            if rt.use_grad_scaler and state["scaler"]:
                scaler.load_state_dict(state["scaler"])
        if rt.compile:
            # reduce-overhead: CUDA graphs for the fixed-shape step (a graph per batch shape; opt-in).
            mode = "reduce-overhead" if rt.compile_mode == "reduce-overhead" else None
            model.query_tower.compile(mode=mode)
            model.doc_tower.compile(mode=mode)
        net = (
            DistributedDataParallel(model, device_ids=[rt.local_rank] if rt.device.type == "cuda" else None)
            if rt.distributed
            else model
        )
        log_q = None
        if cfg.logq_correction:
            counts = torch.bincount(self.pd[train_rows], minlength=len(self.data.doc_ids)).double()
            log_q = torch.log(counts / counts.sum()).float()

        fold_start = time.monotonic() - state["fold_seconds"]
        last_ckpt = time.monotonic()
        n_batches = self.batches_per_epoch[fold]
        while state["epoch"] < cfg.epochs:
            epoch = state["epoch"]
            perm = torch.randperm(
                len(train_rows), generator=torch.Generator().manual_seed(seed_for(cfg.seed, fold, epoch))
            )
            order = train_rows[perm.to(rt.device)]
            if self.features.placement == "host":  # this rank's rows of each micro-batch, on the host
                order_host = torch.from_numpy(self.fold_train[fold])[perm]
                self.features.start_epoch(
                    order_host,
                    [
                        order_host[b * cfg.batch_size : (b + 1) * cfg.batch_size][rt.rank :: rt.world_size]
                        for b in range(n_batches)
                    ],
                )
            # Sum of the epoch's micro-batch losses, carried through checkpoints so a resumed run adds the
            # same numbers in the same order as an uninterrupted one.
            loss_acc = torch.tensor(state["loss_sum"], dtype=torch.float64, device=rt.device)
            train_start, examples_start = time.monotonic(), state["examples"]
            for mb in range(state["step"], n_batches):
                rows = order[mb * cfg.batch_size : (mb + 1) * cfg.batch_size]
                boundary = (mb + 1) % cfg.grad_accumulation == 0 or mb == n_batches - 1
                sync = net.no_sync() if rt.distributed and not boundary else contextlib.nullcontext()
                with sync:
                    loss = self._step_loss(net, rows, log_q, mb)
                    scaler.scale(loss / cfg.grad_accumulation).backward()
                loss_acc += loss.detach()
                state["examples"] += len(rows)
                self.done_steps += 1
                if boundary:
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    stop_now, ckpt_due = self.flags.agree(
                        self.stop.requested, time.monotonic() - last_ckpt > cfg.checkpoint_minutes * 60
                    )
                    if (stop_now or ckpt_due) and mb < n_batches - 1:
                        state["loss_sum"] = self._mean_over_ranks(loss_acc)
                        # Never checkpoint a diverged model: a resume would only carry the NaN on.
                        self._fail_unless_finite(state["loss_sum"], fold, epoch, mb + 1)
                        loss_acc.fill_(state["loss_sum"])
                        self._snapshot(
                            state, model, optimizer, scaler, fold_start, train_start, epoch, mb + 1
                        )
                        train_start, examples_start = time.monotonic(), state["examples"]
                        last_ckpt = time.monotonic()
                    if stop_now:
                        if mb == n_batches - 1:
                            self._end_epoch(state, loss_acc, n_batches, fold, epoch)
                            self._snapshot(
                                state, model, optimizer, scaler, fold_start, train_start, epoch + 1, 0
                            )
                        self.progress.write_status(
                            TrainerState.INTERRUPTED,
                            message=f"stopped: {self.stop.reason}; rerun with the same --out to resume",
                        )
                        raise Interrupted(self.stop.reason)
                if rt.is_master and self.progress.due():
                    eps = (state["examples"] - examples_start) / max(time.monotonic() - train_start, 1e-9)
                    step_loss = float(loss.detach())  # read here anyway for the progress line
                    self._fail_unless_finite(step_loss, fold, epoch, mb + 1)
                    self.progress.update(
                        fold=fold,
                        epoch=epoch,
                        step=mb + 1,
                        done_steps=self.done_steps,
                        loss=step_loss,
                        examples_per_second=eps,
                    )
            self._end_epoch(state, loss_acc, n_batches, fold, epoch)
            self._snapshot(state, model, optimizer, scaler, fold_start, train_start, epoch + 1, 0)
            last_ckpt = time.monotonic()

        if fold >= cfg.folds:
            self._end_final(state, model, fold_start)
            return
        ndcg, n_queries = self.evaluator.evaluate(model, fold) if rt.is_master else (0.0, 0)
        seconds = time.monotonic() - fold_start
        result = {
            "fold": fold,
            "ndcg10": ndcg,
            "trainLoss": state["last_epoch_loss"],
            "epochLosses": list(state.get("epoch_losses", [])),
            "trainExamples": len(self.fold_train[fold]) * cfg.epochs,
            "testQueries": n_queries,
            "seconds": round(seconds, 3),
        }
        self.progress.message(
            f"fold {fold + 1}/{cfg.folds}: nDCG@10 {ndcg:.4f} over {n_queries} test queries, "
            f"train loss {result['trainLoss']:.4f}, {seconds:.1f}s"
        )
        state.update(results=[*state["results"], result], fold=fold + 1, epoch_losses=[], **NEXT_PASS)
        self._save(state)

    def _end_final(self, state: dict[str, Any], model: torch.nn.Module, fold_start: float) -> None:
        """The final model's pass is done: its weights go into the checkpoint (so a kill before the export
        exports them on the rerun without training again), and the pass counter moves past it."""
        seconds = time.monotonic() - fold_start
        examples = len(self.fold_train[self.config.folds]) * self.config.epochs
        self.progress.message(
            f"final model: trained on all {len(self.fold_train[self.config.folds])} rows, "
            f"train loss {state['last_epoch_loss']:.4f}, {seconds:.1f}s"
        )
        weights = {k: v.detach().cpu().clone() for k, v in _plain_state_dict(model).items()}
        state.update(
            final={
                "trainLoss": state["last_epoch_loss"],
                "trainExamples": examples,
                "seconds": round(seconds, 3),
                "model": weights,
            },
            fold=self.config.folds + 1,
            **NEXT_PASS,
        )
        self._save(state)

    def _end_epoch(
        self, state: dict[str, Any], loss_acc: torch.Tensor, n_batches: int, fold: int, epoch: int
    ) -> None:
        state["last_epoch_loss"] = self._mean_over_ranks(loss_acc) / n_batches
        self._fail_unless_finite(state["last_epoch_loss"], fold, epoch, n_batches)
        # A checkpoint made by a trainer before epochLosses has no list: the resumed fold records from here.
        state.setdefault("epoch_losses", []).append(state["last_epoch_loss"])
        state["loss_sum"] = 0.0
        self.progress.message(
            f"{self.where(fold)} epoch {epoch + 1}/{self.config.epochs}: "
            f"mean train loss {state['last_epoch_loss']:.4f}"
        )

    def _fail_unless_finite(self, loss: float, fold: int, epoch: int, step: int) -> None:
        """A NaN or infinite training loss means the training diverged: the run fails (exit 2) naming where,
        instead of going on to a SUCCEEDED result whose model is garbage."""
        if math.isfinite(loss):
            return
        cfg = self.config
        raise UserError(
            f"the training diverged: the training loss is {loss} by {self.where(fold)}, "
            f"epoch {epoch + 1}/{cfg.epochs}, step {step}.",
            where="training",
            fix=f"lower learningRate (now {cfg.learning_rate:g}), or set precision to fp32 "
            f"(now {self.rt.precision}); a larger temperature (now {cfg.temperature:g}) also steadies it.",
        )

    def _snapshot(self, state, model, optimizer, scaler, fold_start, train_start, epoch, step) -> None:
        state["train_seconds"] += time.monotonic() - train_start
        state.update(
            epoch=epoch,
            step=step,
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            scaler=scaler.state_dict(),
            fold_seconds=time.monotonic() - fold_start,
        )
        self._save(state)

    def _step_loss(
        self, net: torch.nn.Module, rows: torch.Tensor, log_q: torch.Tensor | None, mb: int
    ) -> torch.Tensor:
        """Loss of one micro-batch; under DDP each rank takes rows[rank::world] and the documents of all ranks
        are gathered, so every rank's softmax sees the whole micro-batch, as a single process would."""
        rt, world = self.rt, self.rt.world_size
        local = rows[rt.rank :: world] if rt.distributed else rows
        with rt.autocast():
            q, d = net(*self.features.inputs(local, mb))
        doc_ids = self.pd[rows]
        if rt.distributed:
            width = math.ceil(len(rows) / world)
            pad = width - len(local)
            d = torch.cat([d, d.new_zeros(pad, d.shape[1])]) if pad else d
            d_all = gather_with_grad(d)
            doc_all = torch.full((world, width), -1, dtype=doc_ids.dtype, device=doc_ids.device)
            for r in range(world):
                part = doc_ids[r::world]
                doc_all[r, : len(part)] = part
            doc_all = doc_all.reshape(-1)
            labels = torch.arange(len(local), device=rows.device) + rt.rank * width
        else:
            d_all, doc_all = d, doc_ids
            labels = torch.arange(len(rows), device=rows.device)
        lq = None
        if log_q is not None:
            lq = log_q[doc_all.clamp(min=0)]
        w = None if self.pw is None else self.pw[local]
        loss_sum = in_batch_softmax_loss(
            q, d_all, labels, self.pd[local], doc_all, self.config.temperature, lq, reduction="sum", weight=w
        )
        # Divide by this rank's share of the batch (of its weight): DDP's gradient mean then equals the
        # single-process (weighted) mean.
        return loss_sum / (batch_weight(self.pw, rows) / world)

    def _mean_over_ranks(self, value: torch.Tensor) -> float:
        if self.rt.distributed:
            value = value.clone()
            torch.distributed.all_reduce(value)
            value /= self.rt.world_size
        return float(value)

    def _results(self, state: dict[str, Any]) -> dict[str, Any]:
        rt = self.rt
        values = [r["ndcg10"] for r in state["results"]]
        total_examples = state["examples"]
        return {
            "version": 1,
            "mode": Mode.TRAIN,
            "config": self.config.to_json(),
            "folds": state["results"],
            "ndcg10": {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)), "ddof": 1},
            "totalSeconds": round(sum(r["seconds"] for r in state["results"]), 3),
            "examplesPerSecond": round(total_examples / max(state["train_seconds"], 1e-9), 1),
            "hardware": {
                "device": rt.device.type,
                "gpuName": rt.gpu_name,
                "gpuCount": rt.gpu_count,
                "precision": rt.precision,
            },
            "software": {
                "torch": torch.__version__,
                "cuda": torch.version.cuda,
                "python": platform.python_version(),
            },
            "data": self.digests,
            # The final model's pass (None when finalModel is false); the weights are in OUT/model/.
            "finalModel": None
            if state["final"] is None
            else {
                **{k: v for k, v in state["final"].items() if k != "model"},
                "sha256": (self.exported or {}).get("sha256"),
            },
        }


def _plain_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The towers' state dict under their own names: torch.compile wraps each tower's forward only
    (``Module.compile``), but a compiled module's keys may carry ``_orig_mod.``; the export never does."""
    return {k.replace("_orig_mod.", ""): v for k, v in model.state_dict().items()}


def check_out(out: Path) -> None:
    """Refuse an --out that cannot be the run's directory before any work is done: an existing file, a path
    below a file, or one that cannot be written (read-only disk, no permission: raised as the OSError)."""
    for path in (out, *out.parents):
        if path.is_symlink() and not path.exists():
            raise UserError(
                f"this is a symbolic link to {quote(os.readlink(path))}, which does not exist.",
                file=str(path),
                where="flag --out",
                fix="make the directory it points to, or pass --out another directory.",
            )
        if path.exists() and not path.is_dir():
            raise UserError(
                "--out is a file, not a directory."
                if path == out
                else f"this is a file, so --out {quote(str(out))} cannot be a directory inside it.",
                file=str(path),
                where="flag --out",
                fix="pass --out a new directory, or the directory of an earlier run to resume it.",
            )
        if path.exists():
            break
    if is_rank0():
        out.mkdir(parents=True, exist_ok=True)
        try:
            fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
        except OSError as err:  # root ignores permissions, so try a write rather than os.access
            raise OSError(err.errno, err.strerror, str(out)) from None
        os.close(fd)
        os.unlink(probe)


def check_memory(
    config: TrainConfig, data: Dataset, rt: Runtime, job: Path | None, placement: str = "device"
) -> None:
    """Refuse, before allocating anything, a model that cannot fit on the device: a hiddenDim within the
    schema's bounds can still need more memory than the machine has, and would otherwise end in an
    out-of-memory crash (or the OOM killer) after the data is loaded."""
    available, source = _available_memory(rt)
    if available is None:
        return
    text, batch = data.kind == "text", math.ceil(config.batch_size / rt.world_size)
    # On CPU the data is already in memory (the tensors share the numpy arrays); on a GPU it is copied there
    # (counted as fp32: an upper bound under bf16/fp16), unless the features stay on the host.
    arrays = (data.query_features, data.doc_features, data.pair_query, data.pair_doc)
    if placement == "host":
        arrays = arrays[2:]
    resident = 0 if rt.device.type == "cpu" else sum(a.nbytes for a in arrays)
    need = training_bytes(data.input_dim, config.hidden_dim, text, batch) + resident
    if need <= available:
        return
    # training_bytes is linear in hiddenDim: the largest one that fits.
    base = training_bytes(data.input_dim, 0, text, batch) + resident
    per_unit = training_bytes(data.input_dim, 1, text, batch) + resident - base
    fits = (available - base) // per_unit
    raise UserError(
        f"hiddenDim {config.hidden_dim} with batchSize {config.batch_size} needs about {_size(need)} "
        f"to train (weights, gradients, AdamW states and activations"
        f"{f', plus {_size(resident)} of data' if resident else ''}) but only {_size(available)} is "
        f"available on {rt.device} ({source}).",
        file=f"{job} (or the flag overriding it)" if job else None,
        where="field train.hiddenDim" if job else "setting hiddenDim (--hidden-dim)",
        fix=(f"lower hiddenDim to at most {fits:,}, or batchSize" if fits >= 1 else "lower batchSize")
        + ", or train on a machine with more memory.",
    )


def _available_memory(rt: Runtime) -> tuple[int | None, str]:
    """Free bytes on the training device for this process, and where the figure comes from."""
    raw = os.environ.get(MEMORY_ENV)
    if raw:
        try:
            return int(raw), MEMORY_ENV
        except ValueError:
            raise UserError(
                f"{MEMORY_ENV} is {quote(raw)}, not a number of bytes.",
                where=f"environment variable {MEMORY_ENV}",
                fix="set it to an integer number of bytes (e.g. 8000000000), or unset it.",
            ) from None
    if rt.device.type == "cuda":
        return torch.cuda.mem_get_info(rt.device)[0], "free memory, torch.cuda.mem_get_info"
    if rt.device.type != "cpu":
        return None, ""  # MPS: unified memory that macOS pages; it gives no dependable free figure
    figures = []
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/meminfo") as fh:
            line = next(x for x in fh if x.startswith("MemAvailable:"))
        figures.append((int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"))
    with contextlib.suppress(OSError, ValueError):  # a container's limit (cgroup v2), below the host's memory
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            figures.append((int(limit) - used, "the cgroup's memory.max less memory.current"))
    if not figures:
        with contextlib.suppress(OSError, ValueError, AttributeError):  # macOS: physical memory
            figures.append((os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "physical memory"))
    if not figures:
        return None, ""
    available, source = min(figures)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # torchrun: processes on this machine share it
    return available // local, source if local == 1 else f"{source}, shared by {local} processes"


def _size(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


def run(args: argparse.Namespace, stop: StopRequest) -> int:
    check_out(args.out)
    config = config_from_args(args)
    data = load_dataset(args.data, config.max_examples)
    pairs_file = str(data.files[0])
    eval_queries = sorted(data.query_ids[np.unique(data.pair_query[~data.weak])])  # ids are unique
    try:
        assignment = assign_folds(eval_queries, config.folds, config.seed)
    except UserError as err:
        raise UserError(err.problem, file=pairs_file, where=err.where, fix=err.fix) from None
    digests = file_digests(data.files)
    read_encoder_record(Path(pairs_file).parent)  # a broken encoder.json fails now, not at the final export
    rt = setup_runtime(args.device, config.precision, args.compile)
    try:
        available, source = _available_memory(rt)
        batch = math.ceil(config.batch_size / rt.world_size)
        placement, why = choose_placement(
            args.feature_placement,
            data,
            rt,
            config.hidden_dim,
            batch,
            config.folds,
            config.eval_candidates,
            available,
            source,
        )
        print0(f"runtime: features on the {placement}: {why} (--feature-placement overrides)")
        check_memory(config, data, rt, args.config, placement)
        out: Path = args.out
        if rt.is_master:
            print0("config: " + json.dumps(config.to_json()))
            print0(
                f"data: {data.num_pairs} pairs ({int(data.weak.sum())} weak), {len(data.query_ids)} queries, "
                f"{len(data.doc_ids)} docs, {data.kind} input of width {data.input_dim}"
            )
            write_json_atomic(out / TRAINER_OUT["folds"], dict(sorted(assignment.items())))
        rt.barrier()
        trainer = Trainer(
            config, data, out, rt, stop, assignment, digests, args.progress_seconds, placement=placement
        )
        trainer.on_data_change = args.on_data_change
        trainer.progress.write_status(TrainerState.TRAINING, message=None)
        results = trainer.run()
        if rt.is_master:
            write_json_atomic(out / TRAINER_OUT["results"], results)
            trainer.progress.write_status(
                TrainerState.SUCCEEDED,
                fold=trainer.passes - 1,
                epoch=config.epochs - 1,
                step=trainer.batches_per_epoch[-1],
                progress=1.0,
                etaSeconds=0,
                examplesPerSecond=results["examplesPerSecond"],
                loss=results["folds"][-1]["trainLoss"],
                message=f"nDCG@10 {results['ndcg10']['mean']:.4f}",
            )
            print0(
                f"nDCG@10 {results['ndcg10']['mean']:.4f} ± {results['ndcg10']['std']:.4f} (std, ddof 1) "
                f"over "
                f"{config.folds} folds; {results['examplesPerSecond']:,.0f} examples/s; "
                f"{results['totalSeconds']:.1f}s; results in {out / 'results.json'}"
            )
        return 0
    finally:
        rt.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = StopRequest()
    install_signal_handlers(stop)
    try:
        return run(args, stop)
    except UserError as err:
        return _refuse(err, args.out)
    except Interrupted as err:
        print0(f"interrupted ({err}): checkpoint saved; rerun with the same --out to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - last resort: report, mark FAILED, exit 1
        unwritable = _unwritable(err, args.out)
        if unwritable is not None:
            _remove_partial_files(args.out)
            return _refuse(unwritable, args.out)
        traceback.print_exc()
        _write_failed(args.out, f"crashed: {type(err).__name__}: {err}", EXIT_FAILED)
        return EXIT_FAILED


def _refuse(err: UserError, out: Path) -> int:
    print0(f"error: {err.message()}", file=sys.stderr)
    _write_failed(out, err.message(), EXIT_BAD_INPUT)
    return EXIT_BAD_INPUT


def _unwritable(err: BaseException, out: Path) -> UserError | None:
    """The sentence for an OSError saying OUT cannot be written (disk full, quota, read-only, permission),
    also when it is the cause of another error (torch.save raises RuntimeError over the OSError); None for
    anything else."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, OSError) and cause.errno in _WRITE_ERRORS:
            problem, fix = _WRITE_ERRORS[cause.errno]
            return UserError(problem, file=str(cause.filename or out), fix=fix)
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _remove_partial_files(out: Path) -> None:
    """Remove what a failed write left half-written: only temporary files ever are (every file of OUT gets its
    final name by an atomic rename), and on a full disk they hold the space the FAILED status needs."""
    if is_rank0():
        for directory in (out, out / TRAINER_OUT["checkpoints"]):
            for partial in directory.glob("*.tmp"):
                with contextlib.suppress(OSError):
                    partial.unlink()


def _write_failed(out: Path, message: str, code: int) -> None:
    """FAILED in OUT/status.json, with the exit code: under torchrun the process exits 1 whatever the
    cause, so the job runner reads ``exitCode`` to tell bad input (2) from a crash (1)."""
    if not is_rank0():
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            out / TRAINER_OUT["status"],
            status_doc(TrainerState.FAILED, {"message": message, "exitCode": code}),
        )
    except OSError:  # OUT is unwritable or full: the message on stderr is all there is; leave no partial file
        _remove_partial_files(out)


if __name__ == "__main__":
    sys.exit(main())
