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
) -> torch.Tensor:
    """Cross-entropy of the target against `num_negatives` items drawn uniformly per position.

    Scores are cosines / temperature (users and items L2-normalised); a negative equal to the
    target (an accidental hit) is masked out. The table is normalised once, then gathered:
    normalize(E)[ids] equals normalize(E[ids]) and costs one pass over the table instead of one
    per sampled row. Mean over positions.
    """
    num_items = table.shape[0] - 1
    u = F.normalize(users, dim=-1, eps=1e-6)
    t = F.normalize(table, dim=-1, eps=1e-6)
    neg = torch.randint(
        1, num_items + 1, (users.shape[0], num_negatives), generator=generator, device=users.device
    )
    pos_logit = (u * t[targets]).sum(-1, keepdim=True)  # (P, 1)
    neg_logit = torch.einsum("pd,pkd->pk", u, t[neg])  # (P, k)
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
