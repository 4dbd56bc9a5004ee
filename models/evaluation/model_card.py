"""Write models/zoo/MODEL_CARD.md from a build summary and the evaluation report.

Inputs: the dict `build_zoo.build` assembles (config, data sizes, per-model
numbers, DMD report, fresh-pool offload check, stage timings) and the dict
`evaluate.evaluate_folder` returns. Output: a Markdown file. Pure formatting:
no numbers are computed here except ratios of numbers given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.evaluation.evaluate import format_table

__all__ = ["write_model_card"]


def _ci(report: dict[str, Any], key: str) -> str:
    """``, 95% CI a to b`` of a paired F1 difference in the report, when it has one."""
    diff = report.get("f1_differences", {}).get(key)
    return "" if diff is None else ", 95% CI {:+.3f} to {:+.3f}".format(*diff["ci95"])


def _targets(report: dict[str, Any]) -> list[str]:
    p = report["policies"]
    t = report["timing"]
    cloud, dmd, conf = p["cloud_only"]["f1"], p["dmd"]["f1"], p["confidence"]["f1"]
    rows = [
        ("cloud-only F1 >= 0.90", cloud >= 0.90, f"{cloud:.3f}"),
        ("DMD F1 >= cloud-only F1 - 0.01", dmd >= cloud - 0.01,
         f"{dmd:.3f} vs {cloud:.3f} ({dmd - cloud:+.3f}{_ci(report, 'dmd_minus_cloud_only')})"),
        ("DMD F1 > confidence F1 (same offload)", dmd > conf,
         f"{dmd:.3f} vs {conf:.3f} ({dmd - conf:+.3f}{_ci(report, 'dmd_minus_confidence')})"),
        ("DMD cost_vs_cloud <= 0.20", p["dmd"]["cost_vs_cloud"] <= 0.20,
         f"{p['dmd']['cost_vs_cloud']:.3f}"),
        ("edge <= 2 ms per window", t["edge_ms"] <= 2.0, f"{t['edge_ms']:.3f} ms"),
    ]  # fmt: skip
    lines = ["| target | met | measured |", "| --- | --- | --- |"]
    lines += [f"| {name} | {'yes' if ok else '**no**'} | {val} |" for name, ok, val in rows]
    return lines


def _analysis(summary: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """Plain facts derived from the numbers above (no fitting, no new measurements)."""
    p, t = report["policies"], report["timing"]
    dmd = summary.get("dmd", {})
    pool_dis = dmd.get("disagreement_rate", float("nan"))
    held_dis = report.get("edge_cloud_disagreement", float("nan"))
    covered = p["dmd"]["offload_rate"]
    lines = [
        "## Reading the numbers",
        f"- Edge + switcher cost {(t['edge_ms'] + t['switcher_ms']) / t['cloud_ms']:.1%} of a "
        f"cloud window, so DMD's cost is that plus its offload rate ({covered:.1%} on held-out "
        f"vs the 20% calibrated on the unlabeled pool).",
        f"- Edge and cloud disagree on {pool_dis:.1%} of the (train-preset) DMD pool and on "
        f"{held_dis:.1%} of held-out windows; "
        + (
            "the budget is smaller than the held-out disagreement, so it cannot cover every "
            "disagreement. "
            if held_dis > covered
            else "the budget is larger than the held-out disagreement, so what DMD loses "
            "against cloud-only comes from the switcher's ranking: disagreements it left on the "
            "edge. "
        )
        + "The oracle row shows what perfect routing at a similar budget gives.",
        f"- DMD vs confidence at the same offload: {p['dmd']['f1'] - p['confidence']['f1']:+.3f} "
        f"F1 (precision {p['dmd']['precision']:.3f} vs {p['confidence']['precision']:.3f}, "
        f"recall {p['dmd']['recall']:.3f} vs {p['confidence']['recall']:.3f}).",
        "- To adapt to new cameras: `fallwatch distill` on their unlabeled windows (no labels "
        "needed) recalibrates the switcher and its offload share for that traffic.",
        "",
    ]
    return lines


def write_model_card(path: Path, summary: dict[str, Any], report: dict[str, Any]) -> None:
    cfg = summary["config"]
    fixed_steps = "cloud_seg_steps" in cfg  # builds since 2026-12-06: stage A runs fixed steps
    m = summary["models"]
    dmd = summary["dmd"]
    fresh = summary.get("fresh_pool") or {
        "windows": 0,
        "offload_rate": float("nan"),
        "target": cfg["offload_rate"],
        "within_3_points": False,
    }
    td = summary.get("train_data") or {}
    train_data = (
        f"{td.get('frames', '?')} frames, {td.get('windows', '?')} windows "
        f"({td.get('fall_windows', '?')} fall windows) of {td.get('clips', '?')} clips "
        f"({td.get('fall_clips', '?')} falls)"
    )
    t = report["timing"]
    e, c = m["edge"], m["cloud"]
    head_thresholds = c.get("head_thresholds", [])
    heads_note = (f"; {len(head_thresholds)} temporal heads averaged (each with its own threshold)"
                  if len(head_thresholds) > 1 else "")  # fmt: skip
    thresholds_note = (f"; the mean of its {len(head_thresholds)} heads: "
                       + ", ".join(f"{t:.3f}" for t in head_thresholds)
                       if len(head_thresholds) > 1 else "")  # fmt: skip
    lines = [
        "# fallwatch model zoo — model card",
        "",
        f"Built {summary['finished_at']} by `python -m models.training.build_zoo` "
        f"({'--quick' if cfg['train_clips'] < 200 else 'full'} config) in "
        f"**{summary['total_seconds'] / 60:.1f} min** on this machine "
        "(2 CPU cores shared with other jobs; see stage timings).",
        "",
        *([f"Build notes: {summary['note']}", ""] if summary.get("note") else []),
        "## Models",
        "| file | role | architecture | parameters | multiply-adds / window | measured ms / window |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| edge.onnx | edge | 8 grey frames 48x64 (area resize, 4 fps); two stages in one graph "
        f"(`models.training.silhouette`, the cloud's design scaled down): a per-frame encoder-decoder "
        f"(width {e['width']}) predicts the person's silhouette and 9 joint heatmaps at 1/4 "
        f"resolution; their geometry, normalised per window, feeds three dilated 1D "
        f"convolutions over the 8 frames → mean+max pool (32-d embedding) → 2 classes "
        f"| {e['params']:,} | {e['macs'] / 1e6:.1f} M | {t['edge_ms']:.3f} (preprocess + stats + inference) |",
        f"| cloud.onnx | cloud | 16 RGB frames 96x128 (area resize, 8 fps); the same two stages "
        f"(width {c['width']}, 64 temporal channels)"
        f"{', every window averaged with its mirror image (test-time flip)' if c.get('tta_flip') else ''}"
        f"{'; the segmenter also reads each frame minus its window mean (motion channels)' if c.get('motion') else ''}; "
        f"per-frame geometry: silhouette coverage, centroid, spread, tilt, head position "
        f"relative to the body; per window: every joint relative to the mean pelvis in units "
        f"of the longest head-to-ankle extent, the body axis, silhouette height and width over "
        f"their window maxima{heads_note} "
        f"| {c['params']:,} | {c['macs'] / 1e6:.1f} M | {t['cloud_ms']:.3f} (preprocess + inference) |",
        f"| switcher.onnx | switcher | MLP {dmd['n_features']}→32→32→1 on edge probabilities, "
        f"entropy, margin, logit, 7 frame statistics and the 32-d edge embedding | — | "
        f"< 0.01 M | {t['switcher_ms']:.3f} (features + inference) |",
        "",
        f"Cloud / edge compute: {c['macs'] / e['macs']:.0f}x multiply-adds; measured "
        f"cloud ms / (edge + switcher ms) = {t['cloud_ms'] / (t['edge_ms'] + t['switcher_ms']):.1f}x.",
        f"Timing ({t['sample_windows']} held-out windows): {t['included']}.",
        "",
        "## Training data and seeds",
        f"- {cfg['train_clips']} synthetic clips from `models.synth` preset "
        f"`{cfg.get('train_preset', 'train')}`, render "
        f"seeds `clip_seed(1000000, i)`, each passed through an in-memory H.264 round "
        f"trip at its own CRF, rendered once with the generator's per-frame truth (the main "
        f"person's visible silhouette and 9 joint positions): {train_data}. Windows of 16 "
        f"frames at 8 fps (2 s), stride 1 s, labelled by `models.runtime.windows.window_label`; the "
        f"edge reads every other frame at a quarter of the pixels, area-averaged from the "
        f"same frames.",
        "- Stage A (per-frame perception, trained on the truth, no fall labels): silhouette "
        "BCE + Dice and a cross-entropy per joint heatmap; per-step mirror, zoom 0.7-1.4x, "
        "shift, roll, colour-channel shuffle, gamma, exposure, contrast, tint, grey, blur, "
        "low-resolution round trip, noise"
        + (
            f"; the cloud's background swapped on {cfg['cloud_bg_swap']:.0%} of its frames "
            f"(the person kept, the room replaced by a texture or another frame's room)"
            if cfg.get("cloud_bg_swap")
            else ""
        )
        + (
            "; the cloud's frames shown beside themselves minus their window's mean (motion "
            "channels; frame and mean re-lit by one draw)"
            if c.get("motion")
            else ""
        )
        + f". Edge {e.get('seg_steps', '?')} steps of 64 frames "
        f"({e.get('seg_seconds', float('nan')):.0f}s), cloud {c.get('seg_steps', '?')} steps of "
        f"32 frames ({c.get('seg_seconds', float('nan')):.0f}s), "
        + (
            f"fixed by the recipe (edge {cfg['edge_seg_steps']}, cloud {cfg['cloud_seg_steps']}; "
            f"minutes capped at {cfg['edge_seg_minutes']:g} and {cfg['cloud_seg_minutes']:g})"
            if fixed_steps
            else "both time-budgeted"
        )
        + (f"; forward pass in {c['seg_forward']}" if c.get("seg_forward") else "")
        + ".",
        f"- Stage B (temporal head, fall labels): per-frame features cached for every frame as "
        f"filmed and re-filmed (one random camera move and re-lighting per clip"
        f"{'; the cloud per window, each frame with its own window mean' if c.get('motion') else ''}), "
        f"class-balanced batches (35 % falls), label smoothing, one-cycle schedule; edge "
        f"{e['epochs_run']} epochs, cloud {c['epochs_run']} epochs; 15% of the training clips "
        f"(seeded) are a validation split, scored as filmed and re-filmed: best epoch by "
        f"window ROC AUC (edge {e.get('val_auc', float('nan')):.3f}, cloud "
        f"{c.get('val_auc', float('nan')):.3f}); the threshold chosen on it is folded into the "
        f"fall logit — edge {e['val_threshold']:.3f} (fewest wrong windows: the cloud fixes the "
        f"rest), cloud {c['val_threshold']:.3f} (best clip-level F1{thresholds_note}); "
        f"validation clip F1 edge "
        f"{e['val_clip_f1']:.3f}, cloud {c['val_clip_f1']:.3f}. Whole training: edge "
        f"{e['train_seconds']:.0f}s, cloud {c['train_seconds']:.0f}s; seed {cfg['seed']}.",
        f"- DMD pool: {cfg['pool_clips']} further clips of that preset, `clip_seed(2000000, i)`, "
        f"disjoint from training, rendered WITHOUT labels: {dmd['pool_windows']} windows, edge "
        f"and cloud disagree on {dmd['disagreement_rate']:.1%} (target = disagreement, "
        f"{dmd['target_kind']}). Switcher fitted on {dmd['switcher_train_windows']}, threshold "
        f"{dmd['threshold']:.4f} calibrated on the other {dmd['calibration_windows']} for "
        f"{dmd['target_offload_rate']:.0%} offload.",
        f"- Fresh unlabeled pool ({fresh['windows']} windows, `clip_seed(3000000, i)`): switcher "
        f"offloads {fresh['offload_rate']:.1%} (target {fresh['target']:.0%}, within 3 points: "
        f"{'yes' if fresh['within_3_points'] else 'NO'}).",
        "",
        "## Evaluation (held-out)",
        f"Held-out: {report['n_clips']} clips ({report['n_fall_clips']} falls), "
        f"{report['n_windows']} windows, "
        + (
            f"the labelled clip folder `{summary['heldout_dir']}` (not rendered by this build)."
            if summary.get("heldout_source") == "folder"
            else f"preset `heldout` (other cameras, rooms, palettes, "
            f"noise, codec quality), `clip_seed(4000000, i)`, folder `{summary['heldout_dir']}` "
            f"(regenerate: `fallwatch synth --out {summary['heldout_dir']} --n "
            f"{cfg['heldout_clips']} --seed 4000000 --preset heldout`)."
        )
        + " Never used for fitting."
        + (
            f" Evaluated {report['evaluated_at']} by `fallwatch evaluate`."
            if "evaluated_at" in report
            else ""
        ),
        "",
        "```",
        format_table(report),
        "```",
        "",
        "F1 = clip level (a clip is a detected fall when any window's final decision is fall); "
        "cost = compute per window relative to cloud-only; plot: `evaluation.png`; all numbers "
        "in `evaluation.json`.",
        "",
        *_targets(report),
        "",
        *_analysis(summary, report),
        "## Stage timings",
        "| stage | seconds |",
        "| --- | --- |",
        *[f"| {s['stage']} | {s['seconds']:.0f} |" for s in summary["stages"]],
        f"| **total** | **{summary['total_seconds']:.0f}** |",
        "",
        "## Known limits",
        "- Trained and evaluated on synthetic video only. Real footage has no silhouettes or "
        "joint positions, so `fallwatch train --role edge|cloud --data DIR` keeps the "
        "per-frame stage trained here (`edge_segmenter.npz`, `cloud_segmenter.npz`) and "
        "retrains only the temporal stage on your labeled clips; then run a fresh "
        "`fallwatch distill` on your unlabeled traffic. Whether the synthetic-trained "
        "per-frame stage finds real people well enough is untested here.",
        "- The switcher learns where edge and cloud disagree; when the cloud is wrong the "
        "hybrid inherits the cloud's error, so the hybrid is bounded by the cloud on windows "
        "it offloads.",
        "- The offload share is calibrated on unlabeled train-preset traffic; under a camera "
        "shift the achieved share moves (see the held-out offload rate above). Recalibrate "
        "on the new cameras' unlabeled windows.",
        "- Clip-level F1 counts one false-positive window anywhere in a no-fall clip.",
        "- What limits accuracy is perception on unseen cameras, not the task: the same "
        "temporal classifier on the generator's TRUE silhouettes and 2D joints scores 0.934 "
        "held-out clip F1 (perception ceiling, run 2026-12-03; 0.99 on the true 3D posture; "
        "docs/MODEL_EXPERIMENTS.md), and the learned joints are less accurate on held-out "
        "cameras than on training ones. Falls are what the models miss; hard negatives "
        "(lying down, floor exercise, sitting hard, jumping) are rarely flagged. What was tried "
        "and what it gave: docs/MODEL_EXPERIMENTS.md.",
        "- Times are for this machine's shared CPU (CPU time still inflates under load); "
        "ratios matter more than absolute ms. "
        + (
            "The per-frame stages run a fixed number of steps, so a busier machine trains the "
            "same models more slowly; only a cap several times the quiet time would cut them "
            "short (compare the step counts above with the recipe's)."
            if fixed_steps
            else "The per-frame stages are time-budgeted, so a busier machine trains them for "
            "fewer steps (see the step counts above)."
        ),
        "- One build is one draw: another training seed moves held-out F1 by several points "
        "(docs/MODEL_EXPERIMENTS.md), so compare recipes over several seeds before believing "
        "a difference of a few points.",
        "",
    ]
    path.write_text("\n".join(lines))
