"""Full-ranking evaluation: every user's last-position representation against the whole catalogue.

Batched as one matmul per batch of users plus a comparison with the target's score (no sort
needed: the rank is the count of items scoring at least as high). History filtering removes the
items of the model's input sequence from the ranking (a target inside it is a miss). The sampled
mode (1 positive + num_candidates - 1 uniformly sampled unseen items) exists to compare with papers
that use it; its numbers are much higher and are labelled `sampled` in every output.
"""

from __future__ import annotations

import torch

from scalelab.config import EvalConfig
from scalelab.models.base import RetrievalModel
from scalelab.training.batches import EvalSet
from scalelab.training.device import autocast
from scalelab.training.metrics import (
    at_least_outside_history,
    metrics_from_ranks,
    miss_if_in_history,
    ranks_without_history,
)


@torch.inference_mode()
def evaluate(
    model: RetrievalModel,
    data: EvalSet,
    cfg: EvalConfig,
    device: torch.device,
    precision: str = "fp32",
    seed: int = 0,
    shard: tuple[int, int] | None = None,
) -> dict[str, float]:
    """Mean HR@K / NDCG@K / MRR over all users of `data` (keys prefixed `sampled_` in sampled mode).

    `shard` = (rank, workers): this worker ranks every workers-th batch of users and the ranks of
    all workers are gathered, so every user is evaluated exactly once and every worker returns the
    same metrics."""
    was_training = model.training
    model.eval()
    table = model.item_embeddings().float()  # (I, D), row i-1 = item i
    num_items = table.shape[0]
    gen = torch.Generator(device=device).manual_seed(seed)
    ranks = []
    batches = data.by_length(cfg.batch_size)
    if shard is not None:
        batches = batches[shard[0] :: shard[1]]
    for rows in batches:
        items, ts, qt, targets = (t.to(device) for t in data.batch(rows))
        with autocast(device, precision):
            users = model.last_state(items, ts, qt)
        if cfg.mode == "full":
            # the history filter removes each user's distinct input items (none when it is off)
            history = data.distinct_items[rows, : items.shape[1]] if cfg.filter_history else items[:, :0]
            history = history.to(device)
            if num_items > cfg.item_chunk:
                ranks.append(_chunked_ranks(users.float(), table, history, targets, cfg.item_chunk))
            else:
                ranks.append(ranks_without_history(users.float() @ table.T, targets - 1, history))
            continue
        scores = users.float() @ table.T  # (B, I)
        exclude = None
        if cfg.filter_history:
            seen = torch.zeros(items.shape[0], num_items + 1, dtype=torch.bool, device=device)
            seen.scatter_(1, items, True)
            exclude = seen[:, 1:]
        ranks.append(_sampled_ranks(scores, targets - 1, exclude, cfg.num_candidates, gen))
    model.train(was_training)
    local = torch.cat(ranks).cpu() if ranks else torch.empty(0, dtype=torch.float64)
    if shard is not None:
        import torch.distributed as dist

        parts: list[torch.Tensor] = [torch.empty(0)] * shard[1]
        dist.all_gather_object(parts, local)
        local = torch.cat(parts)
    out = metrics_from_ranks(local, cfg.ks)
    return out if cfg.mode == "full" else {f"sampled_{k}": v for k, v in out.items()}


def _chunked_ranks(
    users: torch.Tensor, table: torch.Tensor, history: torch.Tensor, targets: torch.Tensor, chunk: int
) -> torch.Tensor:
    """`ranks_without_history` over a catalogue too large for one (B, I) score matrix: the items are
    scored in chunks of `chunk`, twice (the target's own score first, then the count of items at
    least as high, less the history's), so every score comes from the same matmul as in the
    one-shot path."""
    b = users.shape[0]
    rows = torch.arange(b, device=users.device)
    col = targets - 1
    target_score = torch.empty(b, device=users.device)
    for lo in range(0, table.shape[0], chunk):
        inside = (col >= lo) & (col < lo + chunk)
        if inside.any():
            s = users @ table[lo : lo + chunk].T
            target_score[inside] = s[rows[inside], col[inside] - lo]
    ahead = torch.zeros(b, dtype=torch.long, device=users.device)
    for lo in range(0, table.shape[0], chunk):
        s = users @ table[lo : lo + chunk].T  # (B, C)
        ahead += at_least_outside_history(s, target_score[:, None], history, offset=lo)
    # the target counts itself once: rank = 1 + others at least as high
    return miss_if_in_history(ahead.double(), history, targets)


def _sampled_ranks(
    scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None, n: int, gen: torch.Generator
) -> torch.Tensor:
    """Rank of the target among itself and n - 1 items drawn uniformly without replacement from the
    items that are neither the target nor (when filtering) in the history."""
    b, m = scores.shape
    rows = torch.arange(b, device=scores.device)
    key = torch.rand(b, m, generator=gen, device=scores.device)
    banned = torch.zeros(b, m, dtype=torch.bool, device=scores.device) if exclude is None else exclude.clone()
    banned[rows, targets] = True
    key = key.masked_fill(banned, 2.0)  # never drawn while allowed items remain
    k = min(n - 1, m - 1)
    picked = key.topk(k, dim=1, largest=False).indices  # (B, k)
    valid = ~banned.gather(1, picked)
    cand = scores.gather(1, picked).float()
    target_score = scores[rows, targets].float()
    ahead = ((cand >= target_score[:, None]) & valid).sum(1)
    ranks = (ahead + 1).double()
    if exclude is not None:
        ranks = torch.where(exclude[rows, targets], torch.full_like(ranks, float("inf")), ranks)
    return ranks
