"""Data parallelism for the training stages, under torchrun (DDP: one process per rank, every
rank a full copy of the model, gradients summed over the ranks before each optimiser step).

    torchrun --nproc_per_node N -m ptypilot.train STAGE ...

``Ranks.from_environment()`` joins the process group that torchrun's environment describes
(RANK, WORLD_SIZE, MASTER_ADDR, ...); without it, or with WORLD_SIZE 1, it is one process and
every collective below returns its input untouched, so a single-process run takes exactly the
code path, and gives exactly the bits, it gave before this module existed.

The training's tensors live on the CPU (the episodes are ptypilot_core's C++). The collectives
run on gloo there; with NCCL (chosen where the rank has a GPU, or by
PTYPILOT_DIST_BACKEND=nccl), what is reduced is copied to the rank's GPU for the reduction and
back, so that a cluster's GPU fabric carries it.

The gradients are all-reduced by hand (``sum_gradients``) rather than by wrapping the model in
torch.nn.parallel.DistributedDataParallel: REINFORCE runs the policy once per episode before one
backward pass, and the loss is normalised by quantities of the whole batch (the masked action
count, the advantages' standard deviation), which the stages reduce over the ranks themselves.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    device: str = "cpu"  # where collectives run: cpu (gloo) or cuda:LOCAL_RANK (nccl)

    @staticmethod
    def from_environment() -> "Ranks":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return Ranks()
        local = int(os.environ.get("LOCAL_RANK", "0"))
        backend = os.environ.get("PTYPILOT_DIST_BACKEND",
                                 "nccl" if torch.cuda.is_available() else "gloo")
        device = "cpu"
        if backend == "nccl":
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
        if not dist.is_initialized():
            # The other ranks wait while rank 0 alone simulates the data set or validates,
            # which may take longer than the default half hour at the paper's sizes.
            dist.init_process_group(backend=backend, timeout=datetime.timedelta(hours=4))
        return Ranks(rank=dist.get_rank(), world=dist.get_world_size(), device=device)

    @property
    def main(self) -> bool:
        """Rank 0, the one that writes checkpoints, logs and exports."""
        return self.rank == 0

    def share(self, items):
        """This rank's part of a batch drawn identically on every rank: items rank, rank + world,
        ... (disjoint over the ranks, together the whole batch)."""
        return items if self.world == 1 else items[self.rank::self.world]

    def require_divisible(self, what: str, n: int) -> None:
        if n % self.world:
            raise SystemExit(f"train: {what} {n} is not a multiple of the {self.world} ranks; "
                             "each rank must take an equal share so that the averaged gradient "
                             "is the whole batch's")

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The tensor summed over the ranks (a new tensor on the tensor's device)."""
        if self.world == 1:
            return tensor
        t = tensor.detach().to(self.device, copy=True)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.to(tensor.device)

    def sum_gradients(self, parameters, average: bool) -> None:
        """Sums (average: and divides by the world size) every parameter's gradient over the
        ranks, in one flat buffer; afterwards every rank holds the same gradients, so the same
        clipping and optimiser step keep their parameters identical."""
        if self.world == 1:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        flat = self.sum(torch.cat([g.reshape(-1) for g in grads]))
        if average:
            flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers to every rank (they start equal from the same seed;
        this makes it so whatever the seeding)."""
        if self.world == 1:
            return
        for t in list(module.parameters()) + list(module.buffers()):
            buf = t.detach().to(self.device, copy=True)
            dist.broadcast(buf, src=0)
            with torch.no_grad():
                t.copy_(buf.to(t.device))

    def gather(self, items: list) -> list:
        """Every rank's list, concatenated in rank order (picklable items; for logging)."""
        if self.world == 1:
            return items
        parts: list = [None] * self.world
        # NCCL's all_gather_object goes through the current GPU, which from_environment set.
        dist.all_gather_object(parts, items)
        return [x for part in parts for x in part]

    def agree(self, flag: bool) -> bool:
        """Rank 0's decision, on every rank (e.g. whether the time budget allows another update:
        ranks that decided apart would wait on each other's collectives for ever)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=self.device)
        dist.broadcast(t, src=0)
        return bool(t.item())

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
