"""Does the bias-corrected entropy make the tied Performance Law predict better?

On the data-fraction sweep sweeps/entropy_ml100k_data.yaml (HSTU depth x width x user fraction on
ML-100K; test NDCG@10 at the best validation epoch), hold out the largest full-data cells and
predict them with:
- the tied Performance Law with D' from training tokens and the bias-corrected entropy (the default),
- the same law with the pooled ApEn (the Performance-Law paper's term) instead,
- the per-dataset form fitted on the full-data cells alone (what a user without the data axis fits).
Also shows how each data term moves with the fraction (a property of the data should not).

    .venv/bin/python bench/entropy_law.py     # -> results/reference/entropy-law.md (+ .json);
                                              #    keeps the runs table in results/reference/laws_real/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from common import machine  # noqa: E402
from laws_real import ARCHIVE, METRIC, archive, check, complete_sweep  # noqa: E402

from fitters.table import with_entropy  # noqa: E402

SWEEP = "entropy_ml100k_data"


def run(boot: int, held_k: int) -> dict[str, Any]:
    done, report = complete_sweep(SWEEP)
    if done is None:
        return report
    done = with_entropy(done)
    by_fraction = (
        done.groupby("data_fraction")[
            ["data_users", "data_train_targets_per_epoch", "entropy", "data_entropy_m",
             "data_entropy_m0", "data_entropy_m1", "data_entropy_m1_coverage", "data_apen_m2_last50_pooled"]
        ].first().reset_index()
    )  # fmt: skip
    report["by_fraction"] = by_fraction.to_dict("records")
    full = done["data_fraction"] == done["data_fraction"].max()
    sizes = np.sort(done.loc[full, "non_embedding_params"].unique())
    held = full & (done["non_embedding_params"] >= sizes[-held_k])
    report["held_out"] = done.loc[held, "name"].astype(str).tolist()
    report["checks"] = {
        "tied, entropy": check(done, "performance", ["depth", "width", "tokens", "entropy"], held, boot,
                               {"form": "tied"}),
        "tied, ApEn": check(done, "performance", ["depth", "width", "tokens", "apen"], held, boot, {"form": "tied"}),
        "per-dataset, full data only": check(done[full], "performance", None, held[full], boot),
    }  # fmt: skip
    report["status"] = "fitted"
    return report


def markdown(r: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "# The data-quality term in the tied Performance Law (generated)",
        "",
        f"Command: `.venv/bin/python bench/entropy_law.py --bootstrap {args.bootstrap}` on `sweeps/{SWEEP}.yaml` "
        f"({r.get('finished', 0)} of {r.get('cells', 0)} cells finished). Metric: test {METRIC.upper()} at the best "
        "validation epoch.",
        "",
    ]
    if r["status"] != "fitted":
        return "\n".join([*lines, f"Status: {r['status']}.", ""])
    lines += [
        "## The data terms by user fraction",
        "",
        "| fraction | users | training tokens | entropy (m used) | H(next given 1) (coverage) | pooled ApEn m=2 |",
        "|---|---|---|---|---|---|",
    ]
    for f in r["by_fraction"]:
        lines.append(
            f"| {f['data_fraction']:g} | {int(f['data_users']):,} | {int(f['data_train_targets_per_epoch']):,} | "
            f"{f['entropy']:.4f} (m={int(f['data_entropy_m'])}) | {f['data_entropy_m1']:.4f} "
            f"({f['data_entropy_m1_coverage']:.2f}) | {f['data_apen_m2_last50_pooled']:.4f} |"
        )
    lines += [
        "",
        f"## Held-out prediction ({', '.join(r['held_out'])}: the largest full-data cells)",
        "",
        "| law | fitted on | mean abs. rel. error | held-out inside 95% CI | R^2 (fit) |",
        "|---|---|---|---|---|",
    ]
    for name, c in r["checks"].items():
        inside = sum(x["inside"] for x in c["held_out"])
        lines.append(
            f"| {name} | {c['fitted_on']} cells | {c['mean_abs_rel_error']:.1%} | {inside}/{len(c['held_out'])} | "
            f"{c['r2']:.3f} |"
        )
    lines += ["", "Per held-out cell (measured / predicted [95% CI]):", ""]
    for name, c in r["checks"].items():
        cells = "; ".join(
            f"{x['name']} {x['measured']:.4f} / {x['predicted']:.4f} [{x['ci95'][0]:.4f}, {x['ci95'][1]:.4f}]"
            for x in c["held_out"]
        )
        lines.append(f"- {name}: {cells}")
        if c["warnings"]:
            lines.append(f"  - warnings: {' | '.join(c['warnings'])}")
    return "\n".join([*lines, ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", type=int, default=300)
    ap.add_argument("--held", type=int, default=3, help="hold out the K largest full-data sizes")
    args = ap.parse_args()
    archive(SWEEP)
    r = run(args.bootstrap, args.held)
    r["machine"] = machine()
    out = ROOT / "results" / "reference" / "entropy-law.md"
    out.write_text(markdown(r, args))
    out.with_suffix(".json").write_text(json.dumps(r, indent=2, default=float) + "\n")
    print(out.read_text())
    print(f"runs table kept in {ARCHIVE}")


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
