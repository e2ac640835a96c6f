"""The calibration report figure: every trial's CV metric against each sampled hyperparameter,
and the learning curves of the chosen trial (one PNG per protein)."""

from __future__ import annotations

from pathlib import Path

from dbtools.io.atomic import atomic_path

# (name, log scale) of the sampled hyperparameters, in the order of the panels
PANELS = (("learning_rate", True), ("momentum", False), ("init_conv", True), ("init_fc", True),
          ("l1_conv", True), ("l1_fc", True), ("init_out", True), ("l1_out", True), ("dropout", False),
          ("num_hidden", False))


def _best(values: list) -> float:
    finite = [v for v in values if v is not None and v == v]
    return max(finite) if finite else float("nan")


def plot_protein(entry: dict, path: str | Path) -> None:
    """Write the figure of one protein's calibration (an entry of calib.json) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = entry["metric"].upper() if entry["metric"] == "auc" else entry["metric"].capitalize()
    chosen = entry["choice"]["trial"]
    scores = [_best(t["mean_val_metric"]) for t in entry["trials"]]
    fig, axes = plt.subplots(4, 3, figsize=(11, 12))
    for ax, (name, log) in zip(axes.flat, PANELS):
        # init_out and l1_out exist only for trials with a hidden layer (older reports lack them)
        shown = [t for t, h in enumerate(entry["hyperparameters"]) if h.get(name) is not None]
        xs = [entry["hyperparameters"][t][name] for t in shown]
        colours = ["tab:red" if t == chosen else "tab:blue" for t in shown]
        ax.scatter(xs, [scores[t] for t in shown], c=colours, s=22)
        if log and xs:
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel(f"best CV {metric}")
    for ax in axes.flat[len(PANELS):-1]:
        ax.axis("off")
    ax = axes.flat[-1]
    trial = entry["trials"][chosen]
    for fold in trial["folds"]:
        ax.plot(trial["checkpoints"], fold["val_metric"], color="0.6", lw=1)
    ax.plot(trial["checkpoints"], trial["mean_val_metric"], color="tab:red", lw=2, label="mean of folds")
    ax.axvline(entry["choice"]["step"], color="k", ls=":", lw=1)
    ax.set_xlabel("SGD step")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"chosen trial {chosen}: learning curves", fontsize=9)
    ax.legend(fontsize=8)
    fig.suptitle(f"{entry['id']} ({entry['protein']}): {len(entry['trials'])} trials x "
                 f"{len(trial['folds'])} folds; chosen trial {chosen} (red), step {entry['choice']['step']}, "
                 f"CV {metric} {entry['choice']['cv_metric']:.3f}", fontsize=10)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
