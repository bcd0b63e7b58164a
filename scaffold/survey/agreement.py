"""Inspect's verdict against what stock AutoRound really did: a confusion matrix and every disagreement.

Inspect is *clean* (no problem finding) or *flagged*. Stock AutoRound on the tiny instance is *ok* (no crash,
packs at least ``FULL_SHARE`` of the block weights), *broken* (crash or under-quantized), or *ok with a silent
replay mismatch*: it packs everything, but inspect's block_replay probe measured a replayed block whose output
differs from the real forward and named the input AutoRound got wrong, or block_detection's chain probe saw that
a list AutoRound calibrates block after block is not run as a chain by the forward (xlm's ``attentions``: each
block is then tuned on the previous one's output). That flag counts as an agreement only with that evidence;
without it it is a disagreement.
Rows without a stock verdict (tiny build failed, multimodal, timeout, worker crash) are left out.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from scaffold.survey import rows as R

CLEAN, FLAGGED = "clean", "flagged"
STOCK_OK, STOCK_BROKEN, STOCK_REPLAY = "ok", "broken", "ok, silent replay mismatch"
INSPECT_VERDICTS = (CLEAN, FLAGGED)
STOCK_OUTCOMES = (STOCK_OK, STOCK_BROKEN, STOCK_REPLAY)
REPLAY_MODE = "block_replay"
REPLAY_MODES = (REPLAY_MODE, "block_detection")  # flags that can prove a silent wrong-input replay


@dataclass
class Disagreement:
    model_type: str
    inspect: str
    stock: str
    reason: str


@dataclass
class Confusion:
    cells: dict[tuple[str, str], int] = field(default_factory=dict)  # (inspect, stock) -> rows
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def compared(self) -> int:
        return sum(self.cells.values())

    @property
    def agree(self) -> int:
        return self.compared - len(self.disagreements)

    def count(self, inspect: str, stock: str) -> int:
        return self.cells.get((inspect, stock), 0)


def replay_evidenced(entry: dict[str, Any]) -> bool:
    """A flag proves a wrong-input replay: a measured difference (or crash) and the input named, or the chain probe
    saw that a list AutoRound calibrates block after block is not run as a chain by the forward."""
    if entry.get("cause") == "unchained":
        return bool(entry.get("inputs"))
    measured = entry.get("max_abs_err") is not None or bool(entry.get("exception"))
    return measured and entry.get("cause", "unknown") != "unknown" and bool(entry.get("inputs"))


def _modes(row: R.SurveyRow) -> list[str]:
    return sorted({finding.split(":")[0] for finding in row.findings})


def stock_outcome(row: R.SurveyRow) -> str | None:
    """The stock column of ``row`` (None: no stock verdict to compare with)."""
    if row.outcome in ("survey-failure", "not-surveyed"):
        return None
    if row.stock in (R.CRASH, R.UNDER_QUANTIZED):
        return STOCK_BROKEN
    if row.stock != R.OK:
        return None
    evidenced = row.replay_evidence and all(replay_evidenced(entry) for entry in row.replay_evidence)
    return STOCK_REPLAY if set(_modes(row)) & set(REPLAY_MODES) and evidenced else STOCK_OK


def _reason(row: R.SurveyRow, inspect: str, stock: str) -> str | None:
    """Why inspect and stock disagree on ``row`` (None when they agree)."""
    if inspect == CLEAN and stock == STOCK_BROKEN:
        return f"inspect finds nothing; stock {row.stock}: {row.stock_detail}".strip()
    if inspect == FLAGGED and stock == STOCK_OK:
        share = "" if row.stock_share is None else f" ({row.stock_share:.1%})"
        reason = f"flagged {', '.join(row.findings)}; stock packs everything{share}"
        if set(_modes(row)) & set(REPLAY_MODES):
            reason += "; replay evidence missing (no measured error or wrong input named, no unchained list)"
        return reason
    if inspect == FLAGGED and stock == STOCK_REPLAY and not set(_modes(row)) <= set(REPLAY_MODES):
        others = [mode for mode in _modes(row) if mode not in REPLAY_MODES]
        return f"flagged {', '.join(others)} besides the replay mismatch; stock packs everything"
    return None


def confusion(rows: list[R.SurveyRow]) -> Confusion:
    result = Confusion()
    for row in rows:
        stock = stock_outcome(row)
        if stock is None:
            continue
        inspect = FLAGGED if row.findings else CLEAN
        result.cells[(inspect, stock)] = result.count(inspect, stock) + 1
        reason = _reason(row, inspect, stock)
        if reason:
            result.disagreements.append(Disagreement(row.model_type, inspect, stock, reason))
    return result


TITLE = "Inspect against stock AutoRound"


def _headline(matrix: Confusion) -> str:
    return f"{matrix.compared} types with a stock verdict: {matrix.agree} agree, {len(matrix.disagreements)} disagree."


def markdown_section(rows: list[R.SurveyRow]) -> list[str]:
    """The matrix as a Markdown table, then one line per disagreement."""
    matrix = confusion(rows)
    lines = [
        f"## {TITLE}",
        "",
        _headline(matrix),
        "",
        "| inspect \\ stock | " + " | ".join(STOCK_OUTCOMES) + " |",
        "|---|" + "---|" * len(STOCK_OUTCOMES),
    ]
    for inspect in INSPECT_VERDICTS:
        lines.append(f"| {inspect} | " + " | ".join(str(matrix.count(inspect, s)) for s in STOCK_OUTCOMES) + " |")
    lines.append("")
    if matrix.disagreements:
        lines += ["Disagreements:", ""]
        lines += [f"- **{d.model_type}** ({d.inspect} / {d.stock}): {d.reason}" for d in matrix.disagreements]
    else:
        lines.append("No disagreement.")
    return lines


def html_section(rows: list[R.SurveyRow]) -> str:
    """The same as :func:`markdown_section`, as HTML."""
    matrix = confusion(rows)
    head = "".join(f"<th>{html.escape(name)}</th>" for name in ("inspect \\ stock", *STOCK_OUTCOMES))
    body = "".join(
        f"<tr><td>{inspect}</td>" + "".join(f"<td>{matrix.count(inspect, s)}</td>" for s in STOCK_OUTCOMES) + "</tr>"
        for inspect in INSPECT_VERDICTS
    )
    items = "".join(
        f"<li><b>{html.escape(d.model_type)}</b> ({d.inspect} / {d.stock}): {html.escape(d.reason)}</li>"
        for d in matrix.disagreements
    )
    return (
        f"<h2>{TITLE}</h2>\n<p>{_headline(matrix)}</p>\n<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
        f"</table>\n<ul>{items or '<li>No disagreement.</li>'}</ul>"
    )
