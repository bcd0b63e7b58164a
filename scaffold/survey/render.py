"""Survey outputs: SURVEY.md (Markdown table), survey.html (sortable, plain JS, no network) and a summary line."""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from scaffold.survey.agreement import STOCK_REPLAY, confusion, html_section, markdown_section, stock_outcome
from scaffold.survey.rows import SurveyRow

COLUMNS = (
    "model type",
    "class",
    "tiny build",
    "stock",
    "share",
    "findings",
    "after scaffold",
    "generated",
    "after share",
    "seconds",
)
SHARE_COLUMNS = {4: "stock_share", 8: "after_share"}  # column index -> row field (sorted by value in the HTML)


@dataclass
class Summary:
    types: int
    ok: int  # quantize fully with stock AutoRound
    fixed: int  # fixed by new-arch with no hand edits (generated test passes)
    human: int  # AutoRound fails or under-quantizes and the scaffold did not fix it alone
    survey_failures: int = 0  # no tiny instance: the survey's own failure, not AutoRound's
    multimodal: int = 0  # AutoRound's MLLM path needs a processor and image/audio data the survey does not have
    ok_replay_mismatch: int = 0  # ok rows where inspect measured AutoRound replaying a block with a named wrong input
    reasons: dict[str, int] = field(default_factory=dict)  # why a human is needed -> rows
    agree: int = 0  # rows where inspect's verdict matches the stock outcome (scaffold.survey.agreement)
    disagree: int = 0

    def line(self) -> str:
        grouped = "; ".join(f"{reason}: {count}" for reason, count in self.reasons.items())
        text = f"{self.types} types, {self.ok} ok out of the box"
        if self.ok_replay_mismatch:
            text += f" ({self.ok_replay_mismatch} of them replay some block with wrong inputs, silently)"
        text += f", {self.fixed} fixed by scaffold with no hand edits, "
        text += f"{self.human} need a human" + (f" ({grouped})" if grouped else "")
        if self.survey_failures:
            text += f"; {self.survey_failures} not surveyed (tiny build failed: the survey's own failure)"
        if self.multimodal:
            text += f"; {self.multimodal} multimodal, not surveyed (AutoRound's MLLM path needs a processor)"
        if self.agree or self.disagree:
            text += f"; inspect vs stock: {self.agree} agree, {self.disagree} disagree"
        return text


def summarize(rows: list[SurveyRow]) -> Summary:
    outcomes = Counter(row.outcome for row in rows)
    reasons = Counter(row.human_reason for row in rows if row.outcome == "needs-human")
    matrix = confusion(rows)
    return Summary(
        types=len(rows),
        ok=outcomes["ok"],
        fixed=outcomes["fixed"],
        human=outcomes["needs-human"],
        survey_failures=outcomes["survey-failure"],
        multimodal=outcomes["not-surveyed"],
        ok_replay_mismatch=sum(stock_outcome(row) == STOCK_REPLAY for row in rows),
        reasons=dict(reasons.most_common()),
        agree=matrix.agree,
        disagree=len(matrix.disagreements),
    )


def _cells(row: SurveyRow) -> list[str]:
    stock = row.stock + (f" ({row.stock_detail})" if row.stock_detail else "")
    after = row.after_scaffold + (f" ({row.after_detail})" if row.after_detail else "")
    return [
        row.model_type,
        row.model_class,
        row.tiny_build,
        stock,
        _percent(row.stock_share),
        ", ".join(row.findings),
        after,
        str(row.generated) if row.after_scaffold != "skipped" else "",
        _percent(row.after_share),
        f"{row.seconds:.0f}",
    ]


def _percent(share: float | None) -> str:
    return "" if share is None else f"{share:.1%}"


def provenance_lines(rows: list[SurveyRow], versions: dict[str, str]) -> list[str]:
    """Versions (the tool's commit among them) and the hosts the rows were measured on."""
    stamp = ", ".join(f"{name} {value}" for name, value in versions.items())
    hosts = Counter(_host_line(row.host) for row in rows if row.host)
    lines = [f"Versions: {stamp}."]
    lines += [f"Host: {host} ({count} rows)." for host, count in hosts.most_common()]
    return lines


def _host_line(host: dict) -> str:
    bf16 = "bf16" if host.get("bf16") else "no bf16"
    simulated = f", simulated {host['simulated']}" if host.get("simulated") else ""
    where = f"{host.get('device', '?')} {host.get('cpu', '?')} ({bf16}{simulated})"
    return f"{where}, AutoRound tuned in {host.get('amp_dtype', '?')}"


def _md(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def markdown(rows: list[SurveyRow], versions: dict[str, str]) -> str:
    lines = ["# AutoRound compatibility survey", "", *provenance_lines(rows, versions), ""]
    lines += [f"**{summarize(rows).line()}**", "", *markdown_section(rows), "", "## Rows", ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_md(cell) for cell in _cells(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


_SORT_JS = """
document.querySelectorAll("th").forEach((th, index) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0];
  const asc = th.dataset.asc !== "1";
  th.dataset.asc = asc ? "1" : "0";
  const key = (tr) => tr.cells[index].dataset.sort ?? tr.cells[index].textContent;
  const rows = Array.from(body.rows).sort((a, b) => {
    const x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
    const cmp = !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
    return asc ? cmp : -cmp;
  });
  rows.forEach((tr) => body.appendChild(tr));
}));
"""

_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "th{cursor:pointer;background:#eee}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}"
    ".ok{background:#dfd}.fixed{background:#ffd}.needs-human,.survey-failure{background:#fdd}.not-surveyed{background:#eee}"
)


def _td(row: SurveyRow, index: int, cell: str) -> str:
    value = getattr(row, SHARE_COLUMNS[index]) if index in SHARE_COLUMNS else None
    sort = "" if value is None else f' data-sort="{value}"'
    return f"<td{sort}>{html.escape(cell)}</td>"


def html_page(rows: list[SurveyRow], versions: dict[str, str]) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in COLUMNS)
    body = []
    for row in rows:
        tds = [_td(row, index, cell) for index, cell in enumerate(_cells(row))]
        body.append(f'<tr class="{row.outcome}">' + "".join(tds) + "</tr>")
    intro = "".join(f"<p>{html.escape(line)}</p>\n" for line in provenance_lines(rows, versions))
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>AutoRound survey</title>"
        f"<style>{_STYLE}</style></head><body>\n<h1>AutoRound compatibility survey</h1>\n"
        f"{intro}<p><b>{html.escape(summarize(rows).line())}</b></p>\n{html_section(rows)}\n"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>\n"
        f"<script>{_SORT_JS}</script></body></html>\n"
    )


def write_outputs(out: Path, rows: list[SurveyRow], versions: dict[str, str]) -> None:
    """Write SURVEY.md and survey.html for ``rows`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "SURVEY.md").write_text(markdown(rows, versions), encoding="utf-8")
    (out / "survey.html").write_text(html_page(rows, versions), encoding="utf-8")
