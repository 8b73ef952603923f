"""RecBole 1.2.1's SASRec training step on ML-1M, timed (run by bench_train.py in .venv-bench).

Same config as Meta's SASRec baseline: 2 layers, 1 head, hidden 50, inner 50, dropout 0.2, max
length 200, batch 128, Adam lr 1e-3, RecBole's CE loss over all items. RecBole trains on one
prefix example per target (981k for ML-1M), so a batch holds 128 targets. Prints one JSON line.

    .venv-bench/bin/python bench/recbole_sasrec.py INTERACTIONS_TSV_GZ [STEPS]
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import tempfile
import time

import pandas as pd
import torch


def main() -> None:
    src, steps = os.path.abspath(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 12
    torch.set_num_threads(torch.get_num_threads())
    tmp = tempfile.mkdtemp(prefix="recbole-")
    os.chdir(tmp)
    df = pd.read_csv(src, sep="\t")
    os.makedirs(f"{tmp}/ml-1m")
    df.rename(
        columns={"user_id": "user_id:token", "item_id": "item_id:token", "timestamp": "timestamp:float"}
    ).to_csv(f"{tmp}/ml-1m/ml-1m.inter", sep="\t", index=False)
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec

    config = Config(
        model="SASRec",
        dataset="ml-1m",
        config_dict={
            "data_path": tmp, "n_layers": 2, "n_heads": 1, "hidden_size": 50, "inner_size": 50,
            "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2, "MAX_ITEM_LIST_LENGTH": 200,
            "loss_type": "CE", "train_batch_size": 128, "train_neg_sample_args": None, "seed": 0,
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
            "show_progress": False, "state": "ERROR", "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "TIME_FIELD": "timestamp",
        },
    )  # fmt: skip
    logging.disable(logging.CRITICAL)
    t0 = time.perf_counter()
    dataset = create_dataset(config)
    train, _valid, _test = data_preparation(config, dataset)
    prep_s = time.perf_counter() - t0
    model = SASRec(config, train.dataset)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = iter(train)

    def step() -> int:
        inter = next(batches)
        loss = model.calculate_loss(inter)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return len(inter)

    for _ in range(3):
        step()
    rates = []
    for _ in range(3):
        t0, n = time.perf_counter(), 0
        for _ in range(steps):
            n += step()
        rates.append(n / (time.perf_counter() - t0))
    rate = statistics.median(rates)
    print(json.dumps({
        "targets_per_s": rate, "train_examples": len(train.dataset), "epoch_s": len(train.dataset) / rate,
        "data_preparation_s": prep_s, "recbole": __import__("recbole").__version__, "torch": torch.__version__,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
