"""``latency.png`` and ``memory.png`` (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {
    "asyncfetch": "navy",
    "asyncfetch-engine": "tab:blue",
    "bare": "tab:green",
    "aiometer": "tab:orange",
    "gather": "tab:red",
    "python-intercom": "tab:purple",
}
MARKERS = {
    "asyncfetch": "D",
    "asyncfetch-engine": "o",
    "bare": "s",
    "aiometer": "^",
    "gather": "P",
    "python-intercom": "v",
}


def plots(summary: dict[str, Any], folder: Path) -> None:
    """``latency.png`` and ``memory.png`` (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    if summary["latency"]:
        _latency_plot(summary["latency"], folder / "latency.png")
    if summary["memory"]:
        _memory_plot(summary["memory"], folder / "memory.png")


def _latency_plot(latency: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    cs = [row["concurrency"] for row in latency["rows"]]
    ax.plot(
        cs,
        [row["limit_seconds"] for row in latency["rows"]],
        "k--",
        label=f"limit: {latency['latency_ms']:g} ms x (1 + ⌈(pages - 1) / c⌉)",
    )
    for client in ("asyncfetch", "bare", "aiometer"):
        points = [(r["concurrency"], r["seconds"][client]) for r in latency["rows"]]
        points = [(c, t) for c, t in points if t is not None]
        if points:
            ax.plot(
                *zip(*points, strict=True),
                marker=MARKERS[client],
                color=COLORS[client],
                label=client,
            )
    for label, key, client, style in (
        ("python-intercom 3.1.0 (sequential)", "python_intercom_seconds", "python-intercom", ":"),
        ("gather (unbounded)", "gather_seconds", "gather", "-."),
    ):
        if latency[key] is not None:
            ax.axhline(latency[key], linestyle=style, color=COLORS[client], label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(cs, [str(c) for c in cs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    low, high = ax.get_ylim()
    ticks = [t for t in (0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10, 20) if low <= t <= high]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(low, high)
    ax.set_xlabel("concurrency (requests in flight)")
    ax.set_ylabel("seconds (log scale)")
    ax.set_title(
        f"Latency-bound: {latency['pages']} pages at {latency['latency_ms']:g} ms per request "
        "(median)"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize="small")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def _memory_plot(memory: dict[str, Any], path: Path) -> None:
    """All clients on the left; on the right, zoomed in, those that hold one page or a window."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, (ax, zoom) = plt.subplots(1, 2, figsize=(13, 5.5), dpi=110)
    bounded = ("asyncfetch", "asyncfetch-engine", "bare", "python-intercom")
    for axes, clients in ((ax, memory["clients"]), (zoom, bounded)):
        for client in clients:
            figures = memory["clients"].get(client)
            if figures is None:
                continue
            pages = sorted(figures["sizes"])
            axes.plot(
                pages,
                [figures["sizes"][p]["peak_rss_mib"] for p in pages],
                marker=MARKERS[client],
                color=COLORS[client],
                linestyle="--" if client == "asyncfetch" else "-",
                markerfacecolor="none" if client == "asyncfetch" else COLORS[client],
                label="asyncfetch (IntercomClient, ≤ 10,000 records)"
                if client == "asyncfetch"
                else client,
            )
        axes.set_xscale("log")
        axes.set_xticks(memory["sizes"], [f"{p:,}" for p in memory["sizes"]])
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.set_xlabel("pages (1 user of ~1.4 KB per page)")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize="small")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("peak RSS of the client process (MiB)")
    ax.set_title("Peak memory against list length (median)")
    zoom.set_title("Zoomed in: asyncfetch, the bare loop and python-intercom")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
