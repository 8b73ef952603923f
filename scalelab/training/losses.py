"""Next-item losses over every supervised position.

All take `users` (P, D) hidden states at positions that have a target, `targets` (P,) item ids,
and the model's item table (num_items + 1, D, row 0 = padding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sampled_softmax(
    users: torch.Tensor,
    targets: torch.Tensor,
    table: torch.Tensor,
    num_negatives: int,
    temperature: float,
    generator: torch.Generator | None = None,
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of the target against `num_negatives` items drawn uniformly per position, or,
    with `groups` (a group id per position, e.g. its sequence), one draw per group that all the
    group's positions use.

    Scores are cosines / temperature (users and items L2-normalised); a negative equal to the
    target (an accidental hit) is masked out. The table is normalised once, then gathered:
    normalize(E)[ids] equals normalize(E[ids]) and costs one pass over the table instead of one
    per sampled row. Mean over positions.

    Per-position negatives gather a (P, k, D) tensor and scatter its gradient back, which dominates
    a CPU training step; when the catalogue has at most k x D items the negatives' scores are instead
    picked from one (P, I + 1) matmul (no larger, and much faster). Per-group negatives gather
    (G, k, D) and score with one batched matmul.
    Each position still sees k independent uniform negatives, so the expected loss and gradient are
    those of per-position sampling; only positions of one group share their draw.
    """
    num_items = table.shape[0] - 1
    u = F.normalize(users, dim=-1, eps=1e-6)
    t = F.normalize(table, dim=-1, eps=1e-6)
    pos_logit = (u * t[targets]).sum(-1, keepdim=True)  # (P, 1)
    if groups is None:
        neg = torch.randint(
            1, num_items + 1, (users.shape[0], num_negatives), generator=generator, device=users.device
        )
        if t.shape[0] <= num_negatives * t.shape[1]:
            # Small catalogue: the (P, I + 1) scores of every item are no larger than the (P, k, D)
            # gathered negatives, and one matmul makes them much faster than the gather and the
            # scatter of its gradient; pick the drawn negatives' columns (same logits up to rounding).
            neg_logit = (u @ t.T).gather(1, neg)  # (P, k)
        else:
            neg_logit = torch.einsum("pd,pkd->pk", u, t[neg])  # (P, k)
    else:
        g = int(groups.max()) + 1 if len(groups) else 0
        draw = torch.randint(1, num_items + 1, (g, num_negatives), generator=generator, device=users.device)
        counts = torch.bincount(groups, minlength=g)
        order = torch.argsort(groups, stable=True)
        col = torch.arange(len(groups), device=users.device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts
        )  # position of each (sorted) row inside its group
        padded = u.new_zeros(g, int(counts.max()) if g else 0, u.shape[1])  # (G, n, D)
        padded[groups[order], col] = u[order]
        scores = torch.bmm(padded, t[draw].transpose(1, 2))  # (G, n, k)
        neg_logit = torch.empty(len(groups), num_negatives, device=users.device, dtype=scores.dtype)
        neg_logit[order] = scores[groups[order], col]
        neg = draw[groups]
    neg_logit = neg_logit.masked_fill(neg == targets[:, None], float("-inf"))
    logits = torch.cat([pos_logit, neg_logit], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long, device=users.device))


def full_softmax(
    users: torch.Tensor, targets: torch.Tensor, table: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Cross-entropy over the whole catalogue (cosine / temperature)."""
    u = F.normalize(users, dim=-1, eps=1e-6)
    t = F.normalize(table[1:], dim=-1, eps=1e-6)
    return F.cross_entropy(u @ t.T / temperature, targets - 1)


def bce_one_negative(
    users: torch.Tensor, targets: torch.Tensor, table: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """SASRec's original loss: binary cross-entropy of the raw dot product with the target (label 1)
    and with one uniformly drawn item that is not the target (label 0)."""
    num_items = table.shape[0] - 1
    neg = torch.randint(1, num_items, (len(targets),), generator=generator, device=users.device)
    neg = neg + (neg >= targets).long()  # uniform over the items other than the target
    pos = (users * table[targets]).sum(-1)
    negs = (users * table[neg]).sum(-1)
    return F.softplus(-pos).mean() + F.softplus(negs).mean()  # -log sigmoid(pos) - log(1 - sigmoid(neg))
